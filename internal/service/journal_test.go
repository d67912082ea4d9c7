package service_test

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"example.com/daemon/internal/journald/journaldtest"
	"example.com/daemon/internal/systemd/systemdtest"
)

// journalStream connects to journald's stream socket the way systemd does
// for a unit with StandardError=journal, and returns the connection (to be
// the child's stderr) and the JOURNAL_STREAM value that names it.
func journalStream(t *testing.T) (*os.File, string) {
	t.Helper()
	conn, err := net.Dial("unix", "/run/systemd/journal/stdout")
	if err != nil {
		t.Fatalf("journald stream socket: %v", err)
	}
	defer conn.Close()
	// The stream protocol begins with a header of seven lines: identifier,
	// unit, priority, level prefix, and forwarding to syslog, kmsg, console.
	if _, err := fmt.Fprintf(conn, "daemon-test\n\n6\n0\n0\n0\n0\n"); err != nil {
		t.Fatal(err)
	}
	f, err := conn.(*net.UnixConn).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return f, fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestLogsGoToTheJournalAsStructuredEntries(t *testing.T) {
	journaldtest.Need(t)
	stream, journalStreamEnv := journalStream(t)
	ln := systemdtest.ListenTCP(t)
	cmd := command(t, `greeting = "hi"`)
	cmd.Stderr = stream
	cmd.Env = append(cmd.Env, "JOURNAL_STREAM="+journalStreamEnv)
	systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	p.WaitReady(t)
	// A reload that fails logs an error with the config file's position.
	if err := os.WriteFile(systemdtest.ConfigPath(cmd), []byte("greeting = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGHUP)
	p.WaitReady(t)
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}

	entries := journaldtest.Read(t, fmt.Sprintf("_PID=%d", p.Cmd.Process.Pid))
	byMessage := map[string]map[string][]string{}
	for _, e := range entries {
		// Sent with the native protocol, not as lines on the stream.
		if got := e["_TRANSPORT"]; len(got) != 1 || got[0] != "journal" {
			t.Errorf("entry %q came by %v, want the native protocol (journal)", e["MESSAGE"], got)
		}
		byMessage[first(e["MESSAGE"])] = e
	}
	for _, want := range []struct {
		message, priority, field, value string
	}{
		{"ready", "6", "ORIGIN", "socket-activated"},
		{"reload failed; still using the previous configuration", "3", "ERR", systemdtest.ConfigPath(cmd) + ":1:"},
	} {
		e, ok := byMessage[want.message]
		if !ok {
			t.Errorf("no entry %q among %d entries: %v", want.message, len(entries), entries)
			continue
		}
		if got := first(e["PRIORITY"]); got != want.priority {
			t.Errorf("%q: PRIORITY=%s, want %s", want.message, got, want.priority)
		}
		if got := first(e[want.field]); !strings.Contains(got, want.value) {
			t.Errorf("%q: %s=%q, want %q in it", want.message, want.field, got, want.value)
		}
		if got := first(e["CODE_FILE"]); !strings.HasSuffix(got, "internal/lifecycle/lifecycle.go") {
			t.Errorf("%q: CODE_FILE=%q", want.message, got)
		}
		if got := first(e["SYSLOG_IDENTIFIER"]); got != "daemon" {
			t.Errorf("%q: SYSLOG_IDENTIFIER=%q, want the binary's name", want.message, got)
		}
	}
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}
