package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"example.com/daemon/internal/app"
	"example.com/daemon/internal/config"
	"example.com/daemon/internal/example"
)

// TestTheKitNeverReachesIntoTheExample drops the example from a copy of
// this tree, as `make drop-example` would, and checks that what is left
// stands on its own: it builds and vets (the harness too), the docs' tests
// pass, and no file left names a route or a key of the example's, nor, in
// what ships and the docs, the example at all. A kit scenario, the
// harness's base config or a kit doc that reaches into the example fails
// here.
func TestTheKitNeverReachesIntoTheExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a copy of the tree")
	}
	top, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	copyDir := copyTree(t, top)
	var out bytes.Buffer
	if err := run([]string{"example_drop", "-dir", copyDir}, &out); err != nil {
		t.Fatalf("drop: %v\n%s", err, out.String())
	}
	for _, args := range [][]string{
		{"build", "./..."},
		{"vet", "./..."},
		{"vet", "-tags", "systemd", "./test/systemd"},
		{"mod", "tidy", "-diff"},
		{"test", "-count=1", "./test/docs", "./tools/docs", "./internal/app"},
		{"run", "./cmd/" + filepath.Base(mustGlob(t, copyDir, "cmd/*")), "-check-config", "-config", "deploy/config.toml"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = copyDir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("after the drop, go %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	// A module nested in this one (bench/compare) builds against the kit
	// left, and its go.mod and go.sum are tidy.
	for _, f := range listed(t, copyDir) {
		if f == "go.mod" || filepath.Base(f) != "go.mod" {
			continue
		}
		for _, args := range [][]string{{"vet", "./..."}, {"mod", "tidy", "-diff"}} {
			cmd := exec.Command("go", args...)
			cmd.Dir = filepath.Join(copyDir, filepath.Dir(f))
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("after the drop, in %s, go %s: %v\n%s", filepath.Dir(f), strings.Join(args, " "), err, b)
			}
		}
	}

	// What is the example's alone: its route paths and keys that neither
	// the kit nor internal/app has.
	kitKeys := keys(t, config.Default())
	appKeys := keys(t, app.DefaultConfig())
	var needles []string
	for _, k := range keys(t, example.DefaultConfig()) {
		if !slices.ContainsFunc(kitKeys, func(kk string) bool { return strings.HasSuffix(kk, k) }) && !slices.Contains(appKeys, k) {
			needles = append(needles, k)
		}
	}
	appRoutes := routes(&app.App{})
	for _, p := range routes(mustExample(t)) {
		if !slices.Contains(appRoutes, p) {
			_, path, _ := strings.Cut(p, " ")
			path, _, _ = strings.Cut(path, "{")
			needles = append(needles, path)
		}
	}
	if len(needles) < 3 {
		t.Fatalf("found only %v of the example's own; is the reading right?", needles)
	}
	word := regexp.MustCompile(`(?i)\bexample\b`)
	for _, f := range listed(t, copyDir) {
		data, err := os.ReadFile(filepath.Join(copyDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(data, []byte(n)) {
				t.Errorf("after the drop, %s still has the example's %q", f, n)
			}
		}
		if !shippedOrDoc(f) {
			continue
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.NewReplacer("example.com", "", "example.org", "", "for example", "", "For example", "").Replace(line)
			if word.MatchString(line) {
				t.Errorf("after the drop, %s:%d still speaks of the example: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}

// shippedOrDoc is what a user reads: the README, the docs, and what the
// package ships.
func shippedOrDoc(f string) bool {
	return f == "README.md" || strings.HasPrefix(f, "docs/") || strings.HasPrefix(f, "deploy/") || strings.HasPrefix(f, "packaging/")
}

func mustExample(t *testing.T) *example.App {
	t.Helper()
	return &example.App{}
}

// routes lists the patterns an app registers.
func routes(a interface {
	Routes(func(string, http.Handler))
}) []string {
	var ps []string
	a.Routes(func(p string, _ http.Handler) { ps = append(ps, p) })
	return ps
}

func mustGlob(t *testing.T, dir, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(m) != 1 {
		t.Fatalf("%s: %v %v", pattern, m, err)
	}
	return m[0]
}

// copyTree copies what git tracks or would track in dir into a new git
// repository, committed, as a clone of it would hold.
func copyTree(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	out, err := exec.Command("git", "-C", dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue // deleted in the working tree
		}
		st, _ := os.Stat(filepath.Join(dir, f))
		os.MkdirAll(filepath.Join(dst, filepath.Dir(f)), 0o755)
		if err := os.WriteFile(filepath.Join(dst, f), data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dst
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, b)
		}
	}
	return dst
}

// listed lists the files git tracks in dir that are on disk.
func listed(t *testing.T, dir string) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "ls-files", "-z").Output()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			files = append(files, f)
		}
	}
	return files
}

// keys returns the keys of a settings struct, a table's as table.key.
func keys(t *testing.T, settings config.Documented) []string {
	t.Helper()
	ks, err := config.Keys(settings)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range ks {
		if !k.Table {
			out = append(out, k.Key)
		}
	}
	return out
}
