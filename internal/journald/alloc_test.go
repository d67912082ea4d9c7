//go:build !race

// The race detector makes sync.Pool drop buffers at random, so this only
// holds without it.

package journald

import "testing"

func TestHandleDoesNotAllocate(t *testing.T) {
	logger := benchLogger(NewHandler(discard{}, Options{Identifier: "test"}))
	if n := testing.AllocsPerRun(1000, func() { logBenchRecord(logger) }); n != 0 {
		t.Errorf("a record costs %v allocations, want none: buffers come from a pool", n)
	}
}
