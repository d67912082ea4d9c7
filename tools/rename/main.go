// Command rename turns this repository into the project of a service with a
// name and a module path of its own:
//
//	make rename NAME=hello MODULE=example.org/you/hello
//
// It renames what names the service, and nothing else: the module path in
// go.mod and in imports; the files and folders named after it (cmd/daemon,
// daemon.service, daemon-metrics.socket, the drop-in folders, …); and the
// name where it stands as a name in units, scripts, the Makefile, the
// packaging, the docs and in Go strings and comments: daemon.service,
// User=_daemon, StateDirectory=daemon, /etc/daemon, the metrics' daemon_
// prefix, NAME=daemon, `systemctl reload daemon`, `daemon -check-config`.
// The English word, as in "the daemon reloads", stays as it is. It needs no
// network, refuses a tree with uncommitted changes, and prints what it
// changed.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"go/scanner"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

func main() {
	if err := run(os.Args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "rename: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("rename", flag.ContinueOnError)
	name := flags.String("name", "", "the service's new `name`: its binary, units, user, package and metrics prefix")
	mod := flags.String("module", "", "the new Go module `path`")
	dir := flags.String("dir", ".", "the repository's top `directory`")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if err := checkName(*name); err != nil {
		return err
	}
	if err := module.CheckPath(*mod); err != nil {
		return fmt.Errorf("-module %q: %w", *mod, err)
	}
	if err := checkClean(*dir); err != nil {
		return err
	}
	old, err := oldName(*dir)
	if err != nil {
		return err
	}
	gomod := filepath.Join(*dir, "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return err
	}
	oldModule := modfile.ModulePath(data)
	if old == *name && oldModule == *mod {
		return fmt.Errorf("the service is already %s, module %s", old, oldModule)
	}
	files, err := listFiles(*dir)
	if err != nil {
		return err
	}
	r := newRenamer(old, *name, oldModule, *mod)
	for _, f := range files {
		if err := r.rewrite(filepath.Join(*dir, f), f, stdout); err != nil {
			return err
		}
	}
	// go.mod, and the go.mod of a module nested in this one (bench/compare),
	// which requires this module by its path and replaces it with the
	// checkout.
	for _, f := range files {
		if filepath.Base(f) != "go.mod" {
			continue
		}
		if err := renameModule(filepath.Join(*dir, f), oldModule, *mod); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: module path %s → %s\n", f, oldModule, *mod)
	}
	// Deepest paths first, so that a folder is renamed after what is in it.
	slices.SortFunc(files, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, f := range files {
		if err := r.move(*dir, f, stdout); err != nil {
			return err
		}
	}
	return nil
}

// checkName accepts what a unit name, a user name (with the _ in front), a
// Debian package name and a Prometheus namespace all accept: a lower-case
// letter, then lower-case letters and digits, 2 to 31 characters. A hyphen
// is not valid in a metric name, an underscore not in a package's, a dot
// not in a user's.
//
// It also refuses the names of what a Debian system already has in /etc,
// /var/lib or /usr/bin, or as a package: the service's StateDirectory=,
// ConfigurationDirectory=, binary and package would be another's.
func checkName(name string) error {
	if !regexp.MustCompile(`^[a-z][a-z0-9]{1,30}$`).MatchString(name) {
		return fmt.Errorf("-name %q: want 2 to 31 lower-case letters and digits, starting with a letter: "+
			"the name must do as a unit name, a user name (_%s), a Debian package name and a Prometheus namespace at once", name, name)
	}
	taken := []string{
		"apt", "bash", "bin", "cron", "dbus", "dpkg", "etc", "init", "journal", "lib", "log", "login", "mail",
		"man", "mount", "nobody", "pam", "passwd", "polkit", "private", "proc", "root", "run", "sbin",
		"ssh", "ssl", "sudo", "sys", "systemd", "tmp", "ucf", "udev", "usr", "var",
	}
	if slices.Contains(taken, name) {
		return fmt.Errorf("-name %q: the system has a %s already (a package, or a directory in /etc or /var/lib); choose another", name, name)
	}
	return nil
}

// checkClean refuses a checkout with uncommitted changes: the rename is to
// be a commit of its own, easy to read and to undo.
func checkClean(dir string) error {
	out, err := exec.Command("git", "-C", dir, "status", "--porcelain").Output()
	if err != nil {
		return fmt.Errorf("git status in %s: %w (the rename needs a git checkout, to be undone with git)", dir, err)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("%s has uncommitted changes; commit or stash them first:\n%s", dir, out)
	}
	return nil
}

// oldName is the service's name now: the one command in cmd/.
func oldName(dir string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "cmd"))
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) != 1 {
		return "", fmt.Errorf("cmd/ holds %v; want the one command named after the service", names)
	}
	return names[0], nil
}

