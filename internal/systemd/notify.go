// Package systemd speaks the small part of systemd's protocol that a service
// needs: sd_notify(3) datagrams, the watchdog settings, and the listening
// sockets passed by socket activation (sd_listen_fds(3)).
//
// Every call does nothing, quietly, when the process does not run under
// systemd: a Notifier made from an empty NOTIFY_SOCKET drops its messages, and
// without LISTEN_FDS there are no activated listeners. The daemon therefore
// runs the same code in a terminal, in tests and under systemd.
package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Message is one notify datagram: its assignments, which systemd applies
// together (READY=1 with its STATUS=, RELOADING=1 with its
// MONOTONIC_USEC=). The functions below build each message the daemon
// sends, named for what happened; Notifier.Notify sends it. The caller says
// what happened, and this package knows what datagram that takes.
type Message []string

// Ready says the start, or a reload, is done: READY=1, with status as
// STATUS= (what is served, or why a reload failed). systemd marks the unit
// active, and `systemctl start` or `systemctl reload` returns.
func Ready(status string) Message {
	return withStatus(Message{daemon.SdNotifyReady}, status)
}

// Reloading says a reload began: RELOADING=1 and MONOTONIC_USEC=, the
// CLOCK_MONOTONIC time in microseconds, in one datagram, and STATUS=. The
// time tells systemd (≥ 253, Type=notify-reload) which reload the next
// READY=1 answers: without it systemd cannot tell a reload that finished
// from one that never began, and `systemctl reload` waits until its timeout.
func Reloading(status string) Message {
	monotonic := strings.TrimSuffix(daemon.SdNotifyMonotonicUsec(), "\n")
	return withStatus(Message{daemon.SdNotifyReloading, monotonic}, status)
}

// Stopping says the stop began: STOPPING=1 and STATUS=. With extend > 0 it
// also asks for that much time from now (EXTEND_TIMEOUT_USEC=), which
// matters only when the stop would outlast TimeoutStopSec=.
func Stopping(status string, extend time.Duration) Message {
	return withExtend(withStatus(Message{daemon.SdNotifyStopping}, status), extend)
}

// Status says what the daemon is doing, with no change of state: STATUS=
// alone, which `systemctl status` shows.
func Status(status string) Message {
	return withStatus(nil, status)
}

// Progress says a long start goes on: STATUS= and, with more > 0, a request
// for that much more time from now (EXTEND_TIMEOUT_USEC=). It matters only
// when the start already runs past TimeoutStartSec=, so it is harmless when
// the work fits.
func Progress(status string, more time.Duration) Message {
	return withExtend(withStatus(nil, status), more)
}

// Watchdog is the keep-alive ping: WATCHDOG=1.
func Watchdog() Message { return Message{daemon.SdNotifyWatchdog} }

// Failed says why the daemon is about to exit: STATUS=Failed: err, and
// ERRNO= when an errno is at the bottom of err. systemd keeps both
// (`systemctl status` shows them; systemctl show has StatusText= and
// StatusErrno=) until the unit starts again.
func Failed(err error) Message {
	m := Status(fmt.Sprintf("Failed: %v", err))
	var errno syscall.Errno
	if errors.As(err, &errno) {
		m = append(m, "ERRNO="+strconv.Itoa(int(errno)))
	}
	return m
}

// FDStoreRemove asks systemd to close the descriptors it stores under name
// (FDSTOREREMOVE=1 with FDNAME=; sd_notify(3)).
func FDStoreRemove(name string) Message {
	return Message{"FDSTOREREMOVE=1", "FDNAME=" + name}
}

// withStatus adds status to m as STATUS=, unless it is empty.
//
// The text is made safe to send: systemd splits a datagram into assignments
// at every newline and carriage return, so either would end the status early
// and the rest would be read as another (probably unknown) variable; it drops
// a datagram with a NUL inside whole, READY=1 and all; and it ignores a
// STATUS= that is not valid UTF-8. Hence the replacements: a space, `\x00`,
// and U+FFFD. A status too long for one datagram is shortened when it is
// sent (Notify).
func withStatus(m Message, status string) Message {
	if status == "" {
		return m
	}
	text := strings.NewReplacer("\n", " ", "\r", " ", "\x00", `\x00`).Replace(status)
	return append(m, "STATUS="+strings.ToValidUTF8(text, "\uFFFD"))
}

// withExtend adds EXTEND_TIMEOUT_USEC= to m, unless d is 0.
func withExtend(m Message, d time.Duration) Message {
	if d <= 0 {
		return m
	}
	return append(m, "EXTEND_TIMEOUT_USEC="+strconv.FormatInt(d.Microseconds(), 10))
}

