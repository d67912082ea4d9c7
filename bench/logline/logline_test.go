// Package logline measures what one log line per request would add to the
// request path. The kit logs no line per request, only what goes wrong (a
// panic: internal/lifecycle/routes.go); a service built from the template
// that logs each request pays
// this for every request, on top of what bench/run.sh measures for GET /.
package logline

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"example.com/daemon/internal/journald"
	"example.com/daemon/internal/journald/journaldtest"
)

// discard is a journald Transport that sends nowhere: the encoding alone.
type discard struct{}

func (discard) WriteMsg([]byte) error { return nil }

// logRequest is the line an access log would write: written the way
// handlers usually write it, with key-value pairs (which box the values).
func logRequest(l *slog.Logger) {
	l.Info("request", "method", "GET", "route", "/{$}", "status", 200, "bytes", 19,
		"elapsed", 143*time.Microsecond, "remote", "127.0.0.1:54321")
}

func BenchmarkRequestLine(b *testing.B) {
	for _, c := range []struct {
		name    string
		handler func(b *testing.B) slog.Handler
		level   slog.Level // the line's level; the handlers log info and up
	}{
		{"text/discard", func(*testing.B) slog.Handler { return slog.NewTextHandler(io.Discard, nil) }, slog.LevelInfo},
		{"json/discard", func(*testing.B) slog.Handler { return slog.NewJSONHandler(io.Discard, nil) }, slog.LevelInfo},
		{"journald/encode", func(*testing.B) slog.Handler {
			return journald.NewHandler(discard{}, journald.Options{Identifier: "daemon"})
		}, slog.LevelInfo},
		{"journald/socket", func(b *testing.B) slog.Handler {
			journaldtest.SkipWithout(b)
			return journald.NewHandler(&journald.Socket{}, journald.Options{Identifier: "daemon"})
		}, slog.LevelInfo},
		// A debug line while the level is info: what a line costs that
		// is written but not logged.
		{"text/debug-disabled", func(*testing.B) slog.Handler { return slog.NewTextHandler(io.Discard, nil) }, slog.LevelDebug},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := slog.New(c.handler(b))
			b.ReportAllocs()
			if c.level == slog.LevelDebug {
				for b.Loop() {
					l.Debug("request", "method", "GET", "route", "/{$}", "status", 200, "bytes", 19,
						"elapsed", 143*time.Microsecond, "remote", "127.0.0.1:54321")
				}
				return
			}
			for b.Loop() {
				logRequest(l)
			}
		})
	}
}
