package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// notifySocket is the systemd side of sd_notify(3), as the driver needs it:
// a unix datagram socket that learns who sent each datagram (SO_PASSCRED,
// as systemd asks for too) and when the kernel queued it (SO_TIMESTAMPNS).
// The kernel's timestamp is taken as the sender sends, so the driver's own
// scheduling delay in reading a datagram is no part of any measurement.
type notifySocket struct {
	addr string
	conn *net.UnixConn
	msgs chan datagram
}

// datagram is one sd_notify message.
type datagram struct {
	pid  int
	sent time.Time // the kernel's timestamp, CLOCK_REALTIME
	text string
}

// has reports whether the datagram contains the assignment, READY=1 say.
func (d datagram) has(assignment string) bool {
	for _, line := range strings.Split(d.text, "\n") {
		if line == assignment {
			return true
		}
	}
	return false
}

func listenNotify(dir string) (*notifySocket, error) {
	addr := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("notify socket options: %w", err)
	}
	s := &notifySocket{addr: addr, conn: conn, msgs: make(chan datagram, 4096)}
	go s.read()
	return s, nil
}

func (s *notifySocket) read() {
	defer close(s.msgs)
	buf := make([]byte, 64<<10)
	oob := make([]byte, 1024)
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		d := datagram{text: string(buf[:n])}
		cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for i := range cmsgs {
			m := &cmsgs[i]
			if m.Header.Level != unix.SOL_SOCKET {
				continue
			}
			switch m.Header.Type {
			case unix.SCM_CREDENTIALS:
				if cred, err := unix.ParseUnixCredentials(m); err == nil {
					d.pid = int(cred.Pid)
				}
			case unix.SCM_TIMESTAMPNS:
				if len(m.Data) >= 16 {
					sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
					nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
					d.sent = time.Unix(sec, nsec)
				}
			}
		}
		s.msgs <- d
	}
}

// next returns the next datagram from pid that has assignment, and the
// datagrams from pid that came before it. Datagrams from other processes
// (an earlier one's STOPPING=1, say) are dropped. Once exited is closed,
// it waits a moment for datagrams still on their way, then gives up.
func (s *notifySocket) next(pid int, assignment string, timeout time.Duration, exited <-chan struct{}) (datagram, []datagram, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var before []datagram
	for {
		select {
		case <-exited:
			exited = nil
			deadline.Reset(200 * time.Millisecond)
			timeout = 0
		case d, ok := <-s.msgs:
			if !ok {
				return datagram{}, before, fmt.Errorf("notify socket closed")
			}
			if d.pid != pid {
				continue
			}
			if d.has(assignment) {
				return d, before, nil
			}
			before = append(before, d)
		case <-deadline.C:
			if timeout == 0 {
				return datagram{}, before, fmt.Errorf("pid %d exited before %s", pid, assignment)
			}
			return datagram{}, before, fmt.Errorf("no %s from pid %d within %s", assignment, pid, timeout)
		}
	}
}

func (s *notifySocket) Close() error { return s.conn.Close() }