// Notifier sends sd_notify(3) messages to the socket that systemd named in
// NOTIFY_SOCKET. The zero Notifier, and one made from an empty address, sends
// nothing.
//
// go-systemd's daemon.SdNotify reads NOTIFY_SOCKET from the environment on
// every call; this type takes the address once (Take), so that the variable
// can leave the environment (children must not inherit it) while watchdog
// pings still go out for as long as the daemon runs.
type Notifier struct {
	addr        *net.UnixAddr
	unsupported string
}

// NewNotifier returns a Notifier for the NOTIFY_SOCKET value socket: a path,
// or an abstract socket written with a leading '@'. Go's net package maps '@'
// to the leading NUL byte of the abstract namespace, as sd_notify does.
//
// systemd ≥ 253 may also name an AF_VSOCK address ("vsock:CID:PORT", and
// "vsock-stream:", "vsock-dgram:", "vsock-seqpacket:" forms), for a service
// in a virtual machine whose manager runs on the host. Go's net package has
// no vsock, and this daemon does not run so; a Notifier for such an address
// sends nothing, and Unsupported says why, so that the daemon can say it
// once rather than fail at every message.
func NewNotifier(socket string) *Notifier {
	switch {
	case socket == "":
		return &Notifier{}
	case strings.HasPrefix(socket, "vsock"):
		return &Notifier{unsupported: fmt.Sprintf("NOTIFY_SOCKET=%s: AF_VSOCK is not supported; systemd will hear nothing from this daemon", socket)}
	case !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@"):
		return &Notifier{unsupported: fmt.Sprintf("NOTIFY_SOCKET=%s: not an absolute path or an abstract socket (sd_notify(3)); systemd will hear nothing from this daemon", socket)}
	}
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}
}

// Enabled reports whether messages go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Unsupported says why NOTIFY_SOCKET was set but no message will be sent,
// or is empty.
func (n *Notifier) Unsupported() string {
	if n == nil {
		return ""
	}
	return n.unsupported
}

// Notify sends m in one datagram, its assignments newline-separated.
//
// systemd drops a datagram longer than 4096 bytes whole, READY=1 and all,
// so a STATUS= that would make it longer is cut in the middle to fit, where
// "…[N bytes cut]…" says how much went; the other assignments go whole.
// Assignments that cannot fit even so, or that hold a NUL byte, are an
// error, not a datagram systemd would discard.
func (n *Notifier) Notify(m Message) error {
	if !n.Enabled() {
		return nil
	}
	msg, err := datagram(m...)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	// A socket per message, opened, sent on and closed, as sd_notify(3)
	// does (pid_notify_with_fds_internal() in systemd's sd-daemon.c): the
	// path is looked up at every message, so each goes to the socket bound
	// there at the time, one bound only after the daemon started or bound
	// again after a listener went away (TestANotifyOutageIsLoggedOnce), and
	// no state outlives a message. A socket connected once would keep
	// sending to the one it found first. At one message every few seconds
	// the cost is nothing. (systemd itself keeps its notify socket for its
	// whole life, daemon-reexec included: the old manager hands it to the
	// new one, "notify-fd" in src/core/manager-serialize.c.)
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// datagramMax is the longest notify datagram systemd reads. It receives
// into a buffer of NOTIFY_BUFFER_MAX, 4096 bytes, and ignores a message that
// did not fit (MSG_TRUNC): not the part past 4096, the whole datagram, with
// the READY=1 in it (src/core/manager.c; src/shared/notify-recv.c in later
// versions). Without its READY=1 a start fails when TimeoutStartSec= runs
// out, and `systemctl reload` waits as long.
const datagramMax = 4096

// datagram joins the assignments into the datagram Notify sends, one that
// systemd reads whole. When they come to more than datagramMax bytes, the
// text of STATUS= is cut in the middle, where "…[N bytes cut]…" says how
// much went, so that the status keeps both its beginning (what the daemon
// was doing) and its end (usually the cause of an error); the full text is
// for the log. The cut falls between characters, never inside one, so the
// status stays valid UTF-8, which systemd insists on. Every other
// assignment (READY=1, MONOTONIC_USEC=, ERRNO=, …) is kept whole: a
// shortened number would be a wrong one.
//
// It fails, rather than send something systemd would discard, when the
// assignments do not fit even without a status, or when one holds a NUL
// byte, which makes systemd drop the whole datagram.
func datagram(assignments ...string) ([]byte, error) {
	for _, a := range assignments {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("%.40q…: a NUL byte makes systemd drop the whole datagram", a)
		}
	}
	size := len(strings.Join(assignments, "\n"))
	if size <= datagramMax {
		return []byte(strings.Join(assignments, "\n")), nil
	}
	// systemd reads only the first STATUS=; should there be more, the
	// later ones are shortened first.
	shortened := slices.Clone(assignments)
	for i := len(shortened) - 1; i >= 0 && size > datagramMax; i-- {
		text, ok := strings.CutPrefix(shortened[i], "STATUS=")
		if !ok {
			continue
		}
		short := cutMiddle(text, max(len(text)-(size-datagramMax), 0))
		size -= len(text) - len(short)
		shortened[i] = "STATUS=" + short
	}
	if size > datagramMax {
		return nil, fmt.Errorf("%d-byte datagram: systemd reads at most %d bytes and drops a longer datagram whole", size, datagramMax)
	}
	return []byte(strings.Join(shortened, "\n")), nil
}

