//go:build systemd

package systemd_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The scenarios of daemon-standalone.service, the unit for hosts without
// socket activation: the daemon binds its own port and hands a copy of the
// socket to systemd's file descriptor store (FileDescriptorStoreMax=1,
// -fd-store), which passes it back to the next start in LISTEN_FDS. They
// measure what the store keeps, and when, on the systemd at hand; the
// findings are in docs/systemd-versions.md.

// TestStandaloneUnitOpensItsSocketAndStoresIt: the unit takes over from the
// sockets (Conflicts=), binds the port itself, serves within its looser
// sandbox, hands the socket to the FD store, and stops cleanly.
func TestStandaloneUnitOpensItsSocketAndStoresIt(t *testing.T) {
	pid := startStandalone(t, baseConfig, false)
	for _, u := range append([]string{unit}, sockets...) {
		if st := prop(t, u, "ActiveState"); st != "inactive" {
			t.Errorf("%s is %s while %s runs, want inactive (Conflicts=)", u, st, standaloneUnit)
		}
	}
	if code, body := get(t, baseURL(t)+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz from %s = %d %q, want 200 \"ok\"", standaloneUnit, code, body)
	}
	// It read the config (the instruments on) and got the token.
	if code, body := instrument(t, http.MethodGet, "/debug/sleep?d=0s"); code != http.StatusOK {
		t.Errorf("GET /debug/sleep?d=0s with the token from %s = %d %q, want 200", standaloneUnit, code, body)
	}
	if uid := procUID(t, pid); uid < 61184 || uid > 65519 {
		t.Errorf("%s runs as UID %d, not a dynamic user", standaloneUnit, uid)
	}
	if st := prop(t, standaloneUnit, "StatusText"); st == "" {
		t.Errorf("%s sent no STATUS=", standaloneUnit)
	}

	// It opened the socket itself (systemd passed none), and systemd holds
	// a copy of that very socket.
	env := environ(t, pid)
	if fds, ok := env["LISTEN_FDS"]; ok {
		t.Errorf("first start got LISTEN_FDS=%s from an empty store", fds)
	}
	// systemd >= 254 announces the store in $FDSTORE (its size); 252 does
	// not, which is why the unit passes -fd-store.
	if v := systemdVersion(t); (env["FDSTORE"] == "1") != (v >= 254) {
		t.Errorf("systemd %d: FDSTORE=%q in the daemon's environment", v, env["FDSTORE"])
	} else {
		t.Logf("systemd %d: FDSTORE=%q", v, env["FDSTORE"])
	}
	port := portOf(listenAddr(t, name+".socket"))
	storedSocket(t, pid, port)

	// The sandbox as systemd rates it, running, equals the offline rating
	// check-units.sh gives the file, within the same limit.
	checkExposure(t, standaloneUnit)

	// A stop is a drain and a clean exit, at once: handing the socket over
	// must leave the daemon's own copy closable (an accept(2) blocked where
	// Close cannot wake it would hold the stop until TimeoutStopSec=).
	start := time.Now()
	systemctl(t, "stop", standaloneUnit)
	took := time.Since(start)
	t.Logf("systemctl stop took %s", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("systemctl stop took %s with no request in flight: the daemon's drain hung (TimeoutStopSec= ended it?)", took)
	}
	for p, want := range map[string]string{"Result": "success", "ExecMainStatus": "0"} {
		if got := prop(t, standaloneUnit, p); got != want {
			t.Errorf("after stop %s=%s, want %s", p, got, want)
		}
	}
}

