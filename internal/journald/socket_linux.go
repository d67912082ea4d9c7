package journald

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// SystemSocket is where the system's journald reads native entries. A
// journald serving a journal namespace (systemd-journald.service(8)) reads
// them at /run/systemd/journal.NAMESPACE/socket instead.
const SystemSocket = "/run/systemd/journal/socket"

// Socket is the Transport to a journald: it sends entries the way
// sd_journal_sendv(3) does. The zero value sends to SystemSocket. It is
// safe for concurrent use.
//
// It replaces github.com/ssgreg/journald's Journal.WriteMsg, which sends an
// entry too big for a datagram as an unsealed file it writes in /dev/shm.
// That fails where /dev/shm is read-only, too small or not mounted (a
// hardened or minimal container). And journald takes an unsealed file only
// up to half the size of a sealed one, since it must copy it: from an
// unprivileged sender, journald since 2026 (systemd pull request 40571)
// takes 32 MiB sealed, so only 16 MiB that way. That fallback is inside
// WriteMsg, with no way to keep the rest of it and change that part; and
// sending a datagram is a few lines.
type Socket struct {
	// Path of journald's socket; empty means SystemSocket.
	Path string

	once sync.Once
	conn *net.UnixConn
	err  error
}

// sndbuf is the send buffer Socket asks for, as sd_journal_sendv(3) does:
// a datagram can't be bigger than the sender's send buffer, and the default
// (net.core.wmem_default, often 208 KiB) would send many entries the slower
// way. The kernel grants at most net.core.wmem_max, doubled (socket(7)).
const sndbuf = 8 << 20

func (s *Socket) open() (*net.UnixConn, error) {
	s.once.Do(func() {
		// An unconnected socket: each entry is addressed to the path
		// again, so a journald that restarts (and binds a new socket
		// at the same path) gets the next entry.
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			s.err = fmt.Errorf("journal socket: %w", err)
			return
		}
		f := os.NewFile(uintptr(fd), "journal socket")
		defer f.Close() // FileConn duplicates it
		c, err := net.FileConn(f)
		if err != nil {
			s.err = fmt.Errorf("journal socket: %w", err)
			return
		}
		s.conn = c.(*net.UnixConn)
		_ = s.conn.SetWriteBuffer(sndbuf) // smaller is slower, not wrong
	})
	return s.conn, s.err
}

// WriteMsg sends entry to journald as one datagram or, when it is too big
// for one, in a sealed memfd.
func (s *Socket) WriteMsg(entry []byte) error {
	conn, err := s.open()
	if err != nil {
		return err
	}
	addr := &net.UnixAddr{Name: s.Path, Net: "unixgram"}
	if addr.Name == "" {
		addr.Name = SystemSocket
	}
	_, err = conn.WriteToUnix(entry, addr)
	if !errors.Is(err, syscall.EMSGSIZE) && !errors.Is(err, syscall.ENOBUFS) {
		return err
	}
	return sendMemfd(conn, addr, entry)
}

// sendMemfd sends entry to journald as sd_journal_sendv(3) does when it does
// not fit in a datagram: written to a memfd (an anonymous file in memory,
// memfd_create(2), that needs no writable file system), sealed, and passed
// as the only content of a datagram (SCM_RIGHTS, unix(7)).
//
// The seals (F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, and F_SEAL_SEAL so
// that none can be removed) promise journald that the file can't change
// while it reads it, so journald maps it rather than copying it, and takes
// it up to its full entry size limit from any sender; an unsealed file it
// must copy, and it takes only half as much.
func sendMemfd(conn *net.UnixConn, addr *net.UnixAddr, entry []byte) error {
	fd, err := unix.MemfdCreate("journal-entry", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("entry of %d bytes: memfd_create: %w", len(entry), err)
	}
	f := os.NewFile(uintptr(fd), "journal-entry")
	defer f.Close() // journald has its own descriptor once it is sent
	if _, err := f.Write(entry); err != nil {
		return fmt.Errorf("entry of %d bytes: write memfd: %w", len(entry), err)
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("entry of %d bytes: seal memfd: %w", len(entry), err)
	}
	// No data with the descriptor: journald reads a datagram with a
	// descriptor and no bytes as "the entry is in this file", and
	// ignores one that carries both.
	if _, _, err := conn.WriteMsgUnix(nil, unix.UnixRights(int(f.Fd())), addr); err != nil {
		return fmt.Errorf("entry of %d bytes: send memfd: %w", len(entry), err)
	}
	return nil
}

// Close closes the socket. Entries sent after it fail.
func (s *Socket) Close() error {
	conn, err := s.open()
	if err != nil {
		return err
	}
	return conn.Close()
}
