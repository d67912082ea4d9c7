// Package systemdtest gives tests the systemd side of the notify protocol:
// a real unix datagram socket to pass as NOTIFY_SOCKET, and the messages
// that arrive on it, in order, read as systemd reads them.
package systemdtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NotifySocket is a listening notify socket, as systemd's own. It is no
// kinder than systemd: a datagram systemd would ignore never reaches a test
// as a message (see Datagram).
type NotifySocket struct {
	// Addr is the value for NOTIFY_SOCKET.
	Addr      string
	datagrams chan Datagram
	files     chan *os.File
}

// bufferMax is systemd's NOTIFY_BUFFER_MAX: it reads a notify datagram into
// a buffer of 4096 bytes and ignores one that did not fit (MSG_TRUNC),
// whole. It is written out here, not taken from package systemd, so that
// the tests check the sender against systemd's number rather than against
// the sender's own idea of it.
const bufferMax = 4096

// fdMax is how many descriptors one datagram may carry; systemd allows 768
// (NOTIFY_FD_MAX) and ignores a datagram whose control data was cut
// (MSG_CTRUNC). The tests pass a few.
const fdMax = 16

// Datagram is one datagram that arrived on the socket.
type Datagram struct {
	// Text is the datagram as received: its first bufferMax bytes.
	Text string
	// Dropped says why systemd would ignore the datagram, with every
	// assignment in it, or is empty when systemd would act on it.
	Dropped string
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
	s := &NotifySocket{Addr: addr, datagrams: make(chan Datagram, 1024), files: make(chan *os.File, 16)}
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
		defer close(s.datagrams)
		buf, oob := make([]byte, bufferMax), make([]byte, unix.CmsgSpace(fdMax*4))
		for {
			n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			d := Datagram{Text: string(buf[:n]), Dropped: dropped(buf[:n], flags)}
			cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for i := range cmsgs {
				fds, _ := unix.ParseUnixRights(&cmsgs[i])
				for _, fd := range fds {
					// File descriptors passed with FDSTORE=1 are kept for
					// the test as systemd keeps them in its store; those
					// of a dropped datagram are closed, as systemd does.
					f := os.NewFile(uintptr(fd), "stored")
					if d.Dropped != "" {
						f.Close()
						continue
					}
					s.files <- f
				}
			}
			s.datagrams <- d
		}
	}()
	return s
}

// dropped says why systemd would ignore a datagram received as msg with
// the recvmsg(2) flags, or returns "" (src/shared/notify-recv.c).
func dropped(msg []byte, flags int) string {
	switch {
	case flags&unix.MSG_TRUNC != 0:
		return fmt.Sprintf("longer than %d bytes (NOTIFY_BUFFER_MAX): systemd ignores it whole", bufferMax)
	case flags&unix.MSG_CTRUNC != 0:
		return "more file descriptors than the control buffer holds: systemd ignores it whole"
	case len(msg) > 1 && bytes.IndexByte(msg[:len(msg)-1], 0) >= 0:
		// One trailing NUL is allowed, as systemd allows it.
		return "a NUL byte inside: systemd ignores it whole"
	}
	return ""
}

// NextDatagram returns the next datagram, whether systemd would act on it
// or drop it, failing t if none arrives within timeout. Most tests want
// Next; this is for a test of what is dropped.
func (s *NotifySocket) NextDatagram(t testing.TB, timeout time.Duration) Datagram {
	t.Helper()
	select {
	case d, ok := <-s.datagrams:
		if !ok {
			t.Fatal("notify socket closed")
		}
		return d
	case <-time.After(timeout):
		t.Fatalf("no notify message within %s", timeout)
		return Datagram{}
	}
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

// Next returns the next datagram, failing t if none arrives within
// timeout. A datagram systemd would drop fails t at once, saying why:
// systemd would never see it, and a test that waited for, say, the READY=1
// inside it would otherwise only time out.
func (s *NotifySocket) Next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	d := s.NextDatagram(t, timeout)
	if d.Dropped != "" {
		t.Fatalf("systemd would drop this notify datagram, %s: %.200q…", d.Dropped, d.Text)
	}
	return d.Text
}

// NextOrNone returns the next datagram systemd would act on, or false if
// none arrives within timeout. Datagrams systemd would drop are passed
// over, as systemd passes over them.
func (s *NotifySocket) NextOrNone(timeout time.Duration) (string, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case d, ok := <-s.datagrams:
			if !ok {
				return "", false
			}
			if d.Dropped == "" {
				return d.Text, true
			}
		case <-deadline:
			return "", false
		}
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