// TestFDStoreKeepsThePortThroughCrashesAndWatchdogKills: a client under
// continuous load, each request on a new connection, through a SIGKILL, a
// SIGABRT and a frozen daemon (SIGSTOP) that the watchdog kills: never a
// refused connection, because the listening socket (the same one
// throughout, by its inode) stays in systemd's store while the daemon is
// down, and Restart=on-failure's new daemon gets it back. A request the dead
// daemon had already taken is lost with it: at most one per client per
// kill, counted apart.
func TestFDStoreKeepsThePortThroughCrashesAndWatchdogKills(t *testing.T) {
	pid := startStandalone(t, baseConfig, false)
	port := portOf(listenAddr(t, name+".socket"))
	inode := storedSocket(t, pid, port)
	watchdog := propDuration(t, standaloneUnit, "WatchdogUSec")

	const workers = 4
	l := startLoad(t, baseURL(t), workers)
	l.served(t, 50, "the start")
	events := []struct {
		what   string
		signal syscall.Signal
		limit  time.Duration
	}{
		{"SIGKILL (a crash: no drain)", syscall.SIGKILL, 10 * time.Second},
		{"SIGABRT (a crash with Go's stack dump)", syscall.SIGABRT, 10 * time.Second},
		// systemd sends the watchdog's SIGABRT and then SIGCONT, so a
		// stopped process dies too.
		{"SIGSTOP (frozen; the watchdog kills it)", syscall.SIGSTOP, 2*watchdog + 10*time.Second},
	}
	for _, e := range events {
		restarts := propInt(t, standaloneUnit, "NRestarts")
		cursor := journalCursor(t)
		start := time.Now()
		if err := syscall.Kill(pid, e.signal); err != nil {
			t.Fatalf("kill %d: %v", pid, err)
		}
		newPID := waitRestarted(t, standaloneUnit, restarts, pid, e.limit)
		t.Logf("%s: running again after %s", e.what, time.Since(start).Round(time.Millisecond))
		if env := environ(t, newPID); env["LISTEN_FDS"] != "1" || env["LISTEN_FDNAMES"] != "http" {
			t.Errorf("after %s the new daemon got LISTEN_FDS=%q LISTEN_FDNAMES=%q, want the stored socket (1, http)",
				e.what, env["LISTEN_FDS"], env["LISTEN_FDNAMES"])
		}
		if got := listeningInode(t, port); got != inode {
			t.Errorf("after %s port %s listens on socket %d, not the stored %d: it was bound anew", e.what, port, got, inode)
		}
		if !holdsSocket(newPID, inode) || !holdsSocket(1, inode) {
			t.Errorf("after %s socket %d: held by the new daemon %v, by systemd %v; want both",
				e.what, inode, holdsSocket(newPID, inode), holdsSocket(1, inode))
		}
		if e.signal == syscall.SIGSTOP {
			ms := messages(journal(t, cursor, "_PID=1", "UNIT="+standaloneUnit))
			if !containsSubstring(ms, "Watchdog timeout") {
				t.Errorf("no watchdog timeout for %s in systemd's journal:\n%s", standaloneUnit, strings.Join(ms, "\n"))
			}
		}
		// The daemon knows the socket came from systemd.
		if _, body := get(t, baseURL(t)+"/metrics"); !strings.Contains(body, "\n"+name+"_socket_activated 1\n") {
			t.Errorf("after %s, /metrics does not say %s_socket_activated 1", e.what, name)
		}
		l.served(t, 20, e.what)
		pid = newPID
	}
	l.halt()

	t.Logf("%d requests served, %d connections refused, %d other failures", l.ok.Load(), l.refused.Load(), l.failed.Load())
	if n := l.refused.Load(); n > 0 {
		t.Errorf("%d connections refused: the port closed while the daemon was down", n)
	}
	if n, most := l.failed.Load(), int64(workers*len(events)); n > most {
		t.Errorf("%d requests failed, more than the %d the kills can take (one in flight per client each):\n%s", n, most, l.errorList())
	} else if n > 0 {
		t.Logf("requests lost with a killed daemon:\n%s", l.errorList())
	}
}

