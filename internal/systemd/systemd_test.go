package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"example.com/daemon/internal/systemd/systemdtest"
)

func TestNotifySendsOneDatagramToPathAndAbstractSockets(t *testing.T) {
	for _, addr := range []string{
		filepath.Join(t.TempDir(), "notify"),
		"@daemon-notify-test-" + time.Now().Format("150405.000000000"),
	} {
		t.Run(addr, func(t *testing.T) {
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := NewNotifier(addr).Notify(Ready("serving\non :80")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1024)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			// A newline inside STATUS would start a new assignment.
			if got, want := string(buf[:n]), "READY=1\nSTATUS=serving on :80"; got != want {
				t.Errorf("datagram %q, want %q", got, want)
			}
		})
	}
}

func TestNotifierWithoutSocketDoesNothing(t *testing.T) {
	if n := NewNotifier(""); n.Enabled() || n.Notify(Ready("")) != nil {
		t.Error("a Notifier without NOTIFY_SOCKET must drop messages without error")
	}
}

func TestNotifyReportsAMissingSocket(t *testing.T) {
	if err := NewNotifier(filepath.Join(t.TempDir(), "gone")).Notify(Ready("")); err == nil {
		t.Error("Notify to a socket nobody listens on: no error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	const pid = 4242
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    time.Duration
		wantErr bool
	}{
		{"no watchdog", map[string]string{}, 0, false},
		{"interval", map[string]string{"WATCHDOG_USEC": "5000000"}, 5 * time.Second, false},
		{"for this process", map[string]string{"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "4242"}, 5 * time.Second, false},
		{"for another process", map[string]string{"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"}, 0, false},
		{"garbage", map[string]string{"WATCHDOG_USEC": "soon"}, 0, true},
		{"zero", map[string]string{"WATCHDOG_USEC": "0"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := WatchdogInterval(func(k string) string { return tc.env[k] }, pid)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("got %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestTakeMain(t *testing.T) {
	ln := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	a, b := ln(), ln()
	for _, tc := range []struct {
		name     string
		passed   Listeners
		want     net.Listener
		leftover []string
	}{
		{"by name", Listeners{"metrics": {a}, "http": {b}}, b, []string{"metrics"}},
		{"unnamed single socket from systemd-socket-activate", Listeners{"LISTEN_FD_3": {a}}, a, nil},
		{"unnamed single socket from a .socket unit", Listeners{"daemon.socket": {a}}, a, nil},
		{"a single socket named otherwise is not main", Listeners{"metrics": {a}}, nil, []string{"metrics"}},
		{"nothing passed", Listeners{}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.passed.TakeMain("http")
			if err != nil || got != tc.want {
				t.Errorf("TakeMain = %v, %v; want %v", got, err, tc.want)
			}
			var left []string
			for name := range tc.passed {
				left = append(left, name)
			}
			if !slices.Equal(left, tc.leftover) {
				t.Errorf("left %v, want %v", left, tc.leftover)
			}
		})
	}
}

func TestTakeRefusesTwoSocketsOfOneName(t *testing.T) {
	a, _ := net.Listen("tcp", "127.0.0.1:0")
	b, _ := net.Listen("tcp", "127.0.0.1:0")
	defer a.Close()
	defer b.Close()
	if _, err := (Listeners{"http": {a, b}}).Take("http"); err == nil {
		t.Error("two sockets named http: no error")
	}
}

func TestStoreFilesPassesTheListeningSocket(t *testing.T) {
	conn, ln := storeListener(t)

	// Receive as systemd does: the message, and the descriptor in the
	// ancillary data.
	buf, oob := make([]byte, 1024), make([]byte, unix.CmsgSpace(4))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), "FDSTORE=1\nFDNAME=http"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages: %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("SCM_RIGHTS: %v, %v", fds, err)
	}
	// The descriptor received is the same listening socket: a connection
	// to the original address is accepted on it.
	received, err := net.FileListener(os.NewFile(uintptr(fds[0]), "received"))
	if err != nil {
		t.Fatal(err)
	}
	defer received.Close()
	if received.Addr().String() != ln.Addr().String() {
		t.Errorf("received a socket on %s, want %s", received.Addr(), ln.Addr())
	}
	ln.Close() // only the received copy is left to accept
	client, err := net.Dial("tcp", received.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := received.Accept()
	if err != nil {
		t.Fatalf("accept on the received socket: %v", err)
	}
	server.Close()
}

// TestStoreFilesLeavesTheListenerNonBlocking: handing a copy of a listener
// to the store must leave the listener in non-blocking mode. os.File.Fd
// clears O_NONBLOCK, on the open file the copy shares with the listener;
// Accept then blocks in accept(2), where Close cannot wake it, and a
// graceful stop hangs until systemd's SIGKILL.
func TestStoreFilesLeavesTheListenerNonBlocking(t *testing.T) {
	_, ln := storeListener(t)

	raw, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var flagsErr error
	if err := raw.Control(func(fd uintptr) { flags, flagsErr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || flagsErr != nil {
		t.Fatal(err, flagsErr)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Error("the listener is in blocking mode after StoreFiles: its Accept cannot be interrupted by Close")
	}
}

// storeListener opens a notify socket and a TCP listener, and hands a copy
// of the listener to the store through that socket.
func storeListener(t *testing.T) (*net.UnixConn, *net.TCPListener) {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.(*net.TCPListener)
	t.Cleanup(func() { ln.Close() })
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := NewNotifier(addr).StoreFiles("http", f); err != nil {
		t.Fatal(err)
	}
	return conn, ln
}

// TestTakeRemovesWhatSystemdPassedFromTheEnvironment: Take reads the
// variables once and removes them, so that no child inherits them, and the
// notifier it returns still sends. (A test of the process boundary: the only
// one that sets the environment.)
func TestTakeRemovesWhatSystemdPassedFromTheEnvironment(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			notify := systemdtest.Listen(t, abstract)
			vars := map[string]string{
				"NOTIFY_SOCKET":  notify.Addr,
				"WATCHDOG_USEC":  "200000",
				"WATCHDOG_PID":   strconv.Itoa(os.Getpid()),
				"LISTEN_PID":     strconv.Itoa(os.Getpid()),
				"LISTEN_PIDFDID": "1",
				"LISTEN_FDS":     "0",
				"LISTEN_FDNAMES": "",
			}
			for k, v := range vars {
				t.Setenv(k, v)
			}
			passed, err := Take()
			if err != nil {
				t.Fatal(err)
			}
			for k := range vars {
				if v, ok := os.LookupEnv(k); ok {
					t.Errorf("%s=%q still in the environment, children would inherit it", k, v)
				}
			}
			if passed.Watchdog != 200*time.Millisecond {
				t.Errorf("watchdog %s, want 200ms", passed.Watchdog)
			}
			if err := passed.Notifier.Notify(Watchdog()); err != nil {
				t.Fatal(err)
			}
			if msg := notify.Next(t, time.Second); msg != "WATCHDOG=1" {
				t.Errorf("got %q, want WATCHDOG=1", msg)
			}
		})
	}
}

// TestTakeLeavesTheUnitsSharedSettings: the credentials directory and the
// memory pressure watch belong to every process of the unit; Take passes
// them on and leaves them in the environment.
func TestTakeLeavesTheUnitsSharedSettings(t *testing.T) {
	vars := map[string]string{
		"CREDENTIALS_DIRECTORY": "/run/credentials/daemon.service",
		"MEMORY_PRESSURE_WATCH": "/sys/fs/cgroup/system.slice/daemon.service/memory.pressure",
		"MEMORY_PRESSURE_WRITE": "c29tZSAyMDAwMDAgMjAwMDAwMAA=",
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
	passed, err := Take()
	if err != nil {
		t.Fatal(err)
	}
	want := Passed{
		Credentials:    Credentials{Dir: vars["CREDENTIALS_DIRECTORY"]},
		MemoryPressure: MemoryPressure{Watch: vars["MEMORY_PRESSURE_WATCH"], Write: vars["MEMORY_PRESSURE_WRITE"]},
	}
	if passed.Credentials != want.Credentials || passed.MemoryPressure != want.MemoryPressure {
		t.Errorf("Take = %+v, %+v; want %+v, %+v", passed.Credentials, passed.MemoryPressure, want.Credentials, want.MemoryPressure)
	}
	for k, v := range vars {
		if os.Getenv(k) != v {
			t.Errorf("%s removed from the environment", k)
		}
	}
}

func TestReadCredential(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"api-token": "s3cret\n", "empty": "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "unreadable"), 0o700); err != nil {
		t.Fatal(err)
	}
	creds := Credentials{Dir: dir}
	if got, err := creds.Read("api-token"); got != "s3cret" || err != nil {
		t.Errorf("Read(api-token) = %q, %v; want the file without its newline", got, err)
	}
	for _, c := range []struct {
		creds    Credentials
		name     string
		missing  bool
		mentions string
	}{
		{creds, "absent", true, "LoadCredential=absent:FILE"},
		{creds, "empty", true, "is empty"},
		{Credentials{}, "api-token", true, "$CREDENTIALS_DIRECTORY is not set"},
		{creds, "unreadable", false, "is a directory"},
		{creds, "../api-token", false, "not a credential name"},
	} {
		_, err := c.creds.Read(c.name)
		if err == nil || errors.Is(err, ErrNoCredential) != c.missing || !strings.Contains(err.Error(), c.mentions) {
			t.Errorf("Read(%q) in %q: %v; want an error that is ErrNoCredential: %v and says %q", c.name, c.creds.Dir, err, c.missing, c.mentions)
		}
	}
}

// TestNotifySocketsThisDaemonCannotUseAreRefusedOnce: an AF_VSOCK address
// (systemd ≥ 253, a service in a VM) or a relative path gives a Notifier
// that sends nothing and says why, once, instead of failing at each ping.
func TestNotifySocketsThisDaemonCannotUseAreRefusedOnce(t *testing.T) {
	for _, addr := range []string{"vsock:2:1234", "vsock-stream:2:1234", "vsock-seqpacket:1:99", "relative/notify"} {
		n := NewNotifier(addr)
		if n.Enabled() {
			t.Errorf("NewNotifier(%q) is enabled", addr)
		}
		if why := n.Unsupported(); !strings.Contains(why, addr) {
			t.Errorf("NewNotifier(%q).Unsupported() = %q, want it to name the address", addr, why)
		}
		if err := n.Notify(Ready("")); err != nil {
			t.Errorf("Notify on %q: %v, want nothing sent and no error", addr, err)
		}
	}
	if why := NewNotifier("/run/systemd/notify").Unsupported(); why != "" {
		t.Errorf("a path: Unsupported() = %q", why)
	}
}

// TestStatusIsSafeToSend: what would end the status early, make systemd drop
// the datagram (NUL) or ignore the status (invalid UTF-8) is replaced.
func TestStatusIsSafeToSend(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"two\nlines", "STATUS=two lines"},
		{"dos\r\nline", "STATUS=dos  line"},
		{"a\x00b", `STATUS=a\x00b`},
		{"bad \xff byte", "STATUS=bad \uFFFD byte"},
		{"Grüße € 😀", "STATUS=Grüße € 😀"},
	} {
		if got := Status(tc.text); !slices.Equal(got, Message{tc.want}) {
			t.Errorf("Status(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

// TestNotifyFitsEveryDatagramInSystemdsBuffer: systemd reads at most 4096
// bytes of a notify datagram and drops a longer one whole, READY=1 with it;
// a reload that failed on a long config value would leave `systemctl
// reload` waiting. The notify socket here drops what systemd drops, so
// each message arrives only if it fits: with every assignment but STATUS=
// whole, and STATUS= cut in the middle at a character boundary, saying how
// many bytes went.
func TestNotifyFitsEveryDatagramInSystemdsBuffer(t *testing.T) {
	long := strings.Repeat("x", 6000)
	configErr := fmt.Errorf(`/etc/daemon/config.toml:1:17: key drain_timeout: %q is not a duration like "10s" or "1m30s"`, long)
	fits := "STATUS=" + strings.Repeat("y", datagramMax-len("READY=1\nSTATUS="))
	for _, tc := range []struct {
		name        string
		assignments Message
		cut         bool
	}{
		{"a reload that failed on a long config value",
			Ready(fmt.Sprintf("Serving on 127.0.0.1:8080 (own socket); reload failed, still using the previous configuration: %v", configErr)), true},
		{"a reload beginning", Reloading("Reloading " + long), true},
		{"a failed start with its errno", Failed(fmt.Errorf("%w: listen: %w", configErr, unix.EADDRINUSE)), true},
		{"two-byte characters", Ready(strings.Repeat("é", 3000)), true},
		{"three-byte characters", Ready(strings.Repeat("€", 2000)), true},
		{"four-byte characters", Ready(strings.Repeat("😀", 1500)), true},
		{"mixed widths", Ready(strings.Repeat("a€😀é", 700)), true},
		{"exactly 4096 bytes", Message{"READY=1", fits}, false},
		{"4097 bytes", Message{"READY=1", fits + "y"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notify := systemdtest.Listen(t, false)
			if err := NewNotifier(notify.Addr).Notify(tc.assignments); err != nil {
				t.Fatal(err)
			}
			msg := notify.Next(t, 5*time.Second) // fails if systemd would drop it
			sent := strings.Join(tc.assignments, "\n")
			if !tc.cut {
				if msg != sent {
					t.Errorf("a datagram that fits was changed: %d bytes sent as %d", len(sent), len(msg))
				}
				return
			}
			// Not cut more than the characters at the boundaries need.
			if len(msg) > datagramMax || len(msg) < datagramMax-6 {
				t.Errorf("datagram of %d bytes, want %d or a few less", len(msg), datagramMax)
			}
			got, want := systemdtest.Fields(msg), systemdtest.Fields(sent)
			if !slices.Equal(systemdtest.Keys(msg), systemdtest.Keys(sent)) {
				t.Errorf("assignments %v, want %v", systemdtest.Keys(msg), systemdtest.Keys(sent))
			}
			for k, v := range want {
				if k != "STATUS" && got[k] != v {
					t.Errorf("%s=%q, want %q: only STATUS= may be shortened", k, got[k], v)
				}
			}
			status, full := got["STATUS"], want["STATUS"]
			if !utf8.ValidString(status) {
				t.Errorf("STATUS= is not valid UTF-8 after the cut: systemd would ignore it")
			}
			m := regexp.MustCompile(`…\[(\d+) bytes cut\]…`).FindStringSubmatchIndex(status)
			if m == nil {
				t.Fatalf("STATUS= does not say what was cut: %.80q…", status)
			}
			head, tail := status[:m[0]], status[m[1]:]
			n, _ := strconv.Atoi(status[m[2]:m[3]])
			if !strings.HasPrefix(full, head) || !strings.HasSuffix(full, tail) || len(head)+n+len(tail) != len(full) {
				t.Errorf("STATUS= %d bytes kept of %d, %d said cut: not the beginning and end of the status with the middle cut", len(head)+len(tail), len(full), n)
			}
			if len(head) < 1000 || len(tail) < 1000 {
				t.Errorf("kept %d bytes of the beginning and %d of the end; want both", len(head), len(tail))
			}
		})
	}
}

// TestNotifyRefusesWhatSystemdWouldDrop: a message that cannot fit, even
// without a status, or that holds a NUL byte, is an error and is not sent.
func TestNotifyRefusesWhatSystemdWouldDrop(t *testing.T) {
	notify := systemdtest.Listen(t, false)
	n := NewNotifier(notify.Addr)
	for _, assignments := range []Message{
		append(Ready("fine"), "X_NOTE="+strings.Repeat("z", datagramMax)),
		{"READY=1", "X_NOTE=a\x00b"},
	} {
		if err := n.Notify(assignments); err == nil {
			t.Errorf("Notify(%.60q…): no error", assignments)
		}
	}
	if err := n.Notify(Watchdog()); err != nil {
		t.Fatal(err)
	}
	if msg := notify.Next(t, 5*time.Second); msg != "WATCHDOG=1" {
		t.Errorf("got %.60q…, want only the WATCHDOG=1 sent after the refused messages", msg)
	}
}

// TestNotifySocketDropsWhatSystemdDrops pins the test double to systemd's
// rules (src/shared/notify-recv.c): a datagram of 4096 bytes is read, one
// of 4097 is dropped whole, and so is one with a NUL inside; a trailing NUL
// is allowed.
func TestNotifySocketDropsWhatSystemdDrops(t *testing.T) {
	notify := systemdtest.Listen(t, false)
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: notify.Addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fill := func(n int) string { return "READY=1\nSTATUS=" + strings.Repeat("s", n-len("READY=1\nSTATUS=")) }
	for _, tc := range []struct {
		name, msg string
		dropped   bool
	}{
		{"4096 bytes", fill(4096), false},
		{"4097 bytes", fill(4097), true},
		{"64 KiB", fill(64 << 10), true},
		{"a NUL inside", "READY=1\x00STATUS=x", true},
		{"a trailing NUL", "READY=1\x00", false},
	} {
		if _, err := conn.Write([]byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		d := notify.NextDatagram(t, 5*time.Second)
		if (d.Dropped != "") != tc.dropped {
			t.Errorf("%s: dropped %q, want dropped %v", tc.name, d.Dropped, tc.dropped)
		}
		if !tc.dropped && d.Text != tc.msg {
			t.Errorf("%s: received %d bytes of %d", tc.name, len(d.Text), len(tc.msg))
		}
	}
}

// TestEachMessageIsTheDatagramItsStateChangeTakes pins what each message
// holds, in order: systemd applies a datagram's assignments together, so
// RELOADING=1 comes with its MONOTONIC_USEC=, and a failure with its errno.
func TestEachMessageIsTheDatagramItsStateChangeTakes(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  Message
		want []string
	}{
		{"ready", Ready("Serving"), []string{"READY=1", "STATUS=Serving"}},
		{"reloading", Reloading("Reloading"), []string{"RELOADING=1", "MONOTONIC_USEC=", "STATUS=Reloading"}},
		{"stopping", Stopping("Stopping", 0), []string{"STOPPING=1", "STATUS=Stopping"}},
		{"stopping, asking for time", Stopping("Stopping", 15*time.Second), []string{"STOPPING=1", "STATUS=Stopping", "EXTEND_TIMEOUT_USEC=15000000"}},
		{"status", Status("Starting"), []string{"STATUS=Starting"}},
		{"progress", Progress("Loading", 30*time.Second), []string{"STATUS=Loading", "EXTEND_TIMEOUT_USEC=30000000"}},
		{"watchdog", Watchdog(), []string{"WATCHDOG=1"}},
		{"failed", Failed(fmt.Errorf("listen: %w", unix.EADDRINUSE)), []string{"STATUS=Failed: listen: address already in use", "ERRNO=98"}},
		{"failed, no errno", Failed(errors.New("bad")), []string{"STATUS=Failed: bad"}},
		{"fd store remove", FDStoreRemove("http"), []string{"FDSTOREREMOVE=1", "FDNAME=http"}},
	} {
		if len(tc.msg) != len(tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, tc.msg, tc.want)
			continue
		}
		for i, a := range tc.msg {
			if want := tc.want[i]; a != want && (!strings.HasSuffix(want, "=") || !strings.HasPrefix(a, want)) {
				t.Errorf("%s: %q, want %q", tc.name, tc.msg, tc.want)
			}
		}
	}
	usec, _ := strings.CutPrefix(Reloading("")[1], "MONOTONIC_USEC=")
	if n, err := strconv.ParseInt(usec, 10, 64); err != nil || n <= 0 {
		t.Errorf("MONOTONIC_USEC=%q, want microseconds", usec)
	}
}
