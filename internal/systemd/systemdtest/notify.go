// Package systemdtest gives tests the systemd side of the notify protocol:
// a real unix datagram socket to pass as NOTIFY_SOCKET, and the messages
// that arrive on it, in order.
package systemdtest

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NotifySocket is a listening notify socket, as systemd's own.
type NotifySocket struct {
	// Addr is the value for NOTIFY_SOCKET.
	Addr     string
	messages chan string
	files    chan *os.File
}

// Listen opens a notify socket in a temporary directory, or in the abstract
// namespace when abstract is true (NOTIFY_SOCKET=@name). It closes with t.
func Listen(t testing.TB, abstract bool) *NotifySocket {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "notify")
	if abstract {
		addr = "@" + strings.ReplaceAll(t.Name(), "/", "_") + "-" + time.Now().Format("150405.000000000")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("notify socket: %v", err)
	}
	s := &NotifySocket{Addr: addr, messages: make(chan string, 1024), files: make(chan *os.File, 16)}
	done := make(chan struct{})
	t.Cleanup(func() {
		conn.Close()
		<-done
		for len(s.files) > 0 {
			(<-s.files).Close()
		}
	})
	go func() {
		defer close(done)
		defer close(s.messages)
		buf, oob := make([]byte, 64<<10), make([]byte, unix.CmsgSpace(16*4))
		for {
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			// File descriptors passed with FDSTORE=1, kept for the test
			// as systemd keeps them in its store.
			cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for i := range cmsgs {
				fds, _ := unix.ParseUnixRights(&cmsgs[i])
				for _, fd := range fds {
					s.files <- os.NewFile(uintptr(fd), "stored")
				}
			}
			s.messages <- string(buf[:n])
		}
	}()
	return s
}

// StoredFile returns the next file descriptor passed with FDSTORE=1.
func (s *NotifySocket) StoredFile(t testing.TB, timeout time.Duration) *os.File {
	t.Helper()
	select {
	case f := <-s.files:
		return f
	case <-time.After(timeout):
		t.Fatalf("no file descriptor stored within %s", timeout)
		return nil
	}
}

// Next returns the next datagram, failing t if none arrives within timeout.
func (s *NotifySocket) Next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case m, ok := <-s.messages:
		if !ok {
			t.Fatal("notify socket closed")
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no notify message within %s", timeout)
		return ""
	}
}

// NextOrNone returns the next datagram, or false if none arrives within
// timeout.
func (s *NotifySocket) NextOrNone(timeout time.Duration) (string, bool) {
	select {
	case m, ok := <-s.messages:
		return m, ok
	case <-time.After(timeout):
		return "", false
	}
}

// NextExcept returns the next datagram that is not one of skip (for
// example WATCHDOG=1 pings interleaved with the messages a test expects).
func (s *NotifySocket) NextExcept(t testing.TB, timeout time.Duration, skip ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := s.Next(t, time.Until(deadline))
		if !slices.Contains(skip, m) {
			return m
		}
	}
}

// Fields parses a datagram into its assignments.
func Fields(msg string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(msg, "\n") {
		k, v, _ := strings.Cut(line, "=")
		f[k] = v
	}
	return f
}

// Keys returns the variable names of a datagram, in order: READY, STATUS…
func Keys(msg string) []string {
	var keys []string
	for _, line := range strings.Split(msg, "\n") {
		k, _, _ := strings.Cut(line, "=")
		keys = append(keys, k)
	}
	return keys
}
