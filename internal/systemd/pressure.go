package systemd

import (
	"context"
	"fmt"
)

// MemoryPressure is where systemd ≥ 254 tells a service to watch for
// memory pressure, and how (systemd.io/PRESSURE, systemd.resource-control(5)
// MemoryPressureWatch=).
type MemoryPressure struct {
	// Watch is $MEMORY_PRESSURE_WATCH: a file to poll; "" or /dev/null
	// when there is nothing to watch.
	Watch string
	// Write is $MEMORY_PRESSURE_WRITE as passed: base64 of what to write
	// to Watch after opening it.
	Write string
}

// WatchMemoryPressure calls onPressure each time the kernel reports memory
// pressure, until ctx is done, following the protocol of systemd.io/PRESSURE
// as sd_event_add_memory_pressure(3) implements it.
//
// When p.Watch is "" or /dev/null, memory pressure watching is off (there is
// no systemd, or MemoryPressureWatch=off) and it returns nil at once.
//
// Otherwise p.Watch must be an absolute path to one of:
//   - a PSI file (/proc/pressure/memory, a cgroup's memory.pressure), which
//     signals pressure with POLLPRI once p.Write has set a trigger in it;
//   - a FIFO or character device, which signals with readable data;
//   - an AF_UNIX stream socket, which is connected to and signals with data.
//
// The decoded p.Write is written once, right after opening. Data read from a
// FIFO or socket is discarded. onPressure (not nil) runs on the calling
// goroutine; a PSI trigger fires at most once per window, so it is not called
// in a tight loop.
//
// It returns nil when ctx is done. It returns an error naming p.Watch, and
// watches no more, when p.Write is not base64, the path cannot be opened, the
// kernel refuses the trigger (EINVAL, EPERM), or the watch breaks (the cgroup
// was removed, the other end of a FIFO or socket hung up). Callers log it once.
func WatchMemoryPressure(ctx context.Context, p MemoryPressure, onPressure func()) error {
	if p.Watch == "" || p.Watch == "/dev/null" {
		return nil
	}
	fd, events, err := openPressure(p)
	if err != nil {
		return fmt.Errorf("memory pressure watch %s: %w", p.Watch, err)
	}
	defer closePressure(fd)
	if err := pollPressure(ctx, fd, events, onPressure); err != nil {
		return fmt.Errorf("memory pressure watch %s: %w", p.Watch, err)
	}
	return nil
}