// listFiles returns the files git tracks, relative to dir.
func listFiles(dir string) ([]string, error) {
	out, err := exec.Command("git", "-C", dir, "ls-files", "-z").Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		// Fuzz corpora and go.sum are data, not names; this program speaks
		// of names in general.
		if f == "" || filepath.Base(f) == "go.sum" || strings.Contains(f, "/testdata/") || strings.HasPrefix(f, "tools/rename/") {
			continue
		}
		files = append(files, f)
	}
	return files, nil
}

// renameModule changes the module path oldModule to newModule in the
// go.mod file at file: in its module line, and wherever a require or a
// replace names it or a path under it. Comments stay as they are.
func renameModule(file, oldModule, newModule string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	f, err := modfile.Parse(file, data, nil)
	if err != nil {
		return err
	}
	rename := func(l *modfile.Line) {
		for i, tok := range l.Token {
			if tok == oldModule || strings.HasPrefix(tok, oldModule+"/") {
				l.Token[i] = newModule + strings.TrimPrefix(tok, oldModule)
			}
		}
	}
	for _, stmt := range f.Syntax.Stmt {
		switch x := stmt.(type) {
		case *modfile.Line:
			rename(x)
		case *modfile.LineBlock:
			for _, l := range x.Line {
				rename(l)
			}
		}
	}
	out := modfile.Format(f.Syntax)
	// What was written must still be a go.mod file.
	if _, err := modfile.Parse(file, out, nil); err != nil {
		return err
	}
	return os.WriteFile(file, out, 0o644)
}

type renamer struct {
	old, new, oldModule, newModule string
	// What stands before the name on its line when it is a unit argument,
	// a default, or the first word of a comment or heading.
	unitArg, assignment, commentStart, toolOutput, processName *regexp.Regexp
}

func newRenamer(old, new, oldModule, newModule string) renamer {
	return renamer{
		old: old, new: new, oldModule: oldModule, newModule: newModule,
		unitArg: regexp.MustCompile(`(?:\b(?:systemctl(?:\s+-[-\w=,]+)*\s+(?:start|stop|restart|try-restart|reload|` +
			`reload-or-restart|status|show|cat|edit|enable|disable|kill|is-active|is-enabled|is-failed|reset-failed|mask|unmask)` +
			`(?:\s+-[-\w=,]+|\s+-p\s+\S+|\s+[\w.@-]+\.(?:service|socket))*|journalctl(?:\s+-[-\w=,]+)*\s+(?:-u|--unit))|(?:^|[\s` + "`" + `(])(?:-u|--unit))\s+$`),
		assignment:   regexp.MustCompile(`(?:\b[A-Z_]+\s*[?:]?=\s*|\(default:\s*)$`),
		commentStart: regexp.MustCompile(`^\s*(?:#+|//)\s*$`),
		toolOutput:   regexp.MustCompile(`(?:\bpackage|Unpacking|Setting up|Removing|Purging configuration files for) $`),
		processName:  regexp.MustCompile(`(?:PID:?\s*\d+|process \d+) \($`),
	}
}

