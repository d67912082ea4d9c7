package systemd

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// failAfter bounds every wait so that a broken watcher fails the test instead
// of hanging it. Nothing waits this long when the code works.
const failAfter = 5 * time.Second

const psiMemory = "/proc/pressure/memory"

// startWatch runs WatchMemoryPressure on its own goroutine and returns the
// channel its result arrives on.
func startWatch(ctx context.Context, p MemoryPressure, onPressure func()) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- WatchMemoryPressure(ctx, p, onPressure) }()
	return errc
}

func waitReturn(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(failAfter):
		t.Fatalf("WatchMemoryPressure did not return within %v", failAfter)
		return nil
	}
}

func mkfifo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pressure.fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func requirePSI(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(psiMemory); err != nil {
		t.Skipf("no PSI on this kernel (%v); needs CONFIG_PSI and not psi=0", err)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestWatchMemoryPressureIsOffForEmptyAndDevNull(t *testing.T) {
	for _, watch := range []string{"", "/dev/null"} {
		t.Run(watch, func(t *testing.T) {
			var called atomic.Bool
			// A context that is never cancelled: only "off" makes it return.
			errc := startWatch(context.Background(), MemoryPressure{Watch: watch, Write: b64("some 150000 1000000")}, func() { called.Store(true) })
			if err := waitReturn(t, errc); err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if called.Load() {
				t.Error("onPressure was called")
			}
		})
	}
}

func TestWatchMemoryPressureHoldsAPSITriggerUntilCancelled(t *testing.T) {
	requirePSI(t)
	ctx, cancel := context.WithCancel(t.Context())
	// 150ms of stall per 2s window. A 2s window is what any process may set;
	// shorter ones need CAP_SYS_RESOURCE (EINVAL without it, even as root
	// in a container). The kernel overwrites the last byte written with a
	// NUL, so the trigger ends with one, as systemd's does.
	trigger := b64("some 150000 2000000\x00")
	// onPressure may legitimately run if the host is really stalling.
	errc := startWatch(ctx, MemoryPressure{Watch: psiMemory, Write: trigger}, func() {})
	cancel()
	start := time.Now()
	err := waitReturn(t, errc)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("kernel refuses PSI triggers here: %v", err)
	}
	if err != nil {
		t.Fatalf("got %v, want nil after cancel", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("returned %v after cancel, want promptly", d)
	}
}

func TestWatchMemoryPressureSetupErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := mkfifo(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	relFIFO, err := filepath.Rel(wd, fifo)
	if err != nil {
		t.Fatal(err)
	}
	_, badBase64 := base64.StdEncoding.DecodeString("not base64!")

	for _, tc := range []struct {
		name, watch, write string
		psi                bool
		want               error // nil: any error
	}{
		{name: "missing path", watch: filepath.Join(dir, "missing"), want: unix.ENOENT},
		{name: "bad base64", watch: fifo, write: "not base64!", want: badBase64},
		{name: "refused trigger", watch: psiMemory, write: b64("bogus"), psi: true, want: unix.EINVAL},
		// The kernel reports POLLERR on a PSI file without a trigger, as it
		// does once a watched cgroup is removed.
		{name: "PSI file without trigger", watch: psiMemory, psi: true},
		{name: "regular file that is not PSI", watch: plain, write: b64("some 150000 1000000")},
		{name: "relative path", watch: relFIFO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.psi {
				requirePSI(t)
			}
			var called atomic.Bool
			errc := startWatch(t.Context(), MemoryPressure{Watch: tc.watch, Write: tc.write}, func() { called.Store(true) })
			err := waitReturn(t, errc)
			if err == nil {
				t.Fatal("got nil, want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.watch) {
				t.Errorf("error %q does not name %s", err, tc.watch)
			}
			if called.Load() {
				t.Error("onPressure was called")
			}
		})
	}
}

func TestWatchMemoryPressureFIFOCallsOnPressureAndDrainsIt(t *testing.T) {
	path := mkfifo(t)
	// O_RDWR never blocks on a FIFO (fifo(7)), and holding a writer open
	// keeps the watcher from seeing a hang-up. It also lets the test read
	// back whatever the watcher left unread.
	w, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(w) })

	ctx, cancel := context.WithCancel(t.Context())
	calls := make(chan struct{})
	onPressure := func() {
		select {
		case calls <- struct{}{}:
		case <-ctx.Done():
		}
	}
	write := func() {
		t.Helper()
		if _, err := unix.Write(w, []byte{'!'}); err != nil {
			t.Fatal(err)
		}
	}
	waitCall := func() {
		t.Helper()
		select {
		case <-calls:
		case <-time.After(failAfter):
			t.Fatalf("onPressure not called within %v of a write", failAfter)
		}
	}

	write() // queued before the watcher opens the FIFO
	errc := startWatch(ctx, MemoryPressure{Watch: path}, onPressure)
	waitCall()
	write() // sent while the watcher is running
	waitCall()
	cancel()
	if err := waitReturn(t, errc); err != nil {
		t.Fatalf("got %v, want nil after cancel", err)
	}
	// Both bytes were read by the watcher: undrained data would make poll
	// report POLLIN forever and onPressure run in a tight loop.
	if n, err := unix.Read(w, make([]byte, 8)); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("FIFO still holds %d bytes (err %v), want it drained", n, err)
	}
}

func TestWatchMemoryPressureUnixSocketGetsWriteAndCallsOnPressure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pressure.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// What systemd itself passes for MemoryPressureThresholdSec=200ms,
	// trailing NUL included.
	payload := "some 200000 2000000\x00"

	calls := make(chan struct{})
	onPressure := func() {
		select {
		case calls <- struct{}{}:
		case <-t.Context().Done():
		}
	}
	errc := startWatch(t.Context(), MemoryPressure{Watch: path, Write: b64(payload)}, onPressure)

	ln.SetDeadline(time.Now().Add(failAfter))
	conn, err := ln.Accept() // the watcher connecting is the readiness signal
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(failAfter))
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != payload {
		t.Errorf("socket received %q, want %q", got, payload)
	}

	if _, err := conn.Write([]byte{'!'}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-calls:
	case <-time.After(failAfter):
		t.Fatalf("onPressure not called within %v of a write", failAfter)
	}

	// Hanging up ends the watch with an error; EOF stays readable, so a
	// watcher that took it for pressure would spin.
	conn.Close()
	err = waitReturn(t, errc)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v after hang-up, want an error naming %s", err, path)
	}
}

// TestWatchMemoryPressureClosesWhatItOpenedOnAnError: a watch that cannot
// be set up (the write refused, the file not PSI) leaves no descriptor open.
func TestWatchMemoryPressureClosesWhatItOpenedOnAnError(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	open := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(fds)
	}
	watches := []MemoryPressure{{Watch: plain, Write: b64("some 150000 1000000")}}
	if _, err := os.Stat(psiMemory); err == nil {
		watches = append(watches, MemoryPressure{Watch: psiMemory, Write: b64("bogus")})
	}
	before := open()
	for range 20 {
		for _, w := range watches {
			if err := WatchMemoryPressure(t.Context(), w, func() {}); err == nil {
				t.Fatalf("%+v: no error", w)
			}
		}
	}
	if after := open(); after > before {
		t.Errorf("%d descriptors open after %d failed watches, %d before", after, 20*len(watches), before)
	}
}
