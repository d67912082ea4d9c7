//go:build !linux

package systemd

import (
	"context"
	"errors"
)

// Memory pressure is reported by Linux's PSI; elsewhere there is nothing to
// watch, and the daemon runs on without it.

func openPressure(MemoryPressure) (int, int16, error) {
	return -1, 0, errors.New("memory pressure is watched on Linux only")
}

func pollPressure(context.Context, int, int16, func()) error { return nil }

func closePressure(int) {}