// TestFDStoreKeepsThePortThroughSystemctlRestart measures what the store
// does across `systemctl restart`, which is a stop job and a start job: does
// the new daemon get the socket back (LISTEN_FDS), and do clients under load
// see a refused connection? "As installed" is the shipped unit (on systemd
// >= 254 with fdstore-preserve.conf); on >= 254 the default
// FileDescriptorStorePreserve=restart is measured too; and, as the control
// that shows what the measurement catches, a unit without a store.
func TestFDStoreKeepsThePortThroughSystemctlRestart(t *testing.T) {
	v := systemdVersion(t)
	cases := []struct {
		what       string
		file, body string // a drop-in under /run, if any
		minVersion int
		keeps      bool
	}{
		{what: "as installed", keeps: true},
		// Same name as the packaged drop-in: it takes that one's place.
		{what: "FileDescriptorStorePreserve=restart (the default)", file: "fdstore-preserve.conf",
			body: "FileDescriptorStorePreserve=restart", minVersion: 254, keeps: true},
		{what: "no store (FileDescriptorStoreMax=0)", file: "zz-scenario.conf",
			body: "FileDescriptorStoreMax=0", keeps: false},
	}
	for _, c := range cases {
		if v < c.minVersion {
			t.Logf("%s: needs systemd >= %d", c.what, c.minVersion)
			continue
		}
		t.Run(c.what, func(t *testing.T) {
			if c.file != "" {
				runtimeDropIn(t, standaloneUnit, c.file, "[Service]\n"+c.body+"\n")
			}
			pid := startStandalone(t, baseConfig, false)
			port := portOf(listenAddr(t, name+".socket"))
			inode := listeningInode(t, port)
			const workers, restarts = 4, 3
			l := startLoad(t, baseURL(t), workers)
			l.served(t, 50, "the start")
			var passed []string
			for i := 1; i <= restarts; i++ {
				systemctl(t, "restart", standaloneUnit)
				newPID := propInt(t, standaloneUnit, "MainPID")
				if newPID == pid {
					t.Fatalf("restart %d: MainPID still %d", i, pid)
				}
				pid = newPID
				env := environ(t, pid)
				passed = append(passed, env["LISTEN_FDNAMES"])
				got := listeningInode(t, port)
				switch {
				case c.keeps && (env["LISTEN_FDNAMES"] != "http" || got != inode):
					t.Errorf("restart %d: LISTEN_FDNAMES=%q, socket %d (was %d): the store was not kept",
						i, env["LISTEN_FDNAMES"], got, inode)
				case !c.keeps && (env["LISTEN_FDS"] != "" || got == inode):
					t.Errorf("restart %d: LISTEN_FDS=%q, socket %d (was %d): a socket was passed without a store",
						i, env["LISTEN_FDS"], got, inode)
				}
				inode = got
				l.served(t, 20, fmt.Sprintf("restart %d", i))
			}
			l.halt()
			t.Logf("systemd %d, %s: %d restarts under load: %d requests served, %d connections refused, %d other failures; the new daemons got LISTEN_FDNAMES=%q",
				v, c.what, restarts, l.ok.Load(), l.refused.Load(), l.failed.Load(), passed)
			if l.failed.Load() > 0 {
				t.Logf("other failures:\n%s", l.errorList())
			}
			switch {
			case c.keeps && l.refused.Load() > 0:
				t.Errorf("%d connections refused through restarts that kept the socket", l.refused.Load())
			case !c.keeps && l.refused.Load() == 0:
				// The control: if the load cannot see a port that is
				// closed for a moment, the zero above proves nothing.
				t.Errorf("no connection refused although each restart bound the port anew: the load is too sparse to notice")
			}
			// A graceful stop answers every request sent on a connection
			// the daemon accepted (TestStopAnswersEveryConnectionItAccepted),
			// and a kept socket holds the connections not yet accepted for
			// the next daemon: no request fails. Without a store, those
			// still in the backlog of the daemon's own socket are reset
			// when it closes, at most one per client per restart.
			switch most := int64(workers * restarts); {
			case c.keeps && l.failed.Load() > 0:
				t.Errorf("%d requests failed through restarts that kept the socket:\n%s", l.failed.Load(), l.errorList())
			case l.failed.Load() > most:
				t.Errorf("%d requests failed, more than the %d connections a closing socket can reset:\n%s", l.failed.Load(), most, l.errorList())
			}
		})
	}
}