// rewrite renames the service in the file at path (rel in the repository).
func (r renamer) rewrite(path, rel string, stdout io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if bytes.IndexByte(data, 0) >= 0 || filepath.Base(rel) == "go.mod" {
		return nil // binary, or done by renameModule
	}
	var out string
	var n int
	if strings.HasSuffix(rel, ".go") {
		out, n, err = r.goSource(rel, data)
		if err != nil {
			return err
		}
		// A name of another length can move the column that gofmt aligns
		// comments to.
		formatted, err := format.Source([]byte(out))
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		out = string(formatted)
	} else {
		out, n = r.text(string(data))
	}
	if n == 0 || out == string(data) {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(out), st.Mode().Perm()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d changed\n", rel, n)
	return nil
}

// goSource renames in Go's string literals and comments only: the code
// itself has no service names, and an identifier such as daemon.SdNotify
// (go-systemd's package) is not one. The module path changes in import
// paths and nowhere else.
func (r renamer) goSource(name string, src []byte) (string, int, error) {
	fset := token.NewFileSet()
	file := fset.AddFile(name, -1, len(src))
	var s scanner.Scanner
	var scanErr error
	s.Init(file, src, func(pos token.Position, msg string) { scanErr = fmt.Errorf("%s: %s", pos, msg) }, scanner.ScanComments)
	var b strings.Builder
	last, total := 0, 0
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok != token.STRING && tok != token.COMMENT {
			continue
		}
		off := file.Offset(pos)
		var repl string
		var n int
		if tok == token.STRING && r.isForeignImport(lit) {
			continue
		}
		repl, n = r.text(strings.ReplaceAll(strings.ReplaceAll(lit, `"`+r.oldModule+`"`, `"`+r.newModule+`"`), `"`+r.oldModule+"/", `"`+r.newModule+"/"))
		if repl == lit {
			continue
		}
		if repl != lit && n == 0 {
			n = 1 // the module path
		}
		b.Write(src[last:off])
		b.WriteString(repl)
		last = off + len(lit)
		total += n
	}
	if scanErr != nil {
		return "", 0, scanErr
	}
	b.Write(src[last:])
	return b.String(), total, nil
}

// isForeignImport reports whether lit is a quoted import path outside the
// module, such as "github.com/coreos/go-systemd/v22/daemon".
func (r renamer) isForeignImport(lit string) bool {
	p := strings.Trim(lit, "\"`")
	return strings.Contains(p, ".") && strings.Contains(p, "/") && !strings.Contains(p, " ") &&
		p != r.oldModule && !strings.HasPrefix(p, r.oldModule+"/") && module.CheckImportPath(p) == nil &&
		!strings.HasPrefix(p, "/")
}

// text renames the service where the name stands as a name, and returns
// the text and how many it changed.
func (r renamer) text(s string) (string, int) {
	var b strings.Builder
	n, last := 0, 0
	for i := 0; ; {
		j := strings.Index(s[i:], r.old)
		if j < 0 {
			break
		}
		at := i + j
		end := at + len(r.old)
		i = end
		if !r.namesService(s, at, end) {
			continue
		}
		b.WriteString(s[last:at])
		b.WriteString(r.new)
		last = end
		n++
	}
	b.WriteString(s[last:])
	return b.String(), n
}

