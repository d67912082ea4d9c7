package lifecycle_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"example.com/daemon/internal/systemd"
)

// Step 6, while the daemon runs: the watchdog, fed only while the health
// check passes and never once the stop began, and memory pressure.

func TestWatchdogPingsAtHalfTheInterval(t *testing.T) {
	const interval = 400 * time.Millisecond
	d := start(t, options{watchdog: interval})
	d.ready(t)
	last := time.Now()
	var gaps []time.Duration
	for range 5 {
		if msg := d.notify.Next(t, wait); msg != watchdogPing {
			t.Fatalf("got %q, want WATCHDOG=1", msg)
		}
		gaps = append(gaps, time.Since(last))
		last = time.Now()
	}
	slices.Sort(gaps)
	// Half the interval, with room for a loaded machine; a daemon that
	// pinged at the full interval (too late) or not at all fails.
	if median := gaps[2]; median < interval/4 || median > interval*3/4 {
		t.Errorf("median gap between pings %s, want about %s (gaps %v)", median, interval/2, gaps)
	}
}

func TestWatchdogStopsWhenHealthCheckFails(t *testing.T) {
	const interval = 400 * time.Millisecond
	d := start(t, options{watchdog: interval})
	d.ready(t)
	if msg := d.notify.Next(t, wait); msg != watchdogPing {
		t.Fatalf("got %q, want WATCHDOG=1 while healthy", msg)
	}
	d.app.wedged.Store(true)
	// A ping already on its way may still arrive; after that, none for
	// longer than systemd would wait.
	d.notify.NextOrNone(interval / 2)
	if msg, ok := d.notify.NextOrNone(2 * interval); ok {
		t.Errorf("got %q from a wedged app, want no watchdog ping", msg)
	}
	if code, _ := get(t, d.url+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz of a wedged app: %d, want 503", code)
	}
	if v := metric(t, d, "daemon_watchdog_pings_total", "result", "skipped"); v < 1 {
		t.Errorf("skipped watchdog pings = %v, want at least 1", v)
	}
	if v := metric(t, d, "daemon_watchdog_pings_total", "result", "sent"); v < 1 {
		t.Errorf("sent watchdog pings = %v, want at least 1", v)
	}
	d.app.wedged.Store(false)
	if code, _ := get(t, d.url+"/healthz"); code != 200 {
		t.Errorf("GET /healthz once healthy again: %d, want 200", code)
	}
}

// TestWatchdogIsNotFedWhileStopping: systemd disarms the watchdog when a
// stop begins, so the daemon stops pinging at STOPPING=1; a drain longer
// than the interval sends no WATCHDOG=1.
func TestWatchdogIsNotFedWhileStopping(t *testing.T) {
	t.Parallel()
	const interval = 100 * time.Millisecond
	d := start(t, options{watchdog: interval})
	d.ready(t)
	if msg := d.notify.Next(t, wait); msg != watchdogPing {
		t.Fatalf("got %q, want WATCHDOG=1", msg)
	}
	slow := startRequest(t, d, d.url+"/sleep?d=800ms")
	d.signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	if msg, ok := d.notify.NextOrNone(500 * time.Millisecond); ok {
		t.Errorf("got %q during the drain, want nothing after STOPPING=1", msg)
	}
	if r := <-slow; r.code != 200 {
		t.Errorf("the in-flight request: %d %v", r.code, r.err)
	}
	d.stopped(t)
}

// TestAHungHealthCheckDoesNotHoldTheStop: a check that hangs past its
// context starves the watchdog, but a stop still says STOPPING=1, drains
// and returns.
func TestAHungHealthCheckDoesNotHoldTheStop(t *testing.T) {
	t.Parallel()
	d := start(t, options{watchdog: 100 * time.Millisecond})
	d.ready(t)
	if msg := d.notify.Next(t, wait); msg != watchdogPing {
		t.Fatalf("got %q, want WATCHDOG=1", msg)
	}
	d.app.hung.Store(true)
	defer close(d.app.release)
	d.notify.NextOrNone(100 * time.Millisecond) // a ping on its way; then the check hangs
	d.signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	d.stopped(t)
}

