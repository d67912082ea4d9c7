package logging

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"example.com/daemon/internal/journald"
)

func TestNewRefusesAnUnknownFormat(t *testing.T) {
	_, err := New(Options{Format: FormatJSON + 1, Stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "auto, journal, text, json") {
		t.Errorf("New with a format past the last: %v, want an error that lists the formats", err)
	}
}

// socketJournal is a Transport to the datagram socket at addr, the way the
// real one sends to journald's socket. Binding a socket there stands in for
// journald; with nothing bound, writes fail as they do without journald.
type socketJournal struct {
	conn *net.UnixConn
	addr *net.UnixAddr
}

func (j socketJournal) WriteMsg(entry []byte) error {
	_, err := j.conn.WriteToUnix(entry, j.addr)
	return err
}

// newJournal returns a Transport to a socket in a new directory and, if
// listening, the socket that journald would read from.
func newJournal(t *testing.T, listening bool) (socketJournal, *net.UnixConn) {
	t.Helper()
	dir := t.TempDir()
	bind := func(name string) *net.UnixConn {
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, name), Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	j := socketJournal{bind("client"), &net.UnixAddr{Name: filepath.Join(dir, "socket"), Net: "unixgram"}}
	if !listening {
		return j, nil
	}
	return j, bind("socket")
}

// socketpair returns both ends of a stream socket, which is what systemd
// connects a service's stderr to when it sends it to the journal.
func socketpair(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "stderr"), os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// devIno returns f's "<device>:<inode>", the way systemd writes it in
// JOURNAL_STREAM.
func devIno(t *testing.T, f *os.File) (dev, ino uint64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Dev), st.Ino
}

func TestNewChoosesOutput(t *testing.T) {
	tests := []struct {
		name      string
		format    Format
		stream    string // JOURNAL_STREAM names: "" nothing, "stderr", "peer", "other-device", or is this
		listening bool   // whether journald takes entries
		want      string // "journal", "text", "json", or "error"
	}{
		{"auto: journal when stderr is the journal stream", FormatAuto, "stderr", true, "journal"},
		{"auto: the zero Format is auto", Format(0), "stderr", true, "journal"},
		{"auto: text without JOURNAL_STREAM", FormatAuto, "", true, "text"},
		{"auto: text when stderr was redirected to another file", FormatAuto, "peer", true, "text"},
		{"auto: text when only the inode matches", FormatAuto, "other-device", true, "text"},
		{"auto: text when JOURNAL_STREAM is malformed", FormatAuto, "stderr-ish", true, "text"},
		{"auto: text when journald does not take entries", FormatAuto, "stderr", false, "text"},
		{"journal when journald takes entries", FormatJournal, "", true, "journal"},
		{"journal fails when journald does not take entries", FormatJournal, "stderr", false, "error"},
		{"text even under journald", FormatText, "stderr", true, "text"},
		{"json even under journald", FormatJSON, "stderr", true, "json"},
		{"unknown format fails", FormatJSON + 1, "stderr", true, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stderr, peer := socketpair(t)
			dev, ino := devIno(t, stderr)
			peerDev, peerIno := devIno(t, peer)
			stream := map[string]string{
				"":             "",
				"stderr":       fmt.Sprintf("%d:%d", dev, ino),
				"peer":         fmt.Sprintf("%d:%d", peerDev, peerIno),
				"other-device": fmt.Sprintf("%d:%d", dev+1, ino),
				"stderr-ish":   fmt.Sprintf("%d-%d", dev, ino),
			}[tt.stream]
			journal, _ := newJournal(t, tt.listening)

			logger, err := New(Options{
				Format:  tt.format,
				Getenv:  func(k string) string { return map[string]string{"JOURNAL_STREAM": stream}[k] },
				Stderr:  stderr,
				Journal: journal,
			})

			got := "error"
			if err == nil {
				switch logger.Handler().(type) {
				case *journald.Handler:
					got = "journal"
				case *slog.TextHandler:
					got = "text"
				case *slog.JSONHandler:
					got = "json"
				default:
					got = fmt.Sprintf("%T", logger.Handler())
				}
			}
			if got != tt.want {
				t.Errorf("New chose %s (error %v), want %s", got, err, tt.want)
			}
		})
	}
}

func TestLevelVarChangesLevelOfRunningLogger(t *testing.T) {
	for _, format := range []Format{FormatJournal, FormatText, FormatJSON} {
		t.Run(format.String(), func(t *testing.T) {
			journal, socket := newJournal(t, true)
			var stderr bytes.Buffer
			var level slog.LevelVar
			logger, err := New(Options{Format: format, Level: &level, Stderr: &stderr, Journal: journal})
			if err != nil {
				t.Fatal(err)
			}

			logger.Debug("hidden")
			level.Set(slog.LevelDebug)
			logger.Debug("shown")

			out := stderr.String()
			if format == FormatJournal {
				out = readUntil(t, socket, "shown")
			}
			if !strings.Contains(out, "shown") || strings.Contains(out, "hidden") {
				t.Errorf("logged:\n%s\nwant only the record after the level was lowered", out)
			}
		})
	}
}

// readUntil returns the entries read from socket up to the first one
// that contains s.
func readUntil(t *testing.T, socket *net.UnixConn, s string) string {
	t.Helper()
	var all []byte
	buf := make([]byte, 64<<10)
	socket.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !bytes.Contains(all, []byte(s)) {
		n, err := socket.Read(buf)
		if err != nil {
			t.Fatalf("read from journal socket: %v; got so far:\n%s", err, all)
		}
		all = append(all, buf[:n]...)
	}
	return string(all)
}

// TestFormatNames: a Format reads and writes the four names the
// configuration and -log-format take, and refuses any other with an error
// that lists them.
func TestFormatNames(t *testing.T) {
	for _, s := range []string{"auto", "journal", "text", "json"} {
		var f Format
		if err := f.UnmarshalText([]byte(s)); err != nil || f.String() != s {
			t.Errorf("Format %q: %q, %v", s, f, err)
		}
		if b, err := f.MarshalText(); err != nil || string(b) != s {
			t.Errorf("Format %q written back as %q, %v", s, b, err)
		}
	}
	for _, s := range []string{"", "JSON", "syslog", "0"} {
		var f Format
		if err := f.UnmarshalText([]byte(s)); err == nil || !strings.Contains(err.Error(), "auto, journal, text, json") {
			t.Errorf("Format %q: error %v, want one that lists the formats", s, err)
		}
	}
}
