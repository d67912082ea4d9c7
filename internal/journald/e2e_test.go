package journald

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/daemon/internal/journald/journaldtest"
)

// systemSocket returns a Socket to the system's journald, closed when the
// test ends.
func systemSocket(t *testing.T) *Socket {
	s := &Socket{}
	t.Cleanup(func() { s.Close() })
	return s
}

func uniqueIdentifier() string {
	return fmt.Sprintf("journald-test-%d-%d", os.Getpid(), time.Now().UnixNano())
}

func TestJournaldStoresEntryWithAllFields(t *testing.T) {
	journaldtest.Need(t)
	id := uniqueIdentifier()
	var fallback bytes.Buffer
	logger := slog.New(NewHandler(systemSocket(t), Options{Identifier: id, Fallback: &fallback}))
	logger = logger.With("component", "e2e").WithGroup("http")
	_, file, line, _ := runtime.Caller(0)
	logger.Warn("request\nfailed", "status", 503, "body", "line 1\nline 2") // must stay on the line after runtime.Caller

	entries := journaldtest.Read(t, "SYSLOG_IDENTIFIER="+id)
	if fallback.Len() > 0 {
		t.Fatalf("the journal refused the record:\n%s", &fallback)
	}
	if len(entries) != 1 {
		t.Fatalf("journal has %d entries with SYSLOG_IDENTIFIER=%s, want 1", len(entries), id)
	}
	want := map[string]string{
		"_TRANSPORT":        "journal", // the native protocol, not stdout
		"MESSAGE":           "request\nfailed",
		"PRIORITY":          "4",
		"SYSLOG_IDENTIFIER": id,
		"CODE_FILE":         file,
		"CODE_LINE":         strconv.Itoa(line + 1),
		"CODE_FUNC":         pkgPath + ".TestJournaldStoresEntryWithAllFields",
		"COMPONENT":         "e2e",
		"HTTP_STATUS":       "503",
		"HTTP_BODY":         "line 1\nline 2",
	}
	for name, value := range want {
		if got := entries[0][name]; !slices.Equal(got, []string{value}) {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
}

// maxDatagram returns the size of the biggest entry the kernel could send
// as one datagram. A datagram can't be bigger than the sender's socket
// buffer: Socket asks for 8 MiB, and the kernel grants at most
// net.core.wmem_max, doubled (socket(7), SO_SNDBUF).
func maxDatagram(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		t.Fatal(err)
	}
	wmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return 2 * min(wmemMax, 8<<20)
}

func TestJournaldStoresEntryTooBigForADatagram(t *testing.T) {
	journaldtest.Need(t)
	id := uniqueIdentifier()
	// Bigger than any datagram, so it can only reach journald as a file
	// descriptor; and at least 1 MiB whatever the kernel's limits.
	size := max(1<<20, maxDatagram(t)) + 1
	big := strings.Repeat("0123456789abcde\n", size/16+1)[:size]
	var fallback bytes.Buffer
	logger := slog.New(NewHandler(systemSocket(t), Options{Identifier: id, Fallback: &fallback}))
	logger.Info("big", "big", big)

	entries := journaldtest.Read(t, "SYSLOG_IDENTIFIER="+id)
	if fallback.Len() > 0 {
		t.Fatalf("the journal refused the record:\n%.1000s", &fallback)
	}
	if len(entries) != 1 {
		t.Fatalf("journal has %d entries with SYSLOG_IDENTIFIER=%s, want 1", len(entries), id)
	}
	if got := entries[0]["BIG"]; len(got) != 1 || got[0] != big {
		t.Errorf("BIG did not arrive whole: want %d bytes", size)
	}
}

// journald acts on the last PRIORITY= of an entry: an attribute named
// priority must not be it. With MaxLevelStore=warning, journald keeps a
// warning whatever its attributes say, and drops an info record.
func TestJournaldActsOnTheRecordsLevelNotAnAttribute(t *testing.T) {
	journal := journaldtest.StartPrivate(t, "MaxLevelStore=warning")
	socket := &Socket{Path: journal.Socket}
	t.Cleanup(func() { socket.Close() })
	id := uniqueIdentifier()
	var fallback bytes.Buffer
	logger := slog.New(NewHandler(socket, Options{Identifier: id, Fallback: &fallback}))
	logger.Warn("kept", "priority", 7, "message", "not the message", "syslog_identifier", "other")
	logger.Info("dropped", "priority", 0)

	entries := journal.Read(t, "SYSLOG_IDENTIFIER="+id)
	if fallback.Len() > 0 {
		t.Fatalf("the journal refused a record:\n%s", &fallback)
	}
	if len(entries) != 1 {
		t.Fatalf("journal has %d entries with SYSLOG_IDENTIFIER=%s, want only the warning", len(entries), id)
	}
	want := map[string]string{
		"MESSAGE":             "kept",
		"PRIORITY":            "4",
		"SYSLOG_IDENTIFIER":   id,
		"X_PRIORITY":          "7",
		"X_MESSAGE":           "not the message",
		"X_SYSLOG_IDENTIFIER": "other",
	}
	for name, value := range want {
		if got := entries[0][name]; !slices.Equal(got, []string{value}) {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
}

// An entry of over a thousand fields fills the field table of the
// journal file it lands in, so journald rotates that file at the next
// write, and may delete the oldest archived files to stay within its
// limits. That is why the entry goes to a journal of its own: in the
// system's, such rotations, with other tests writing, could remove the
// entry before it is read back.
func TestJournaldStoresEntryOfTooManyAttributes(t *testing.T) {
	journal := journaldtest.StartPrivate(t)
	socket := &Socket{Path: journal.Socket}
	t.Cleanup(func() { socket.Close() })
	id := uniqueIdentifier()
	var fallback bytes.Buffer
	logger := slog.New(NewHandler(socket, Options{Identifier: id, Fallback: &fallback}))
	logger.Info("many", manyAttrs(1100)...)

	entries := journal.Read(t, "SYSLOG_IDENTIFIER="+id)
	if fallback.Len() > 0 {
		t.Fatalf("the journal refused the record:\n%.1000s", &fallback)
	}
	if len(entries) != 1 {
		t.Fatalf("journal has %d entries with SYSLOG_IDENTIFIER=%s, want 1", len(entries), id)
	}
	for name, value := range map[string]string{"MESSAGE": "many", "PRIORITY": "6"} {
		if got := entries[0][name]; !slices.Equal(got, []string{value}) {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
	checkAllAttrs(t, entries[0], 1100)
}
