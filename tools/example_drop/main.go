// Command example_drop deletes the example service and everything that is
// only the example's, itself included, and plugs the smallest app
// (internal/app) in its place, where a new service is written:
//
//	make drop-example
//
// What is the example's is marked, so that this program needs no list:
//   - a file or folder named example, or starting with example_ (the package
//     internal/example, cmd/NAME/example_test.go, test/systemd/example_*,
//     this program);
//   - in any other file, a line holding "example:line" (a table row), and
//     the lines from one holding "example:begin" to the next holding
//     "example:end" (a config key and its comment, a paragraph).
//
// The one import of internal/example left (in cmd/NAME/main.go, as `app`)
// becomes an import of internal/app, and `go mod tidy` drops what only the
// example needed. Like make rename, it refuses a tree
// with uncommitted changes, so that git shows, and can undo, what it did.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
)

func main() {
	if err := run(os.Args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "drop-example: %v\n", err)
		os.Exit(1)
	}
}

// The markers of a line, and of a block of lines, that are the example's.
const (
	line  = "example:line"
	begin = "example:begin"
	end   = "example:end"
)

func run(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("example_drop", flag.ContinueOnError)
	dir := flags.String("dir", ".", "the repository's top `directory`")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if err := checkClean(*dir); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(*dir, "go.mod"))
	if err != nil {
		return err
	}
	mod := modfile.ModulePath(data)
	files, err := listFiles(*dir)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(files, isExample) {
		return errors.New("there is no example to drop (no file named example or example_*)")
	}
	var removed, edited []string
	for _, f := range files {
		path := filepath.Join(*dir, f)
		if isExample(f) {
			if err := os.Remove(path); err != nil {
				return err
			}
			removed = append(removed, f)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out, err := dropBlocks(f, data)
		if err != nil {
			return err
		}
		if strings.HasSuffix(f, ".go") {
			if out, err = plugApp(f, out, mod); err != nil {
				return err
			}
		}
		if !bytes.Equal(out, data) {
			if err := os.WriteFile(path, out, 0o644); err != nil {
				return err
			}
			edited = append(edited, f)
		}
	}
	// Folders the removals emptied go too.
	for _, f := range removed {
		for d := filepath.Dir(f); d != "."; d = filepath.Dir(d) {
			if os.Remove(filepath.Join(*dir, d)) != nil {
				break // not empty
			}
		}
	}
	// The example's own dependencies (bbolt) leave go.mod with it.
	tidy := exec.Command("go", "mod", "tidy")
	tidy.Dir = *dir
	if out, err := tidy.CombinedOutput(); err != nil {
		return fmt.Errorf("go mod tidy: %w\n%s", err, out)
	}
	fmt.Fprintf(stdout, "removed %d files of the example:\n", len(removed))
	for _, f := range removed {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	fmt.Fprintf(stdout, "took the example's lines out of %d files:\n", len(edited))
	for _, f := range edited {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	fmt.Fprintln(stdout, "The service now runs internal/app. Check and keep it with:")
	fmt.Fprintln(stdout, "  make test && git add -A && git commit -m 'Drop the example'")
	return nil
}

// isExample reports whether the file at path (slash-separated) is the
// example's: it, or a folder holding it, is named example or example_*.
func isExample(path string) bool {
	for _, part := range strings.Split(path, "/") {
		if part == "example" || strings.HasPrefix(part, "example_") {
			return true
		}
	}
	return false
}

// dropBlocks removes from data each line holding the line marker, and the
// lines from each one holding begin to the next one holding end, both
// included. A block left open, or an end without a begin, is an error: the
// file would lose what is not the example's, or keep what is.
func dropBlocks(name string, data []byte) ([]byte, error) {
	if !bytes.Contains(data, []byte("example:")) {
		return data, nil
	}
	var out []byte
	open := 0 // the line the open block began on; 0 when none is open
	for i, l := range bytes.SplitAfter(data, []byte("\n")) {
		switch {
		case bytes.Contains(l, []byte(line)):
			// dropped alone
		case bytes.Contains(l, []byte(begin)):
			if open > 0 {
				return nil, fmt.Errorf("%s:%d: %s inside the block begun on line %d", name, i+1, begin, open)
			}
			open = i + 1
		case bytes.Contains(l, []byte(end)):
			if open == 0 {
				return nil, fmt.Errorf("%s:%d: %s without a %s before it", name, i+1, end, begin)
			}
			open = 0
		case open == 0:
			out = append(out, l...)
		}
	}
	if open > 0 {
		return nil, fmt.Errorf("%s:%d: %s never ended with %s", name, open, begin, end)
	}
	return out, nil
}

// plugApp turns an import of the example, as app, into one of internal/app.
func plugApp(name string, src []byte, mod string) ([]byte, error) {
	re := regexp.MustCompile(`(?m)^(\s*)app\s+"` + regexp.QuoteMeta(mod) + `/internal/example"`)
	if !re.Match(src) {
		return src, nil
	}
	out := re.ReplaceAll(src, []byte(`$1"`+mod+`/internal/app"`))
	formatted, err := format.Source(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return formatted, nil
}

func checkClean(dir string) error {
	out, err := exec.Command("git", "-C", dir, "status", "--porcelain").Output()
	if err != nil {
		return fmt.Errorf("git status in %s: %w (dropping the example needs a git checkout, to be undone with git)", dir, err)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("%s has uncommitted changes; commit or stash them first:\n%s", dir, out)
	}
	return nil
}

// listFiles lists the files git tracks.
func listFiles(dir string) ([]string, error) {
	out, err := exec.Command("git", "-C", dir, "ls-files", "-z").Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}