// TestFDStorePreserveKeepsThePortWhileStopped: with fdstore-preserve.conf
// (FileDescriptorStorePreserve=yes, systemd >= 254) the stored socket
// outlives `systemctl stop`: the port still accepts connections, which wait
// in the backlog and are served by the next start, on the same socket.
// Disabling the stopped unit lets systemd unload it, which closes the port
// (on 262 the unit stays loaded until `systemctl clean --what=fdstore`).
// Without the drop-in (systemd's default), and on systemd 252, which does not
// know the setting and says so, the stop closes the port. The unit is
// enabled first, as deployed: a unit that nothing refers to is unloaded as
// soon as it stops, and its store with it, "yes" or not.
func TestFDStorePreserveKeepsThePortWhileStopped(t *testing.T) {
	v := systemdVersion(t)
	shipped := filepath.Join("/usr/share", name, "systemd", standaloneUnit+".d", "fdstore-preserve.conf")
	type testCase struct {
		what       string
		file, body string // a drop-in under /run, if any
		keeps      bool
	}
	var cases []testCase
	if v >= 254 {
		cases = []testCase{
			{what: "as installed (FileDescriptorStorePreserve=yes)", keeps: true},
			{what: "FileDescriptorStorePreserve=restart (the default)", file: "fdstore-preserve.conf",
				body: "[Service]\nFileDescriptorStorePreserve=restart\n", keeps: false},
		}
	} else {
		// The package installs no such drop-in on 252; install the very
		// file it ships, to see what 252 makes of it.
		b, err := os.ReadFile(shipped)
		if err != nil {
			t.Fatalf("the package's copy of the drop-in: %v", err)
		}
		cases = []testCase{{what: "fdstore-preserve.conf on systemd 252", file: "fdstore-preserve.conf", body: string(b), keeps: false}}
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			cursor := journalCursor(t)
			if c.file != "" {
				runtimeDropIn(t, standaloneUnit, c.file, c.body)
			}
			pid := startStandalone(t, baseConfig, true)
			port := portOf(listenAddr(t, name+".socket"))
			inode := storedSocket(t, pid, port)
			systemctl(t, "stop", standaloneUnit)
			t.Logf("systemd %d, %s: after systemctl stop, %s is %s/%s, NFileDescriptorStore=%s", v, c.what, standaloneUnit,
				prop(t, standaloneUnit, "ActiveState"), prop(t, standaloneUnit, "SubState"), prop(t, standaloneUnit, "NFileDescriptorStore"))

			if v < 254 {
				eventually(t, 5*time.Second, "systemd 252 rejecting FileDescriptorStorePreserve=", func() (bool, string) {
					ms := messages(journal(t, cursor, "_PID=1"))
					for _, m := range ms {
						if strings.Contains(m, "Unknown key") && strings.Contains(m, "FileDescriptorStorePreserve") {
							return true, ""
						}
					}
					return false, fmt.Sprintf("%d messages from PID 1, none about it", len(ms))
				})
			}
			if !c.keeps {
				eventually(t, 5*time.Second, "port closed after the stop", func() (bool, string) {
					ino := listeningInode(t, port)
					return ino == 0, fmt.Sprintf("socket %d listens on port %s", ino, port)
				})
				if _, err := net.Dial("tcp", baseURL(t)[len("http://"):]); !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("connect to the stopped daemon's port: %v, want connection refused", err)
				}
				return
			}

			if sub := prop(t, standaloneUnit, "SubState"); sub != "dead-resources-pinned" {
				t.Errorf("SubState=%s after the stop, want dead-resources-pinned", sub)
			}
			if got := listeningInode(t, port); got != inode || !holdsSocket(1, inode) {
				t.Fatalf("after the stop port %s listens on socket %d (stored: %d, held by systemd: %v)", port, got, inode, holdsSocket(1, inode))
			}
			// A client that connects while the daemon is stopped is not
			// refused; its request waits in the backlog...
			conn, err := net.DialTimeout("tcp", baseURL(t)[len("http://"):], 5*time.Second)
			if err != nil {
				t.Fatalf("connect while stopped: %v", err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: scenario\r\nConnection: close\r\n\r\n")
			// ...and the next start answers it, on the same socket.
			systemctl(t, "start", standaloneUnit)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("the client that connected while stopped: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
				t.Errorf("the client that connected while stopped got %d %q", resp.StatusCode, body)
			}
			pid = propInt(t, standaloneUnit, "MainPID")
			if env := environ(t, pid); env["LISTEN_FDNAMES"] != "http" || listeningInode(t, port) != inode {
				t.Errorf("after stop and start: LISTEN_FDNAMES=%q, socket %d (stored %d)", env["LISTEN_FDNAMES"], listeningInode(t, port), inode)
			}
			// Nothing else can have the port meanwhile, not even the
			// daemon's own socket unit.
			systemctl(t, "stop", standaloneUnit)
			if _, err := tryCommand("systemctl", "start", sockets[0]); err == nil {
				t.Errorf("%s started while the stopped %s kept port %s", sockets[0], standaloneUnit, port)
			}
			// How an administrator gives the port back. On 257: stop and
			// disable; nothing refers to the unit then, and systemd
			// unloads it, store and all. On 262 a unit whose store is
			// pinned stays loaded (dead-resources-pinned) after the
			// disable, and the port open, until the store is emptied with
			// systemctl clean --what=fdstore. (Measured on 257 and 262;
			// the versions between are not.)
			systemctl(t, "disable", "--now", standaloneUnit)
			if v >= pinnedStoreKeepsUnitLoaded {
				p := props(t, standaloneUnit, "LoadState", "SubState", "NFileDescriptorStore")
				t.Logf("systemd %d: after disable --now, %s is %s/%s with NFileDescriptorStore=%s", v, standaloneUnit, p["LoadState"], p["SubState"], p["NFileDescriptorStore"])
				if p["LoadState"] != "loaded" || p["SubState"] != "dead-resources-pinned" || listeningInode(t, port) != inode {
					t.Errorf("systemd %d: after disable --now, %s is %s/%s and port %s listens on socket %d (stored %d): want it still loaded, pinned, on the same socket",
						v, standaloneUnit, p["LoadState"], p["SubState"], port, listeningInode(t, port), inode)
				}
				systemctl(t, "clean", "--what=fdstore", standaloneUnit)
			}
			eventually(t, 5*time.Second, "port closed once the unit is disabled (and, where it stays loaded, its store emptied)", func() (bool, string) {
				ino := listeningInode(t, port)
				return ino == 0, fmt.Sprintf("socket %d still listens on port %s", ino, port)
			})
		})
	}
}

