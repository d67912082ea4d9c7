package systemd

// The memory pressure watch itself: PSI triggers, eventfd and poll(2) are
// Linux's. pressure_other.go says so elsewhere.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"golang.org/x/sys/unix"
)

func closePressure(fd int) { unix.Close(fd) }

// openPressure opens p.Watch the way sd-event does for its file type, writes
// the decoded p.Write to it, and returns the fd with the poll event that
// means "pressure".
func openPressure(p MemoryPressure) (fd int, events int16, err error) {
	// sd-event refuses relative paths too: they would depend on our working
	// directory, which systemd does not know.
	if !filepath.IsAbs(p.Watch) || filepath.Clean(p.Watch) != p.Watch {
		return -1, 0, errors.New("not an absolute, normalized path")
	}
	data, err := base64.StdEncoding.DecodeString(p.Write)
	if err != nil {
		return -1, 0, fmt.Errorf("decode $MEMORY_PRESSURE_WRITE: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p.Watch, &st); err != nil {
		return -1, 0, err
	}
	defer func() {
		if err != nil && fd >= 0 {
			unix.Close(fd)
		}
	}()
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		// sd-event connects SOCK_STREAM only; a SEQPACKET listener refuses it.
		fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return -1, 0, err
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: p.Watch}); err != nil {
			return fd, 0, err
		}
		events = unix.POLLIN
	case unix.S_IFREG, unix.S_IFIFO, unix.S_IFCHR:
		// Write access only when there is something to write: a delegated
		// memory.pressure is writable, /proc/pressure/* may not be.
		flags := unix.O_RDONLY
		if len(data) > 0 {
			flags = unix.O_RDWR
		}
		fd, err = unix.Open(p.Watch, flags|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != nil {
			return -1, 0, err
		}
		events = unix.POLLIN
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			// An ordinary file never raises POLLPRI, so watching one would
			// quietly never fire; sd-event accepts only procfs and cgroupfs.
			var sfs unix.Statfs_t
			if err := unix.Fstatfs(fd, &sfs); err != nil {
				return fd, 0, err
			}
			if sfs.Type != unix.PROC_SUPER_MAGIC && sfs.Type != unix.CGROUP2_SUPER_MAGIC {
				return fd, 0, errors.New("regular file is not a PSI file on procfs or cgroupfs")
			}
			events = unix.POLLPRI
		}
	case unix.S_IFDIR:
		return -1, 0, unix.EISDIR
	default:
		return -1, 0, errors.New("not a PSI file, FIFO or AF_UNIX socket")
	}
	if len(data) > 0 {
		// For PSI this registers the trigger ("some 200000 2000000\0": 200ms
		// stall per 2s; the kernel replaces the last byte with a NUL, so
		// systemd sends one). The kernel checks it here, so EINVAL or EPERM
		// ends the watch now rather than leaving a watch that never fires.
		n, err := unix.Write(fd, data)
		if err != nil {
			return fd, 0, fmt.Errorf("write $MEMORY_PRESSURE_WRITE: %w", err)
		}
		if n < len(data) {
			return fd, 0, fmt.Errorf("write $MEMORY_PRESSURE_WRITE: %w", io.ErrShortWrite)
		}
	}
	return fd, events, nil
}

// pollPressure waits for events on fd and calls onPressure for each, until
// ctx is done. Cancellation writes to an eventfd that poll also waits on, so
// poll wakes at once and no goroutine stays behind.
func pollPressure(ctx context.Context, fd int, events int16, onPressure func()) error {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woken)
		// Any non-zero 8-byte count; an eventfd can only refuse it when the
		// count would overflow, which one write cannot do.
		_, _ = unix.Write(wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	})
	defer func() {
		// If the AfterFunc has started, let it finish before closing wake,
		// or it could write to a reused fd number.
		if !stop() {
			<-woken
		}
		unix.Close(wake)
	}()

	fds := []unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(wake), Events: unix.POLLIN}}
	buf := make([]byte, 4096) // PIPE_BUF, as sd-event reads
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		revents := fds[0].Revents
		switch {
		case events == unix.POLLIN && revents&unix.POLLIN != 0:
			// Read what the FIFO or socket sent, or poll would report it
			// again at once; data sent before a hang-up is still read.
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if n == 0 {
				return errors.New("the other end hung up")
			}
			onPressure()
		case revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0:
			// On a PSI file POLLERR means no trigger is armed (none was
			// written, or its cgroup was removed). It stays set, as does a
			// hang-up, so polling on would spin.
			return fmt.Errorf("poll reported revents %#x: no PSI trigger is armed (cgroup removed?) or the other end hung up", revents)
		case revents&events != 0:
			onPressure()
		}
	}
}
