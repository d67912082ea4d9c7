// Package journaldtest gives tests a real systemd-journald: it starts one
// when none is running (which needs root; Debian's systemd package has
// journald and journalctl) and reads entries back with journalctl.
package journaldtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	journaldPath  = "/lib/systemd/systemd-journald"
	journalSocket = "/run/systemd/journal/socket" // where nativejournal sends
)

// Listening reports whether a journald is listening on its native
// socket: connecting a datagram socket to a path succeeds only while a
// process has a socket bound there.
func Listening() bool {
	conn, err := net.Dial("unixgram", journalSocket)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// SkipWithout skips tb when no journald listens.
func SkipWithout(tb testing.TB) {
	if !Listening() {
		tb.Skip("no systemd-journald listening on " + journalSocket + "; as root, start " + journaldPath)
	}
}

// Need makes sure a journald listens on its native socket, starting
// one for the test if none does, and stopping it when the test ends.
func Need(t testing.TB) {
	t.Helper()
	canRun(t)
	if Listening() {
		return
	}

	// No arguments: journald would take one as the name of a journal
	// namespace to serve (systemd-journald.service(8)).
	start(t)
}

// canRun skips t unless it can run journald and journalctl.
func canRun(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run systemd-journald and to read the journal")
	}
	for _, program := range []string{journaldPath, "journalctl"} {
		if _, err := exec.LookPath(program); err != nil {
			t.Skipf("needs %s (Debian package systemd): %v", program, err)
		}
	}
}

// Private is a journald of a test's own, for a test that needs journald
// configured its way (journald.conf(5)). It serves a journal namespace
// (systemd-journald.service(8), "Journal Namespaces"): its own socket, its
// own configuration and its own journal, which nothing else writes to.
type Private struct {
	Namespace string
	Socket    string // where it reads native entries
}

// StartPrivate starts a Private journald with settings, lines of the
// [Journal] section of journald.conf(5) such as "MaxLevelStore=warning",
// and stops it when the test ends, removing its configuration and journal.
func StartPrivate(t testing.TB, settings ...string) *Private {
	t.Helper()
	canRun(t)
	machineID, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Skipf("journald needs a machine ID: %v", err)
	}
	p := &Private{Namespace: fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	p.Socket = "/run/systemd/journal." + p.Namespace + "/socket"
	// Only /etc/systemd: journald 252 reads a namespace's configuration
	// nowhere else. Storage=volatile keeps the journal under /run, out
	// of /var/log/journal.
	conf := "/etc/systemd/journald@" + p.Namespace + ".conf"
	text := "[Journal]\nStorage=volatile\n" + strings.Join(settings, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after journald has stopped
		os.Remove(conf)
		os.RemoveAll(filepath.Dir(p.Socket))
		os.RemoveAll("/run/log/journal/" + strings.TrimSpace(string(machineID)) + "." + p.Namespace)
	})
	start(t, p.Namespace)
	return p
}

// Read returns the entries of p's journal that match every FIELD=value in
// matches, with each field's values.
func (p *Private) Read(t testing.TB, matches ...string) []map[string][]string {
	t.Helper()
	return read(t, []string{"--namespace=" + p.Namespace}, matches)
}

// start runs systemd-journald with args until the test ends, and returns
// once it is ready.
func start(t testing.TB, args ...string) {
	t.Helper()
	// journald tells its supervisor that it is ready, its sockets open, by
	// sending READY=1 to the datagram socket named in $NOTIFY_SOCKET
	// (sd_notify(3)). Here the test is the supervisor.
	notify := filepath.Join(t.TempDir(), "notify")
	ready, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()

	cmd := exec.Command(journaldPath, args...)
	cmd.Env = []string{"NOTIFY_SOCKET=" + notify}
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	ready.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		n, err := ready.Read(buf)
		if err != nil {
			t.Fatalf("waiting for READY=1 from systemd-journald: %v", err)
		}
		if slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
			return
		}
	}
}

// Read returns the entries that match every FIELD=value in matches, with
// each field's values.
func Read(t testing.TB, matches ...string) []map[string][]string {
	t.Helper()
	return read(t, nil, matches)
}

// read is Read for the journal that the journalctl options in which select
// (none: the system's).
func read(t testing.TB, which, matches []string) []map[string][]string {
	t.Helper()
	// --sync returns once journald has stored every entry sent before it
	// was called (journalctl(1)), so there is nothing to wait or poll for.
	if out, err := exec.Command("journalctl", append(which, "--sync")...).CombinedOutput(); err != nil {
		t.Fatalf("journalctl %s --sync: %v\n%s", which, err, out)
	}
	// --all, or journalctl shows fields bigger than 4096 bytes as null.
	args := slices.Concat(which, []string{"--output=json", "--all", "--no-pager"}, matches)
	out, err := exec.Command("journalctl", args...).Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	var entries []map[string][]string
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		entry := map[string][]string{}
		for name, v := range raw {
			entry[name] = jsonValues(v)
		}
		entries = append(entries, entry)
	}
	return entries
}

// jsonValues undoes journalctl's JSON: a field is a string, or an array of
// byte values when it isn't printable text, or an array of those when it
// occurs more than once.
func jsonValues(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		if len(v) > 0 {
			if _, isByte := v[0].(float64); !isByte {
				var all []string
				for _, e := range v {
					all = append(all, jsonValues(e)...)
				}
				return all
			}
		}
		b := make([]byte, len(v))
		for i, e := range v {
			b[i] = byte(e.(float64))
		}
		return []string{string(b)}
	}
	return []string{fmt.Sprint(v)}
}
