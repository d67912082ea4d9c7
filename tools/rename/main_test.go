package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestNamesAreRenamedAndTheWordIsNot(t *testing.T) {
	r := newRenamer("daemon", "hello", "example.com/old", "example.org/you/hello")
	for _, tc := range []struct{ in, want string }{
		// Names.
		{"ExecStart=/usr/bin/daemon", "ExecStart=/usr/bin/hello"},
		{"User=_daemon", "User=_hello"},
		{"StateDirectory=daemon", "StateDirectory=hello"},
		{"Also=daemon-metrics.socket", "Also=hello-metrics.socket"},
		{"Requires=daemon.socket", "Requires=hello.socket"},
		{"NAME=${NAME:-daemon}", "NAME=${NAME:-hello}"},
		{"NAME    ?= daemon", "NAME    ?= hello"},
		{"#   NAME   unit name (default: daemon)", "#   NAME   unit name (default: hello)"},
		{"daemon_http_requests_total", "hello_http_requests_total"},
		{"/etc/daemon/config.toml", "/etc/hello/config.toml"},
		{"systemctl reload daemon", "systemctl reload hello"},
		{"systemctl show -p Result daemon", "systemctl show -p Result hello"},
		{"journalctl -u daemon -o json", "journalctl -u hello -o json"},
		{"run `daemon -check-config` first", "run `hello -check-config` first"},
		{"    daemon [-config FILE]", "    hello [-config FILE]"},
		{"# daemon: a Go service", "# hello: a Go service"},
		{`"daemon"`, `"hello"`},
		{"Dec 01 09:51:01 host daemon[61]: ready", "Dec 01 09:51:01 host hello[61]: ready"},
		{`% daemon 8 "@DATE@" "daemon @VERSION@"`, `% hello 8 "@DATE@" "hello @VERSION@"`},
		{"daemon - example HTTP daemon", "hello - example HTTP daemon"},
		{"**daemon** **-version**", "**hello** **-version**"},
		{"journalctl -u daemon PRIORITY=3", "journalctl -u hello PRIORITY=3"},
		{"where `-u daemon` also matches", "where `-u hello` also matches"},
		{"cp daemon-metrics.socket /etc", "cp hello-metrics.socket /etc"},
		{"daemon/internal/app", "hello/internal/app"},
		{"$ daemon -check-config", "$ hello -check-config"},
		{"NOTIFY_SOCKET=@daemon-notify", "NOTIFY_SOCKET=@hello-notify"},
		{"// Command daemon is an example", "// Command hello is an example"},
		{"Unpacking daemon (0.1) ...", "Unpacking hello (0.1) ..."},
		{"Selecting previously unselected package daemon.", "Selecting previously unselected package hello."},
		{"   Main PID: 214 (daemon)", "   Main PID: 214 (hello)"},
		{"daemon: /etc/daemon/config.toml:3:17: key x", "hello: /etc/hello/config.toml:3:17: key x"},
		{"mydaemon.service and daemonic", "mydaemon.service and daemonic"},
		{"the daemon: it serves", "the daemon: it serves"},
		// The word, and what is not the service.
		{"the daemon reloads its configuration", "the daemon reloads its configuration"},
		{"the daemon's state", "the daemon's state"},
		{"restart the daemon.", "restart the daemon."},
		{"Debian has a static user called daemon (UID 1)", "Debian has a static user called daemon (UID 1)"},
		{"systemctl daemon-reload", "systemctl daemon-reload"},
		{"systemctl daemon-reexec", "systemctl daemon-reexec"},
		{"daemon.SdNotifyReady", "daemon.SdNotifyReady"},
		{"daemons and daemonize", "daemons and daemonize"},
		{"systemctl reload waited for the daemon's READY=1", "systemctl reload waited for the daemon's READY=1"},
		{`"daemon holds %d sockets"`, `"daemon holds %d sockets"`},
		{"# daemon installed from its package", "# daemon installed from its package"},
	} {
		if got, _ := r.text(tc.in); got != tc.want {
			t.Errorf("%q → %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGoCodeKeepsItsIdentifiersAndForeignImports(t *testing.T) {
	r := newRenamer("daemon", "hello", "example.com/old", "example.org/you/hello")
	src := `package x

import (
	"github.com/coreos/go-systemd/v22/daemon"

	"example.com/old/internal/config"
)

// The daemon's namespace is daemon_, its unit daemon.service.
const namespace = "daemon"

var ready = daemon.SdNotifyReady
var _ = config.Default
`
	got, n, err := r.goSource("x.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer(
		`"example.com/old/internal/config"`, `"example.org/you/hello/internal/config"`,
		"is daemon_, its unit daemon.service", "is hello_, its unit hello.service",
		`namespace = "daemon"`, `namespace = "hello"`,
	).Replace(src)
	if got != want || n != 4 {
		t.Errorf("got (%d changes)\n%s\nwant\n%s", n, got, want)
	}
}

func TestRefusesANameNotValidEverywhere(t *testing.T) {
	for _, name := range []string{"", "h", "Hello", "hello-world", "hello_world", "hello.d", "1hello", strings.Repeat("a", 32), "systemd", "dpkg"} {
		if err := checkName(name); err == nil {
			t.Errorf("name %q accepted; it is not a unit, user, package and metric name at once", name)
		}
	}
	for _, name := range []string{"hello", "web2", "ab"} {
		if err := checkName(name); err != nil {
			t.Errorf("name %q refused: %v", name, err)
		}
	}
}

func TestRefusesATreeWithUncommittedChanges(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@localhost"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/old\n\ngo 1.26\n")
	write("cmd/daemon/main.go", "package main\n\nfunc main() {}\n")
	git("add", "-A")
	git("commit", "-qm", "one")
	write("cmd/daemon/main.go", "package main\n\nfunc main() { println() }\n")
	err := run([]string{"rename", "-name", "hello", "-module", "example.org/you/hello", "-dir", dir}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "uncommitted changes") {
		t.Errorf("rename of a dirty tree: %v, want a refusal that says why", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cmd", "daemon", "main.go")); err != nil {
		t.Errorf("the refused rename changed the tree: %v", err)
	}
	// Committed, the same tree is renamed.
	git("commit", "-qam", "two")
	if err := run([]string{"rename", "-name", "hello", "-module", "example.org/you/hello", "-dir", dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cmd", "hello", "main.go")); err != nil {
		t.Errorf("after the rename: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "go.mod")); !strings.Contains(string(data), "module example.org/you/hello") {
		t.Errorf("go.mod after the rename:\n%s", data)
	}
}

// TestRenamesTheModuleInANestedGoMod: a module nested in the tree
// (bench/compare) requires the service's module by its path and replaces it
// with the checkout; after the rename it names the new path everywhere, its
// comments kept, and its go.sum is left alone.
func TestRenamesTheModuleInANestedGoMod(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/old\n\ngo 1.26\n")
	write("cmd/daemon/main.go", "package main\n\nfunc main() {}\n")
	write("bench/compare/go.mod", `module example.com/old/bench/compare

go 1.26.0

require (
	example.com/old v0.0.0
	example.com/older v1.0.0
)

// The kit in this checkout.
replace example.com/old => ../..
`)
	sum := "example.com/older v1.0.0/go.mod h1:x/daemon/y=\n"
	write("bench/compare/go.sum", sum)
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "one"}} {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@localhost"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := run([]string{"rename", "-name", "hello", "-module", "example.org/you/hello", "-dir", dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	want := `module example.org/you/hello/bench/compare

go 1.26.0

require (
	example.org/you/hello v0.0.0
	example.com/older v1.0.0
)

// The kit in this checkout.
replace example.org/you/hello => ../..
`
	if data, _ := os.ReadFile(filepath.Join(dir, "bench", "compare", "go.mod")); string(data) != want {
		t.Errorf("bench/compare/go.mod after the rename:\n%s\nwant:\n%s", data, want)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "bench", "compare", "go.sum")); string(data) != sum {
		t.Errorf("bench/compare/go.sum changed:\n%s", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "go.mod")); string(data) != "module example.org/you/hello\n\ngo 1.26\n" {
		t.Errorf("go.mod after the rename:\n%s", data)
	}
}