// TestLowPortNeedsTheCapabilityOutsideTheUserNamespace: the recipe in
// docs/hardening.md for a standalone daemon that binds a port below 1024
// itself. CAP_NET_BIND_SERVICE alone is not enough: with PrivateUsers=yes
// the capability is the service's user namespace's, and binding a low port
// needs it in the namespace that owns the network namespace, the host's.
// (daemon.socket needs none of this: systemd binds the port.)
func TestLowPortNeedsTheCapabilityOutsideTheUserNamespace(t *testing.T) {
	const capability = "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"
	cases := []struct {
		what, dropIn string
		binds        bool
	}{
		{"CAP_NET_BIND_SERVICE", capability, false},
		{"CAP_NET_BIND_SERVICE and PrivateUsers=no", capability + "PrivateUsers=no\n", true},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			writeConfig(t, baseConfig)
			releaseStandalone(t)
			t.Cleanup(func() { switchBackToSockets(t) })
			runtimeDropIn(t, standaloneUnit, "zz-scenario.conf",
				"[Service]\nExecStart=\nExecStart=/usr/bin/"+name+" -listen 127.0.0.1:80 -fd-store\n"+c.dropIn)
			cursor := journalCursor(t)
			_, err := tryCommand("systemctl", "start", standaloneUnit)
			t.Logf("%s: systemctl start: %v", c.what, err)
			if (err == nil) != c.binds {
				t.Fatalf("started %v, want %v", err == nil, c.binds)
			}
			if !c.binds {
				// Failed for the reason said, not another.
				eventually(t, 5*time.Second, "the daemon's error", func() (bool, string) {
					ms := messages(journal(t, cursor, "_SYSTEMD_UNIT="+standaloneUnit))
					return containsSubstring(ms, "permission denied"), strings.Join(ms, "\n")
				})
			}
			if c.binds {
				if code, body := get(t, "http://127.0.0.1:80/healthz"); code != http.StatusOK || body != "ok\n" {
					t.Errorf("GET /healthz on port 80 = %d %q, want 200 \"ok\"", code, body)
				}
			}
		})
	}
}

// TestNoSandboxSettingWasIgnored: where systemd cannot set up part of a
// sandbox (in a container without the privileges, or on an old kernel) it
// logs that and starts the service anyway. Nothing of the kind may have
// happened to the daemon's units since boot: it runs after the scenarios
// of both service units.
func TestNoSandboxSettingWasIgnored(t *testing.T) {
	freshStart(t, baseConfig)
	var ignored []string
	for _, e := range journal(t, "") {
		msg, _ := e["MESSAGE"].(string)
		if strings.HasPrefix(msg, name+".") || strings.HasPrefix(msg, name+"-") {
			if strings.Contains(msg, "is configured, but") || strings.Contains(msg, "not supported") {
				ignored = append(ignored, msg)
			}
		}
	}
	if len(ignored) > 0 {
		t.Errorf("systemd ignored sandbox settings:\n%s", strings.Join(ignored, "\n"))
	}
}

