package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Listeners are the listening sockets systemd passed in, by name: the name
// FileDescriptorName= gave a socket in its .socket unit (socket
// activation), or the FDNAME= a socket was stored under in the FD store.
type Listeners map[string][]net.Listener

// Take returns the listener passed under name, or nil when there is none, and
// removes it from l.
func (l Listeners) Take(name string) (net.Listener, error) {
	ls, ok := l[name]
	if !ok {
		return nil, nil
	}
	delete(l, name)
	if len(ls) != 1 {
		l.closeAll(ls)
		return nil, fmt.Errorf("socket activation: %d sockets named %q, want one", len(ls), name)
	}
	return ls[0], nil
}

// TakeMain returns the main listener: the one named name, or else a single
// socket passed without a name of its own (a .socket unit without
// FileDescriptorName= passes its unit name, systemd-socket-activate without
// --fdname passes none, which go-systemd turns into LISTEN_FD_<n>).
func (l Listeners) TakeMain(name string) (net.Listener, error) {
	if _, ok := l[name]; ok || len(l) != 1 {
		return l.Take(name)
	}
	for other := range l {
		if strings.HasPrefix(other, "LISTEN_FD_") || strings.HasSuffix(other, ".socket") {
			return l.Take(other)
		}
	}
	return nil, nil
}

// Close closes every listener still in l: sockets passed in that the daemon
// has no use for. It returns their names, to be reported.
func (l Listeners) Close() []string {
	var names []string
	for name, ls := range l {
		names = append(names, name)
		l.closeAll(ls)
		delete(l, name)
	}
	return names
}

func (Listeners) closeAll(ls []net.Listener) {
	for _, x := range ls {
		x.Close()
	}
}

// listeners makes a listener of each file passed in, keyed by its name, and
// closes the files (a listener holds a copy of its own). A file that is not
// a listening stream socket goes into unusable instead, with why: it is
// closed, and the caller can say so by name rather than leave an operator
// wondering where a socket went. go-systemd's ListenersWithNames skips such
// a file without a word (and leaves it open).
func listeners(files []*os.File) (ls Listeners, unusable map[string]error) {
	ls = Listeners{}
	for _, f := range files {
		ln, err := listener(f)
		f.Close()
		if err != nil {
			if unusable == nil {
				unusable = map[string]error{}
			}
			unusable[f.Name()] = err
			continue
		}
		ls[f.Name()] = append(ls[f.Name()], ln)
	}
	return ls, unusable
}

// listener returns a listener for f if f is a listening stream socket
// (ListenStream= in a .socket unit, with Accept=no), else an error that
// says what f is. net.FileListener alone would refuse a datagram socket
// with a bare "invalid argument", and would take a stream socket that is
// not listening (one connection, as Accept=yes passes), whose every
// accept(2) then fails.
func listener(f *os.File) (net.Listener, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var why error
	if err := raw.Control(func(fd uintptr) { why = notAListener(int(fd)) }); err != nil {
		return nil, err
	}
	if why != nil {
		return nil, why
	}
	return net.FileListener(f)
}

// notAListener says why fd is not a listening stream socket, or returns nil
// if it is one, by the checks of sd_is_socket(3).
func notAListener(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return errors.New("not a socket; the daemon serves on listening stream sockets (ListenStream= in a .socket unit)")
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return err
	}
	switch typ {
	case unix.SOCK_STREAM:
	case unix.SOCK_DGRAM:
		return errors.New("a datagram socket (ListenDatagram=); the daemon serves on listening stream sockets (ListenStream=)")
	case unix.SOCK_SEQPACKET:
		return errors.New("a sequential packet socket (ListenSequentialPacket=); the daemon serves on listening stream sockets (ListenStream=)")
	default:
		return fmt.Errorf("a socket of type %d; the daemon serves on listening stream sockets (ListenStream=)", typ)
	}
	listening, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return err
	}
	if listening == 0 {
		return errors.New("a stream socket that is not listening, such as one connection (Accept=yes); the daemon needs the listening socket itself (Accept=no)")
	}
	return nil
}

// pidfdIDMatches reports whether LISTEN_PIDFDID, if set, names this process,
// as sd_listen_fds(3) checks it after LISTEN_PID (sd-daemon.c). systemd ≥
// 259 sets it beside LISTEN_PID: the inode ID of the pidfd of the process
// the descriptors are for. A PID can be reused (the process systemd meant
// exited, and this one got its number, having inherited the variables); a
// pidfd's inode ID never is. Unset, or with no ID of our own to compare
// (ownPidfdID), LISTEN_PID alone decides. Not a number is an error, as in
// sd_listen_fds.
func pidfdIDMatches(getenv func(string) string, ownPidfdID func() (uint64, bool)) (bool, error) {
	s := getenv("LISTEN_PIDFDID")
	if s == "" {
		return true, nil
	}
	want, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return false, fmt.Errorf("LISTEN_PIDFDID=%q: want the inode ID of a pidfd", s)
	}
	own, ok := ownPidfdID()
	return !ok || own == want, nil
}