// cutMiddle returns text in at most limit bytes: its beginning and its end,
// joined by a marker that says how many bytes were cut between them. The
// cut is at character boundaries. When not even the marker fits, it returns
// the empty string.
func cutMiddle(text string, limit int) string {
	if len(text) <= limit {
		return text
	}
	// The marker names the number of bytes cut, which depends on the
	// marker's own length; start from the least that must go and grow it
	// until the number written is the number cut.
	cut := len(text) - limit
	for {
		marker := fmt.Sprintf("…[%d bytes cut]…", cut)
		room := limit - len(marker)
		if room < 0 {
			return ""
		}
		head := room / 2
		for head > 0 && !utf8.RuneStart(text[head]) {
			head--
		}
		tail := len(text) - (room - room/2)
		for tail < len(text) && !utf8.RuneStart(text[tail]) {
			tail++
		}
		if tail-head == cut {
			return text[:head] + marker + text[tail:]
		}
		cut = tail - head
	}
}

// WatchdogInterval reads the watchdog settings that systemd passes when the
// unit sets WatchdogSec= (sd_watchdog_enabled(3)): WATCHDOG_USEC is the
// interval within which WATCHDOG=1 must arrive, and WATCHDOG_PID, when set,
// names the process meant to send it. It returns 0 when this process (pid)
// has no watchdog to feed.
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q: want a positive number of microseconds", usec)
	}
	// The variables are inherited by children; only the process systemd meant
	// may answer for the service.
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0, nil
	}
	return time.Duration(n) * time.Microsecond, nil
}

// StoreFiles hands files to systemd's file descriptor store (sd_pid_notify_with_fds(3)):
// FDSTORE=1 and FDNAME=name, with the descriptors attached to the datagram
// as SCM_RIGHTS ancillary data. systemd keeps them while the service
// restarts, up to FileDescriptorStoreMax= (0, the default, refuses them), and
// passes them back to the next start like activated sockets: LISTEN_FDS, with
// name in LISTEN_FDNAMES. go-systemd sends no descriptors, hence this.
func (n *Notifier) StoreFiles(name string, files ...*os.File) error {
	if !n.Enabled() {
		return nil
	}
	// The descriptor numbers, read through SyscallConn and not with f.Fd():
	// Fd puts the descriptor into blocking mode, and a listener's dup shares
	// that flag with the listener itself, whose accept(2) would then block
	// where Close cannot wake it, so a graceful stop would never finish
	// (the stop waits for Serve to return, and Serve for accept(2)).
	msg, err := datagram("FDSTORE=1", "FDNAME="+name)
	if err != nil {
		return fmt.Errorf("sd_notify %s: FDSTORE: %w", n.addr.Name, err)
	}
	fds := make([]int, len(files))
	for i, f := range files {
		raw, err := f.SyscallConn()
		if err != nil {
			return fmt.Errorf("sd_notify %s: FDSTORE: %w", n.addr.Name, err)
		}
		if err := raw.Control(func(fd uintptr) { fds[i] = int(fd) }); err != nil {
			return fmt.Errorf("sd_notify %s: FDSTORE: %w", n.addr.Name, err)
		}
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	// Go's WriteMsgUnix refuses connected datagram sockets, so the
	// sendmsg(2) is made on the raw descriptor.
	raw, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	var sendErr error
	if err := raw.Write(func(fd uintptr) bool {
		sendErr = unix.Sendmsg(int(fd), msg, unix.UnixRights(fds...), nil, 0)
		return !errors.Is(sendErr, unix.EAGAIN)
	}); err != nil {
		sendErr = err
	}
	if sendErr != nil {
		return fmt.Errorf("sd_notify %s: FDSTORE: %w", n.addr.Name, sendErr)
	}
	// The descriptors must stay open until the datagram is sent: a
	// descriptor number does not keep f alive by itself.
	runtime.KeepAlive(files)
	return nil
}