// TestMemoryPressureGivesMemoryBack: each event on $MEMORY_PRESSURE_WATCH
// (here a FIFO, one of the forms systemd.io/PRESSURE allows, so that the
// test can raise one) makes the app release what it can and the daemon
// return memory to the kernel, counted and logged at debug.
func TestMemoryPressureGivesMemoryBack(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "memory.pressure")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	d := start(t, options{config: `log_level = "debug"`, pressure: systemd.MemoryPressure{Watch: fifo}})
	d.ready(t)
	// Opening for writing succeeds once the daemon has the FIFO open for
	// reading.
	var w *os.File
	for deadline := time.Now().Add(wait); w == nil; time.Sleep(5 * time.Millisecond) {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w = f
		} else if time.Now().After(deadline) {
			t.Fatalf("the daemon never opened %s: %v", fifo, err)
		}
	}
	defer w.Close()
	for i := 1; i <= 2; i++ {
		if _, err := w.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		eventually(t, fmt.Sprintf("counted event %d", i), func() bool {
			return metric(t, d, "daemon_memory_pressure_events_total") >= float64(i)
		})
	}
	if n := d.app.released.Load(); n != 2 {
		t.Errorf("the app released memory %d times for 2 events", n)
	}
	if n := strings.Count(d.logs.String(), "memory pressure: memory given back to the kernel"); n != 2 {
		t.Errorf("%d debug lines for 2 events:\n%s", n, d.logs)
	}
	// The watch ends with the daemon: once Run has returned, nobody has
	// the FIFO open for reading.
	d.signal(t, syscall.SIGTERM)
	d.stopped(t)
	if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); !errors.Is(err, syscall.ENXIO) {
		if err == nil {
			f.Close()
		}
		t.Errorf("opening the FIFO for writing after Run returned: %v, want ENXIO (no reader left)", err)
	}
}

// TestAMemoryPressureWatchThatCannotBeSetUpIsLoggedOnce: a path that cannot
// be opened, or a trigger the kernel refuses, is one warning, and the daemon
// serves on; /dev/null (MemoryPressureWatch=off) and a trigger the kernel
// takes (a real PSI file) are none.
func TestAMemoryPressureWatchThatCannotBeSetUpIsLoggedOnce(t *testing.T) {
	t.Parallel()
	trigger := base64.StdEncoding.EncodeToString([]byte("some 150000 2000000\x00"))
	for _, tc := range []struct {
		name     string
		pressure systemd.MemoryPressure
		warnings int
	}{
		{"missing", systemd.MemoryPressure{Watch: "/nonexistent/memory.pressure"}, 1},
		{"refused trigger", systemd.MemoryPressure{Watch: "/proc/pressure/memory", Write: base64.StdEncoding.EncodeToString([]byte("bogus"))}, 1},
		{"off", systemd.MemoryPressure{Watch: "/dev/null"}, 0},
		{"a PSI trigger", systemd.MemoryPressure{Watch: "/proc/pressure/memory", Write: trigger}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.pressure.Watch, "/proc/pressure") {
				if _, err := os.Stat(tc.pressure.Watch); err != nil {
					t.Skipf("this kernel has no PSI: %v", err)
				}
			}
			d := start(t, options{pressure: tc.pressure})
			d.ready(t)
			if code, _ := get(t, d.url+"/"); code != 200 {
				t.Errorf("GET / = %d", code)
			}
			d.signal(t, syscall.SIGTERM)
			d.stopped(t)
			if n := strings.Count(d.logs.String(), "not watching for memory pressure"); n != tc.warnings {
				t.Errorf("%d warnings, want %d:\n%s", n, tc.warnings, d.logs)
			}
		})
	}
}
