// Package logging builds the daemon's *slog.Logger and chooses where it
// writes: to the journal in its native protocol when the daemon runs under
// systemd, as text on stderr otherwise, or whatever the configuration asks.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"example.com/daemon/internal/journald"
)

// Format names an output for the logs. It is the one type of the
// log_format setting and of the -log-format flag: like slog.Level, it reads
// and writes itself by name (encoding.TextUnmarshaler and TextMarshaler),
// so the configuration and the command line take the same names and refuse
// the same mistakes. The zero Format is FormatAuto.
type Format int

// The formats. Their names, as the configuration and the flag give them,
// are what String returns.
const (
	// FormatAuto is FormatJournal when stderr is connected to the journal
	// and journald takes entries, and FormatText otherwise.
	FormatAuto Format = iota
	// FormatJournal sends structured entries to systemd-journald.
	FormatJournal
	// FormatText writes slog.TextHandler lines (key=value) to stderr.
	FormatText
	// FormatJSON writes slog.JSONHandler lines to stderr.
	FormatJSON
)

// String is the format's name: auto, journal, text or json.
func (f Format) String() string {
	switch f {
	case FormatAuto:
		return "auto"
	case FormatJournal:
		return "journal"
	case FormatText:
		return "text"
	case FormatJSON:
		return "json"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// UnmarshalText accepts the formats' names, and nothing else.
func (f *Format) UnmarshalText(b []byte) error {
	for g := FormatAuto; g <= FormatJSON; g++ {
		if string(b) == g.String() {
			*f = g
			return nil
		}
	}
	return fmt.Errorf("log format %q: must be one of auto, journal, text, json", b)
}

// MarshalText writes the format's name, as UnmarshalText reads it.
func (f Format) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// Options are what New needs to know; the process environment comes in here
// rather than from os, so that tests can give their own.
type Options struct {
	// Format chooses the output.
	Format Format

	// Level is the lowest level that is logged; nil means slog.LevelInfo.
	// The logger reads it for every record, so setting it (on SIGHUP, say)
	// changes the level of a running daemon.
	Level *slog.LevelVar

	// Identifier is the SYSLOG_IDENTIFIER of journal entries: the name
	// journalctl shows, usually filepath.Base(os.Args[0]).
	Identifier string

	// Getenv reads the environment, as os.Getenv does; nil means an empty
	// environment.
	Getenv func(string) string

	// Stderr is where text and JSON lines go, and where journal entries
	// go while journald does not take them; it must not be nil. FormatAuto
	// checks whether it is the journal's stream, which needs its file
	// descriptor, so pass os.Stderr (any value with an Fd() uintptr method).
	Stderr io.Writer

	// Journal sends entries to journald; nil means the system journal's
	// socket, /run/systemd/journal/socket.
	Journal journald.Transport
}

// New returns a logger that writes as opts say. It fails only when the
// journal is asked for and journald does not take entries.
func New(opts Options) (*slog.Logger, error) {
	var level slog.Leveler = slog.LevelInfo
	if opts.Level != nil {
		level = opts.Level
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	journal := opts.Journal
	if journal == nil {
		journal = &journald.Socket{}
	}
	toJournal := func() *slog.Logger {
		return slog.New(journald.NewHandler(journal, journald.Options{
			Level:      level,
			Identifier: opts.Identifier,
			Fallback:   opts.Stderr,
		}))
	}
	lines := &slog.HandlerOptions{Level: level} // for text and JSON

	switch opts.Format {
	case FormatAuto:
		// Under systemd, stderr already goes to the journal, as plain
		// lines; the native protocol carries the same records with their
		// level and attributes as fields. Anywhere else (a terminal, a
		// container runtime, a pipe) text on stderr is what is read.
		if isJournalStream(getenv, opts.Stderr) && accepts(journal) == nil {
			return toJournal(), nil
		}
		return slog.New(slog.NewTextHandler(opts.Stderr, lines)), nil
	case FormatJournal:
		if err := accepts(journal); err != nil {
			return nil, fmt.Errorf("log format journal: journald does not take entries (is systemd-journald running?): %w", err)
		}
		return toJournal(), nil
	case FormatText:
		return slog.New(slog.NewTextHandler(opts.Stderr, lines)), nil
	case FormatJSON:
		return slog.New(slog.NewJSONHandler(opts.Stderr, lines)), nil
	}
	return nil, fmt.Errorf("log format %v: must be one of auto, journal, text, json", opts.Format)
}

// isJournalStream reports whether stderr is the stream systemd connected to
// the journal. When systemd connects a service's stdout or stderr to the
// journal it sets JOURNAL_STREAM to the device and inode numbers of that
// stream, "<dev>:<ino>". The variable alone proves little: children inherit
// it even when a shell or a wrapper has redirected their stderr elsewhere.
// So, as systemd.exec(5) says under $JOURNAL_STREAM, compare it with what
// fstat(2) says stderr is; only then switch to the native protocol.
//
// (go-systemd's journal.StderrIsJournalStream does the same, but with
// os.Getenv and file descriptor 2 rather than what it is given.)
func isJournalStream(getenv func(string) string, stderr io.Writer) bool {
	devText, inoText, ok := strings.Cut(getenv("JOURNAL_STREAM"), ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devText, 10, 64)
	ino, err2 := strconv.ParseUint(inoText, 10, 64)
	f, ok := stderr.(interface{ Fd() uintptr })
	if err1 != nil || err2 != nil || !ok {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// accepts checks that journald takes entries, by sending it an empty one.
// journald reads an empty datagram and stores nothing; and the empty entry
// travels the same way every later one will, so it fails the same way when
// journald isn't there: ENOENT without the socket file, ECONNREFUSED when
// nothing listens on it.
func accepts(journal journald.Transport) error {
	return journal.WriteMsg(nil)
}
