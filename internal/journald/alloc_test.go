//go:build !race

// The race detector makes sync.Pool drop buffers at random, so this only
// holds without it.

package journald

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// discard is a Transport that sends nowhere.
type discard struct{}

func (discard) WriteMsg([]byte) error { return nil }

// TestHandleDoesNotAllocate logs the record of bench/compare's
// BenchmarkHandlers: a message and 5 attributes, 2 of them bound with With.
func TestHandleDoesNotAllocate(t *testing.T) {
	logger := slog.New(NewHandler(discard{}, Options{Identifier: "test"})).With("component", "http", "request_id", "8c1e2f6a9b3d4e57")
	logRecord := func() {
		logger.LogAttrs(context.Background(), slog.LevelInfo, "request served",
			slog.String("method", "GET"), slog.Int("status", 200), slog.Duration("elapsed", 1500*time.Microsecond))
	}
	if n := testing.AllocsPerRun(1000, logRecord); n != 0 {
		t.Errorf("a record costs %v allocations, want none: buffers come from a pool", n)
	}
}
