package lifecycle_test

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The notify protocol as Run speaks it: the messages of a daemon's life in
// order, READY=1 (step 5) sent only once the daemon serves and says it is
// ready, and a notify socket that is not there or cannot be used.

func TestNotifiesReadyReloadingReadyStoppingInOrder(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: `greeting = "one"`})
	ready := d.ready(t)
	if !strings.Contains(ready["STATUS"], "Serving on 127.0.0.1:") {
		t.Errorf("STATUS=%q does not say what is served", ready["STATUS"])
	}

	before := monotonicUsec(t)
	d.signal(t, syscall.SIGHUP)
	reloading := expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	after := monotonicUsec(t)
	// systemd compares MONOTONIC_USEC with its own CLOCK_MONOTONIC reading
	// taken when it sent SIGHUP: it must be that clock, in microseconds.
	if usec, err := strconv.ParseInt(reloading["MONOTONIC_USEC"], 10, 64); err != nil || usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%s, want CLOCK_MONOTONIC µs between %d and %d", reloading["MONOTONIC_USEC"], before, after)
	}
	expect(t, d, "READY", "STATUS")

	d.signal(t, syscall.SIGTERM)
	stopping := expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	// The drain may take drain_timeout (10s by default), and exiting a
	// little more: 15 s, in microseconds.
	if got := stopping["EXTEND_TIMEOUT_USEC"]; got != "15000000" {
		t.Errorf("EXTEND_TIMEOUT_USEC=%q, want 15000000", got)
	}
	select {
	case <-d.done:
		if d.err != nil {
			t.Fatalf("Run after SIGTERM: %v, want nil", d.err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after SIGTERM")
	}
	if msg, ok := d.notify.NextOrNone(100 * time.Millisecond); ok {
		t.Errorf("message after STOPPING=1: %q", msg)
	}
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// TestReadyzAnswers200WhenReadyArrives: readiness is set before READY=1 is
// sent, so a client that systemd lets through once the unit is active finds
// the daemon ready.
func TestReadyzAnswers200WhenReadyArrives(t *testing.T) {
	t.Parallel()
	d := start(t, options{})
	d.ready(t)
	if code, _ := get(t, d.url+"/readyz"); code != 200 {
		t.Errorf("GET /readyz the moment READY=1 arrived: %d, want 200", code)
	}
}

// heldNotifySocket is a notify socket that the test reads only when it
// chooses, so that it can fill the socket's queue and hold the daemon's
// next message in sendmsg(2), as a busy systemd does.
type heldNotifySocket struct {
	addr string
	conn *net.UnixConn
}

func listenHeld(t *testing.T) *heldNotifySocket {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &heldNotifySocket{addr: addr, conn: conn}
}

func (s *heldNotifySocket) read(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	s.conn.SetReadDeadline(time.Now().Add(wait))
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// fill sends datagrams until the queue is full, and returns how many.
func (s *heldNotifySocket) fill(t *testing.T) int {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for n := 0; ; n++ {
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Write([]byte("FILLER=1")); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			return n
		}
	}
}

// TestServesAndIsReadyBeforeReadyIsSent: by the time READY=1 leaves, the
// daemon serves and /readyz says ready. The READY=1 is held here (the
// notify socket's queue is full) while a client asks; a daemon that began
// serving, or set readiness, only after sending READY=1 would not answer,
// or answer 503.
func TestServesAndIsReadyBeforeReadyIsSent(t *testing.T) {
	t.Parallel()
	sock := listenHeld(t)
	a := newTestApp()
	a.hold = make(chan struct{})
	d := start(t, options{app: a, notify: sock.addr})
	if msg := sock.read(t); msg != "STATUS=Starting" {
		t.Fatalf("first message %q, want STATUS=Starting", msg)
	}
	<-a.starting
	fillers := sock.fill(t)
	close(a.hold) // the start ends; READY=1 now waits in sendmsg(2)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(d.url + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz while READY=1 is being sent: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /readyz while READY=1 is being sent: %d, want 200", resp.StatusCode)
	}
	for range fillers {
		sock.read(t)
	}
	if msg := sock.read(t); !strings.HasPrefix(msg, "READY=1\n") {
		t.Errorf("after the fillers: %q, want READY=1", msg)
	}
}

// TestAVsockNotifySocketIsReportedOnce: with NOTIFY_SOCKET naming an
// AF_VSOCK address, the daemon serves as ever, says once that systemd will
// not hear from it, and does not log a failure at every watchdog ping.
func TestAVsockNotifySocketIsReportedOnce(t *testing.T) {
	t.Parallel()
	d := start(t, options{notify: "vsock:2:1234", watchdog: 40 * time.Millisecond})
	eventually(t, "ready", func() bool {
		resp, err := http.Get(d.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// Several watchdog intervals, each a ping that cannot be sent.
	eventually(t, "4 watchdog pings", func() bool {
		v, _ := metricIfAny(t, d, "daemon_watchdog_pings_total", "result", "sent")
		return v >= 4
	})
	logs := d.logs.String()
	if n := strings.Count(logs, "AF_VSOCK is not supported"); n != 1 {
		t.Errorf("the vsock address reported %d times, want once:\n%s", n, logs)
	}
	if strings.Contains(logs, "sd_notify failed") {
		t.Errorf("a failure logged at every message:\n%s", logs)
	}
}

// TestANotifyOutageIsLoggedOnce: a notify socket that does not answer (not
// there yet, or gone) is logged when the first message fails, not at every
// watchdog ping, and once more when messages go through again.
func TestANotifyOutageIsLoggedOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notify")
	d := start(t, options{notify: path, watchdog: 40 * time.Millisecond})
	// Several watchdog intervals, each a ping that cannot be sent.
	eventually(t, "4 watchdog pings", func() bool {
		n, _ := metricIfAny(t, d, "daemon_watchdog_pings_total", "result", "sent")
		return n >= 4
	})
	if n := strings.Count(d.logs.String(), "sd_notify failed"); n != 1 {
		t.Errorf("the outage logged %d times, want once:\n%s", n, d.logs)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, "said sd_notify works again", func() bool {
		return strings.Contains(d.logs.String(), "sd_notify works again")
	})
	if n := strings.Count(d.logs.String(), "sd_notify failed"); n != 1 {
		t.Errorf("sd_notify failed logged %d times, want once", n)
	}
}