// namesService decides whether s[at:end], the old name, is the service's
// name there rather than the English word or part of another one.
func (r renamer) namesService(s string, at, end int) bool {
	before, after := byte(' '), byte(' ')
	if at > 0 {
		before = s[at-1]
	}
	if end < len(s) {
		after = s[end]
	}
	if isWordByte(before) || isWordByte(after) {
		return false // part of a longer word: daemons, daemonize
	}
	lineStart := strings.LastIndexByte(s[:at], '\n') + 1
	line := s[lineStart:at]
	next := ""
	if end+1 < len(s) {
		next = s[end+1 : end+2]
	}
	rest := s[end:]
	switch {
	// Not the service: systemctl's daemon-reload and daemon-reexec, and
	// Go identifiers such as go-systemd's daemon.SdNotify.
	case strings.HasPrefix(rest, "-reload"), strings.HasPrefix(rest, "-reexec"),
		after == '.' && next != "" && next[0] >= 'A' && next[0] <= 'Z':
		return false
	// In a path, a unit name, a user or a setting: /etc/daemon, _daemon,
	// StateDirectory=daemon, ${NAME:-daemon}, daemon@.
	case strings.IndexByte("/_=@-", before) >= 0:
		return true
	// A manual page's title line, "% daemon 8 … "daemon @VERSION@" …", and
	// its NAME line, "daemon - what it is".
	case strings.HasPrefix(line, "% "),
		line == "" && strings.HasPrefix(rest, " - "):
		return true
	// Quoted or bold whole, "daemon", `daemon`, **daemon**, or a command in
	// a code span: `daemon -check-config`.
	case strings.IndexByte("\"'`*", before) >= 0 && after == before,
		before == '`' && strings.HasPrefix(rest, " -"):
		return true
	// Followed by what makes a file, unit or metric name of it:
	// daemon.service, daemon-metrics, daemon_http, daemon/, daemon[61].
	case (after == '.' || after == '-' || after == '[') && next != "" && isWordByte(next[0]),
		after == '_' || after == '/':
		return true
	// The command: `daemon -check-config`, "    daemon [-config FILE]".
	case strings.HasPrefix(rest, " [-"),
		strings.HasPrefix(rest, " -") && len(rest) > 2 && isWordByte(rest[2]):
		return true
	// A unit named on systemctl's or journalctl's command line:
	// systemctl reload daemon, journalctl -u daemon, `-u daemon`.
	case r.unitArg.MatchString(line):
		return true
	// What dpkg and systemctl print of the package and the process:
	// "Unpacking daemon (…)", "Setting up daemon", "Main PID: 214 (daemon)".
	case r.toolOutput.MatchString(line) && (after == ' ' || after == '.' || after == '\n'),
		r.processName.MatchString(line) && after == ')':
		return true
	// The program's own name before its error, as it prints it:
	// "daemon: /etc/daemon/config.toml:3:17: …".
	case line == "" && strings.HasPrefix(rest, ": /"):
		return true
	// A default or a setting: NAME ?= daemon, (default: daemon).
	case r.assignment.MatchString(line):
		return true
	// A heading or a comment that starts with the name and a colon, or
	// ends a code span begun on the line before: "# daemon: …",
	// "# daemon` says why".
	case r.commentStart.MatchString(line) && (after == ':' || after == '`'):
		return true
	// Go's doc comment of a command: "Command daemon is …".
	case strings.HasSuffix(line, "Command "):
		return true
	}
	return false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// move renames the file rel if a part of its path is named after the
// service: cmd/daemon/…, daemon.service, daemon-metrics.socket,
// daemon.service.d/….
func (r renamer) move(dir, rel string, stdout io.Writer) error {
	parts := strings.Split(rel, "/")
	changed := false
	for i, p := range parts {
		if p == r.old || strings.HasPrefix(p, r.old+".") || strings.HasPrefix(p, r.old+"-") {
			parts[i] = r.new + strings.TrimPrefix(p, r.old)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	to := strings.Join(parts, "/")
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(to)), 0o755); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, rel), filepath.Join(dir, to)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s → %s\n", rel, to)
	// Remove the folders the move left empty.
	for d := filepath.Dir(filepath.Join(dir, rel)); d != filepath.Clean(dir); d = filepath.Dir(d) {
		if err := os.Remove(d); err != nil {
			if errors.Is(err, fs.ErrExist) || isNotEmpty(err) {
				break
			}
			return err
		}
	}
	return nil
}

func isNotEmpty(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not empty")
}
