package compare

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	slogjournal "github.com/systemd/slog-journal"

	"example.com/daemon/internal/journald"
	"example.com/daemon/internal/journald/journaldtest"
)

// The same record goes through every benchmark: a message and 5
// attributes, 2 of them bound with With, logged through slog.Logger
// (LogAttrs, so that no benchmark pays for boxing arguments) and including
// the caller's location where the handler records it.

const (
	benchMessage = "request served"
	benchStatus  = 200
	benchElapsed = 1500 * time.Microsecond
)

func benchLogger(h slog.Handler) *slog.Logger {
	return slog.New(h).With("component", "http", "request_id", "8c1e2f6a9b3d4e57")
}

func logBenchRecord(l *slog.Logger) {
	l.LogAttrs(context.Background(), slog.LevelInfo, benchMessage,
		slog.String("method", "GET"), slog.Int("status", benchStatus), slog.Duration("elapsed", benchElapsed))
}

// discard is a Transport that sends nowhere, to measure encoding alone.
type discard struct{}

func (discard) WriteMsg([]byte) error { return nil }

// cpuTime returns the CPU time this process has spent so far, in all its
// threads (the garbage collector's too): in user space and in the kernel.
func cpuTime(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// measure runs log until the benchmark has its answer. Besides ns/op it
// reports the CPU time this process spent per record, split into user-ns/op
// (encoding, allocation and garbage collection: the logger's own work) and
// sys-ns/op (the kernel: sending the datagram, waking journald up). ns/op
// also counts the time spent waiting for journald when its socket's queue
// is full, which is neither.
func measure(b *testing.B, log func()) {
	b.ReportAllocs()
	user0, sys0 := cpuTime(b)
	for b.Loop() {
		log()
	}
	user1, sys1 := cpuTime(b)
	b.ReportMetric(float64(user1-user0)/float64(b.N), "user-ns/op")
	b.ReportMetric(float64(sys1-sys0)/float64(b.N), "sys-ns/op")
}

func BenchmarkHandlers(b *testing.B) {
	b.Run("journald/encode", func(b *testing.B) {
		l := benchLogger(journald.NewHandler(discard{}, journald.Options{Identifier: "bench"}))
		measure(b, func() { logBenchRecord(l) })
	})
	b.Run("journald/socket", func(b *testing.B) {
		journaldtest.SkipWithout(b)
		l := benchLogger(journald.NewHandler(&journald.Socket{}, journald.Options{Identifier: "bench"}))
		measure(b, func() { logBenchRecord(l) })
	})
	b.Run("slog-journal/socket", func(b *testing.B) {
		// slog-journal can't encode without sending, and it drops records
		// without a word when the socket is missing.
		journaldtest.SkipWithout(b)
		h, err := slogjournal.NewHandler(&slogjournal.Options{Level: slog.LevelInfo})
		if err != nil {
			b.Fatal(err)
		}
		l := benchLogger(h)
		measure(b, func() { logBenchRecord(l) })
	})
	b.Run("go-systemd-journal.Send/socket", func(b *testing.B) {
		// No slog here: the caller builds the same fields the handlers
		// send, and that is part of the work.
		journaldtest.SkipWithout(b)
		measure(b, func() {
			pc, file, line, _ := runtime.Caller(0)
			err := journal.Send(benchMessage, journal.PriInfo, map[string]string{
				"SYSLOG_IDENTIFIER": "bench",
				"CODE_FILE":         file,
				"CODE_LINE":         strconv.Itoa(line),
				"CODE_FUNC":         runtime.FuncForPC(pc).Name(),
				"COMPONENT":         "http",
				"REQUEST_ID":        "8c1e2f6a9b3d4e57",
				"METHOD":            "GET",
				"STATUS":            strconv.Itoa(benchStatus),
				"ELAPSED":           benchElapsed.String(),
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("slog.JSONHandler/discard", func(b *testing.B) {
		l := benchLogger(slog.NewJSONHandler(io.Discard, nil))
		measure(b, func() { logBenchRecord(l) })
	})
}