// pinnedStoreKeepsUnitLoaded is the first systemd version measured to keep
// a disabled, stopped unit loaded while FileDescriptorStorePreserve=yes pins
// its store: 257 unloads it, 262 does not (docs/systemd-versions.md).
const pinnedStoreKeepsUnitLoaded = 262

// startStandalone starts daemon-standalone.service with config, from an
// empty file descriptor store, in place of the socket units (its Conflicts=
// stops them), and returns its main PID; enable enables it too, as a
// deployment would. At cleanup it switches back as an administrator would:
// disable --now the standalone unit, empty its store (systemd >= 254),
// start the sockets.
func startStandalone(t *testing.T, config string, enable bool) int {
	t.Helper()
	writeConfig(t, config)
	releaseStandalone(t)
	t.Cleanup(func() { switchBackToSockets(t) })
	if enable {
		systemctl(t, "enable", standaloneUnit)
	}
	systemctl(t, "start", standaloneUnit)
	return activeMainPID(t, standaloneUnit, "start")
}

// switchBackToSockets releases the standalone unit and starts the sockets.
func switchBackToSockets(t *testing.T) {
	t.Helper()
	releaseStandalone(t)
	// The scenarios stop and start the sockets more often than the start
	// limit allows (see freshStart). Fails, harmlessly, for a socket that is
	// disabled and stopped: systemd unloaded it.
	tryCommand("systemctl", append([]string{"reset-failed"}, sockets...)...)
	systemctl(t, append([]string{"start"}, sockets...)...)
	for _, s := range sockets {
		if st := prop(t, s, "ActiveState") + "/" + prop(t, s, "SubState"); st != "active/listening" {
			t.Errorf("%s is %s after switching back from %s", s, st, standaloneUnit)
		}
	}
}

// releaseStandalone stops and disables the standalone unit and empties its
// store, so that its port is free.
func releaseStandalone(t testing.TB) {
	t.Helper()
	systemctl(t, "disable", "--now", standaloneUnit)
	// Both fail when systemd has unloaded the unit, store and all: nothing
	// to do then.
	tryCommand("systemctl", "reset-failed", standaloneUnit)
	if systemdVersion(t) >= 254 {
		tryCommand("systemctl", "clean", "--what=fdstore", standaloneUnit)
	}
}

// storedSocket checks that the daemon (pid) listens on port with a socket
// that systemd (PID 1) holds too, in the unit's store, and returns the
// socket's inode.
func storedSocket(t testing.TB, pid int, port string) uint64 {
	t.Helper()
	inode := listeningInode(t, port)
	if inode == 0 {
		t.Fatalf("nothing listens on port %s", port)
	}
	if !holdsSocket(pid, inode) {
		t.Errorf("the daemon (PID %d) does not hold socket %d, which listens on port %s", pid, inode, port)
	}
	if !holdsSocket(1, inode) {
		t.Errorf("systemd holds no copy of socket %d: the FD store did not take it (NFileDescriptorStore=%s)",
			inode, prop(t, standaloneUnit, "NFileDescriptorStore"))
	}
	if n := prop(t, standaloneUnit, "NFileDescriptorStore"); n != "1" {
		t.Errorf("NFileDescriptorStore=%s, want 1", n)
	}
	return inode
}

// runtimeDropIn adds a drop-in for unit under /run/systemd/system, where it
// lasts until reboot and takes the place of a drop-in of the same name in
// /usr/lib/systemd/system (systemd.unit(5)), and reloads systemd. Cleanup
// removes it and reloads again.
func runtimeDropIn(t *testing.T, unit, file, body string) {
	t.Helper()
	dir := filepath.Join("/run/systemd/system", unit+".d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(path)
		os.Remove(dir) // if empty
		systemctl(t, "daemon-reload")
	})
	systemctl(t, "daemon-reload")
}
