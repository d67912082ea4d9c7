// Package journald is a log/slog handler that sends each record to
// systemd-journald as one structured entry, in journald's native protocol
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/, sd_journal_sendv(3)).
//
// A service's stderr already ends up in the journal, but as lines of text:
// every attribute is squashed into MESSAGE. Sent natively, each attribute
// becomes a field of its own that journalctl can match on
// (`journalctl HTTP_STATUS=500`), the level becomes PRIORITY (so
// `journalctl -p warning` works), and CODE_FILE, CODE_LINE and CODE_FUNC say
// where the record was logged.
package journald

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Transport delivers one encoded entry to journald. *Journal from
// github.com/ssgreg/journald is the real one: it sends the entry as one
// datagram to /run/systemd/journal/socket or, when the entry is too big for
// a datagram, writes it to an unlinked file and sends journald the file
// descriptor instead. It is safe for concurrent use, as a Transport must be.
type Transport interface {
	WriteMsg(entry []byte) error
}

// Options configure a Handler. The zero value is usable.
type Options struct {
	// Level is the lowest level that is logged; nil means slog.LevelInfo.
	// Pass a *slog.LevelVar to change it while the program runs.
	Level slog.Leveler

	// Identifier is sent as SYSLOG_IDENTIFIER: the name journalctl prints
	// before each message and that `journalctl -t` selects. Callers usually
	// pass filepath.Base(os.Args[0]). If empty, the field is left out and
	// journalctl shows the process name (_COMM) instead.
	Identifier string

	// Fallback receives the records the journal does not take (journald
	// stopped or restarting, socket missing) as slog.TextHandler lines, so
	// that none is lost. A daemon passes its stderr. If nil, Handle returns
	// the journal's error instead, which slog.Logger ignores: the record is
	// lost.
	Fallback io.Writer

	// OnJournalError is called with the error when a write to the journal
	// fails after the previous one succeeded: once per outage, not once per
	// record. If nil, the handler writes one line about it to Fallback.
	OnJournalError func(error)
}

// Handler is a slog.Handler that writes to the journal. Use NewHandler. It
// is safe for concurrent use.
type Handler struct {
	out    *output
	level  slog.Leveler
	prefix string       // group names from WithGroup, as field name prefix
	fields []byte       // SYSLOG_IDENTIFIER and WithAttrs' attributes, encoded once
	text   slog.Handler // Fallback, with the same groups and attributes; may be nil
}

// output is what all the handlers derived from one NewHandler share.
type output struct {
	journal Transport
	onError func(error)
	failing atomic.Bool // the last write to the journal failed
	buffers sync.Pool   // of *[]byte, so a record costs no new buffer
}

// NewHandler returns a Handler that sends records to journal.
func NewHandler(journal Transport, opts Options) *Handler {
	h := &Handler{
		out:   &output{journal: journal, onError: opts.OnJournalError},
		level: opts.Level,
	}
	h.out.buffers.New = func() any { b := make([]byte, 0, 1024); return &b }
	if h.level == nil {
		h.level = slog.LevelInfo
	}
	if opts.Identifier != "" {
		h.fields = appendString(nil, "SYSLOG_IDENTIFIER", opts.Identifier)
	}
	if opts.Fallback != nil {
		h.text = slog.NewTextHandler(opts.Fallback, nil)
		if h.out.onError == nil {
			notice := h.text // without attributes or groups added by With
			h.out.onError = func(err error) {
				r := slog.NewRecord(time.Now(), slog.LevelError,
					"journal unavailable, logging here until it takes entries again", 0)
				r.AddAttrs(slog.Any("error", err))
				_ = notice.Handle(context.Background(), r)
			}
		}
	}
	return h
}

// Enabled reports whether records at level l are logged.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// Handle sends r to the journal as one entry, or to Fallback if the journal
// does not take it.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	buf := h.out.buffers.Get().(*[]byte)
	*buf = foldFields(h.encode((*buf)[:0], r))
	err := h.out.journal.WriteMsg(*buf)
	// A buffer that grew for a huge entry is left to the garbage collector
	// rather than kept in the pool for ever.
	if cap(*buf) <= 64<<10 {
		h.out.buffers.Put(buf)
	}
	if err == nil {
		if h.out.failing.Load() {
			h.out.failing.Store(false)
		}
		return nil
	}
	if h.text == nil {
		return fmt.Errorf("write to journal: %w", err)
	}
	if h.out.failing.CompareAndSwap(false, true) {
		h.out.onError(err)
	}
	return h.text.Handle(ctx, r)
}

// encode appends r to b as an entry in the native protocol: a sequence of
// fields, each NAME=value and a newline (see endValue for values with
// newlines).
func (h *Handler) encode(b []byte, r slog.Record) []byte {
	b = appendString(b, "MESSAGE", r.Message)
	b = append(b, "PRIORITY="...)
	b = append(b, priority(r.Level), '\n')
	// No time: journald stamps each entry as it receives it
	// (__REALTIME_TIMESTAMP, the time journalctl shows), as it does for
	// sd_journal_send(3). SYSLOG_TIMESTAMP= is not for this: it holds "the
	// timestamp as specified in the original datagram" of a syslog message
	// (systemd.journal-fields(7)), and a native entry has none.
	b = appendSource(b, r.PC)
	b = append(b, h.fields...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.prefix, a)
		return true
	})
	return b
}

// WithAttrs returns a Handler that adds attrs to every record. They are
// encoded here, once, rather than again for each record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.fields = slices.Clip(h.fields) // so appending copies, leaving h's alone
	for _, a := range attrs {
		h2.fields = appendAttr(h2.fields, h.prefix, a)
	}
	if h.text != nil {
		h2.text = h.text.WithAttrs(attrs)
	}
	return &h2
}

// WithGroup returns a Handler that puts later attributes in group name: an
// attribute k then becomes the field NAME_K.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = groupPrefix(h.prefix, name)
	if h.text != nil {
		h2.text = h.text.WithGroup(name)
	}
	return &h2
}
