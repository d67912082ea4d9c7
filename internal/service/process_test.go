package service_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/daemon/internal/systemd/systemdtest"
)

// The tests in this file run a service on the kit as a process, and talk to
// it as systemd would: a notify socket, sockets passed as file descriptors
// 3, 4, …, and signals. The service is ./testservice, built once in TestMain:
// what they show holds for any app, the example's or yours.

var binary string // path of the built service; set once by TestMain

func TestMain(m *testing.M) {
	// Named as the example is, so that logs and metrics carry the names
	// the units and docs use.
	systemdtest.Main(m, "./testservice", "daemon", &binary)
}

// command returns an exec.Cmd for the daemon, with a fresh state directory
// and a config file holding config.
func command(t *testing.T, config string, args ...string) *exec.Cmd {
	t.Helper()
	return systemdtest.Command(t, binary, config, args...)
}

func TestServesOnSocketPassedByName(t *testing.T) {
	metrics, main := systemdtest.ListenTCP(t), systemdtest.ListenTCP(t)
	unused := systemdtest.FreePort(t)
	cmd := command(t, `greeting = "by name"`, "-listen", unused)
	// The main socket is second: the daemon must pick it by its name.
	systemdtest.PassSockets(t, cmd, []string{"metrics", "http"}, metrics, main)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	ready := p.WaitReady(t)
	if !strings.Contains(ready["STATUS"], main.Addr().String()) || !strings.Contains(ready["STATUS"], "socket-activated") {
		t.Errorf("STATUS=%q, want the passed socket's address", ready["STATUS"])
	}
	if code, body := systemdtest.Get(t, "http://"+main.Addr().String()+"/"); code != 200 || body != "by name\n" {
		t.Errorf("GET / on the http socket: %d %q", code, body)
	}
	// With sockets passed in, the daemon opens none of its own.
	if conn, err := net.Dial("tcp", unused); err == nil {
		conn.Close()
		t.Errorf("daemon listens on %s although systemd passed its socket", unused)
	}
	if got := listeningSockets(t, p.Cmd.Process.Pid); got != 2 {
		t.Errorf("daemon holds %d listening TCP sockets, want the 2 passed in", got)
	}
	// Metrics are served on the socket named for them, and only there.
	if code, body := systemdtest.Get(t, "http://"+metrics.Addr().String()+"/metrics"); code != 200 || !strings.Contains(body, "daemon_socket_activated 1") {
		t.Errorf("GET /metrics on the metrics socket: %d %.200q", code, body)
	}
	if code, _ := systemdtest.Get(t, "http://"+main.Addr().String()+"/metrics"); code != 404 {
		t.Errorf("GET /metrics on the http socket: %d, want 404", code)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t); code != 0 {
		t.Errorf("exit status after SIGTERM: %d, want 0", code)
	}
}

// listeningSockets counts the listening TCP sockets among pid's open files.
func listeningSockets(t *testing.T, pid int) int {
	t.Helper()
	listening := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" { // TCP_LISTEN
				listening[f[9]] = true
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") && listening[strings.Trim(target[len("socket:"):], "[]")] {
			n++
		}
	}
	return n
}

func TestMetricsListenAndMainListener(t *testing.T) {
	for _, tc := range []struct {
		name          string
		metricsListen bool
	}{{"on the main listener", false}, {"on -metrics-listen", true}} {
		t.Run(tc.name, func(t *testing.T) {
			main := systemdtest.ListenTCP(t)
			metricsAddr := systemdtest.FreePort(t)
			cmd := command(t, "")
			if tc.metricsListen {
				cmd.Args = append(cmd.Args, "-metrics-listen", metricsAddr)
			}
			systemdtest.PassSockets(t, cmd, []string{"http"}, main)
			p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
			p.WaitReady(t)
			want := map[bool]int{true: 404, false: 200}[tc.metricsListen]
			if code, _ := systemdtest.Get(t, "http://"+main.Addr().String()+"/metrics"); code != want {
				t.Errorf("GET /metrics on the main listener: %d, want %d", code, want)
			}
			if tc.metricsListen {
				if code, body := systemdtest.Get(t, "http://"+metricsAddr+"/metrics"); code != 200 || !strings.Contains(body, "daemon_ready 1") {
					t.Errorf("GET /metrics on -metrics-listen: %d %.200q", code, body)
				}
			}
		})
	}
}

func TestSocketActivationWithSystemdSocketActivate(t *testing.T) {
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (Debian package systemd)")
	}
	addr := systemdtest.FreePort(t)
	notify := systemdtest.Listen(t, false)
	cmd := command(t, `greeting = "activated"`)
	// The tool listens on addr, and on the first connection execs the
	// daemon with the socket as fd 3, LISTEN_FDNAMES=http.
	cmd.Args = append([]string{tool, "--listen=" + addr, "--fdname=http", "--setenv=NOTIFY_SOCKET=" + notify.Addr}, cmd.Args...)
	cmd.Path = tool
	p := systemdtest.Spawn(t, cmd, nil)
	p.Notify = notify
	var conn net.Conn
	for deadline := time.Now().Add(systemdtest.Wait); ; {
		if conn, err = net.Dial("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the tool's socket is not there yet
	}
	if err != nil {
		t.Fatalf("connect to the activation socket: %v", err)
	}
	defer conn.Close()
	// The first connection starts the daemon, and is served by it.
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "activated\n" {
		t.Errorf("first connection: %d %q", resp.StatusCode, body)
	}
	ready := p.WaitReady(t)
	if !strings.Contains(ready["STATUS"], "socket-activated") {
		t.Errorf("STATUS=%q, want socket-activated", ready["STATUS"])
	}
	if got := listeningSockets(t, p.Cmd.Process.Pid); got != 1 {
		t.Errorf("daemon holds %d listening sockets, want only the one passed in", got)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t); code != 0 {
		t.Errorf("exit status after SIGTERM: %d, want 0", code)
	}
}

// TestASocketPassedInThatCannotBeServedOnIsNamed: a descriptor passed in
// that is not a listening stream socket (here a UDP socket, as
// ListenDatagram= makes) is named in what the daemon says: as the main
// socket it fails the start, saying so in the log and in STATUS=; as
// another it is logged and ignored, and the daemon serves on.
func TestASocketPassedInThatCannotBeServedOnIsNamed(t *testing.T) {
	udp := func() *os.File {
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		f, err := conn.(*net.UDPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	const datagram = "a datagram socket (ListenDatagram=)"
	t.Run("the main socket", func(t *testing.T) {
		cmd := command(t, "")
		systemdtest.PassFiles(cmd, []string{"http"}, udp())
		p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
		if code := p.ExitCode(t); code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
		want := `the socket passed in as "http" cannot be served on: ` + datagram
		if !strings.Contains(p.Stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, p.Stderr)
		}
		f := systemdtest.Fields(p.Notify.NextExcept(t, systemdtest.Wait, "STATUS=Starting"))
		if !strings.Contains(f["STATUS"], want) {
			t.Errorf("STATUS=%q does not say %q", f["STATUS"], want)
		}
	})
	t.Run("another socket", func(t *testing.T) {
		ln := systemdtest.ListenTCP(t)
		main, err := ln.File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { main.Close() })
		cmd := command(t, `greeting = "served"`)
		systemdtest.PassFiles(cmd, []string{"metrics", "http"}, udp(), main)
		p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
		p.WaitReady(t)
		if code, body := systemdtest.Get(t, "http://"+ln.Addr().String()+"/"); code != 200 || body != "served\n" {
			t.Errorf("GET /: %d %q", code, body)
		}
		logged := p.Stderr.String()
		for _, want := range []string{"ignoring a socket passed in that the daemon cannot use", "name=metrics", datagram} {
			if !strings.Contains(logged, want) {
				t.Errorf("the log does not say %q:\n%s", want, logged)
			}
		}
	})
}

func TestUnnamedSingleSocketIsTheMainListener(t *testing.T) {
	ln := systemdtest.ListenTCP(t)
	cmd := command(t, `greeting = "unnamed"`)
	systemdtest.PassSockets(t, cmd, nil, ln)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	p.WaitReady(t)
	if code, body := systemdtest.Get(t, "http://"+ln.Addr().String()+"/"); code != 200 || body != "unnamed\n" {
		t.Errorf("GET /: %d %q", code, body)
	}
}

func TestSignalsAreHandledFromTheMomentReadyIsSent(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ln := systemdtest.ListenTCP(t)
			cmd := command(t, "")
			systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
			p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
			p.WaitReady(t)
			// systemd may signal the instant it reads READY=1. A signal
			// not yet caught would kill the process (SIGHUP's default).
			p.Signal(t, sig)
			if sig == syscall.SIGHUP {
				if msg := p.Notify.Next(t, systemdtest.Wait); !strings.HasPrefix(msg, "RELOADING=1\n") {
					t.Fatalf("after SIGHUP: %q, want RELOADING=1", msg)
				}
				p.WaitReady(t)
				p.Signal(t, syscall.SIGTERM)
			}
			if code := p.ExitCode(t); code != 0 {
				t.Errorf("exit status: %d, want 0 (stderr: %s)", code, p.Stderr)
			}
		})
	}
}

// TestASIGHUPBeforeReadyWaitsForTheStart: main catches SIGHUP before it
// reads the configuration, so one that comes while the daemon starts (here
// during instruments.start_delay, a warm-up before READY=1) does not end
// the process by SIGHUP's default action: the reload follows READY=1.
func TestASIGHUPBeforeReadyWaitsForTheStart(t *testing.T) {
	ln := systemdtest.ListenTCP(t)
	cmd := command(t, "[instruments]\nenabled = true\nstart_delay = \"1s\"\n")
	systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	if msg := p.Notify.Next(t, systemdtest.Wait); msg != "STATUS=Starting" {
		t.Fatalf("first message %q, want STATUS=Starting", msg)
	}
	// The warm-up's first report: started, and not ready for a second.
	if msg := p.Notify.Next(t, systemdtest.Wait); !strings.HasPrefix(msg, "STATUS=Warming up") {
		t.Fatalf("second message %q, want the warm-up's STATUS=", msg)
	}
	p.Signal(t, syscall.SIGHUP)
	if ready := p.WaitReady(t); !strings.HasPrefix(ready["STATUS"], "Serving on ") {
		t.Errorf("READY=1 with STATUS=%q, want what is served", ready["STATUS"])
	}
	if msg := p.Notify.Next(t, systemdtest.Wait); !strings.HasPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("after READY=1: %q, want the reload asked for during the start", msg)
	}
	p.WaitReady(t)
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t); code != 0 {
		t.Errorf("exit status: %d, want 0 (stderr: %s)", code, p.Stderr)
	}
}

// TestASIGHUPWhileTheConfigurationIsReadWaits: main catches the signals
// before anything else, so a SIGHUP sent while the daemon reads its
// configuration (here a FIFO, which holds the read until the test writes
// it) waits for the lifecycle, and the reload follows READY=1. Caught only
// later, it would end the process by SIGHUP's default action.
func TestASIGHUPWhileTheConfigurationIsReadWaits(t *testing.T) {
	ln := systemdtest.ListenTCP(t)
	cmd := command(t, "")
	path := systemdtest.ConfigPath(cmd)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	writeFIFO(t, path, `greeting = "first"`, func() { p.Signal(t, syscall.SIGHUP) })
	p.WaitReady(t)
	if msg := p.Notify.Next(t, systemdtest.Wait); !strings.HasPrefix(msg, "RELOADING=1\n") {
		t.Fatalf("after READY=1: %q, want the reload asked for while the configuration was read", msg)
	}
	writeFIFO(t, path, `greeting = "second"`, func() {})
	p.WaitReady(t)
	if code, body := systemdtest.Get(t, "http://"+ln.Addr().String()+"/"); code != 200 || body != "second\n" {
		t.Errorf("GET / after the reload: %d %q, want second", code, body)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t); code != 0 {
		t.Errorf("exit status: %d, want 0 (stderr: %s)", code, p.Stderr)
	}
}

// writeFIFO opens the FIFO at path once the daemon has opened it to read
// (and so is reading its configuration), calls meanwhile, then writes
// content and closes it, which ends the daemon's read.
func writeFIFO(t *testing.T, path, content string, meanwhile func()) {
	t.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0) // blocks until a reader opens it
		if err != nil {
			t.Error(err)
		}
		opened <- f
	}()
	var f *os.File
	select {
	case f = <-opened:
	case <-time.After(systemdtest.Wait):
		t.Fatalf("the daemon never read %s", path)
	}
	if f == nil {
		t.FailNow()
	}
	defer f.Close()
	meanwhile()
	if _, err := io.WriteString(f, content); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigAtStartExitsWithConfigErrorNamingFileLineKey(t *testing.T) {
	cmd := command(t, "greeting = \"hi\"\n\ndrain_timeout = \"soon\"\n")
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	// 78, not just "not 0": the units' RestartPreventExitStatus=78 is what
	// keeps systemd from restarting a daemon whose config is wrong.
	if code := p.ExitCode(t); code != 78 {
		t.Errorf("exit status %d, want 78", code)
	}
	msg := p.Stderr.String()
	for _, want := range []string{systemdtest.ConfigPath(cmd) + ":3:", "drain_timeout", `"soon"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if m, ok := p.Notify.NextOrNone(50 * time.Millisecond); ok && strings.Contains(m, "READY=1") {
		t.Error("READY=1 sent despite a bad config")
	}
}

// TestExitStatuses pins the numbers, not the constants' names: the units'
// RestartPreventExitStatus=78 and scripts depend on them.
func TestExitStatuses(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.toml")
	for _, tc := range []struct {
		name   string
		args   []string
		config string
		want   int
		output string
	}{
		{"check-config accepts a good file", []string{"-check-config"}, `greeting = "x"`, 0, "configuration ok"},
		{"check-config rejects an unknown key", []string{"-check-config"}, "greting = \"x\"", 78, ":1:1: key greting: unknown key"},
		{"a missing file named with -config", []string{"-config", missing}, "", 78, missing},
		{"a bad flag", []string{"-no-such-flag"}, "", 2, "flag provided but not defined"},
		{"version", []string{"-version"}, "", 0, "go1."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := command(t, tc.config, tc.args...)
			// A daemon that does not exit fails here, not at go test's
			// timeout.
			ctx, cancel := context.WithTimeout(context.Background(), systemdtest.Wait)
			defer cancel()
			cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			if code != tc.want {
				t.Errorf("exit status %d, want %d (output %q)", code, tc.want, out.String())
			}
			if !strings.Contains(out.String(), tc.output) {
				t.Errorf("output %q does not contain %q", out.String(), tc.output)
			}
		})
	}
}

func TestRunsOutsideSystemd(t *testing.T) {
	addr := systemdtest.FreePort(t)
	cmd := command(t, `greeting = "plain"`, "-listen", addr)
	p := systemdtest.Spawn(t, cmd, nil) // no NOTIFY_SOCKET, no LISTEN_FDS
	for deadline := time.Now().Add(systemdtest.Wait); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %v", err)
		}
	}
	if code, body := systemdtest.Get(t, "http://"+addr+"/"); code != 200 || body != "plain\n" {
		t.Errorf("GET /: %d %q", code, body)
	}
	p.Signal(t, syscall.SIGINT)
	if code := p.ExitCode(t); code != 0 {
		t.Errorf("exit status after SIGINT: %d, want 0", code)
	}
}

func TestFDStoreKeepsThePortAcrossACrash(t *testing.T) {
	addr := systemdtest.FreePort(t)
	notify := systemdtest.Listen(t, false)
	first := systemdtest.Spawn(t, command(t, `greeting = "first"`, "-listen", addr, "-fd-store"), notify)
	first.WaitReady(t)
	// The daemon opened its own socket and handed a copy to the store,
	// which this test keeps, as systemd does.
	stored := notify.StoredFile(t, systemdtest.Wait)

	first.Signal(t, syscall.SIGKILL) // a crash: no drain, no goodbye
	first.ExitCode(t)

	// While no daemon runs, the port still listens: a client is not refused
	// but waits in the backlog…
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("connect while the daemon is down: %v (refused: the store did not keep the port)", err)
	}
	defer conn.Close()
	// …and the next start, with the same -listen, gets the socket back, as
	// systemd passes it, and serves that client.
	cmd := command(t, `greeting = "second"`, "-listen", addr, "-fd-store")
	systemdtest.PassFiles(cmd, []string{"http"}, stored)
	second := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	conn.SetDeadline(time.Now().Add(systemdtest.Wait))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the waiting client: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "second\n" {
		t.Errorf("the waiting client got %q, want the second daemon's greeting", body)
	}
	if ready := second.WaitReady(t); !strings.Contains(ready["STATUS"], addr) {
		t.Errorf("second daemon: STATUS=%q, want it serving the stored socket on %s", ready["STATUS"], addr)
	}
}

// TestMinimalServiceRunsUnderTheLifecycle: a service of a few lines
// (./testservice) gets everything the kit gives: READY=1 with STATUS=, the
// health, readiness and metrics endpoints, the watchdog fed while its check
// passes, a reload, and a stop that drains.
func TestMinimalServiceRunsUnderTheLifecycle(t *testing.T) {
	const interval = 400 * time.Millisecond
	ln := systemdtest.ListenTCP(t)
	url := "http://" + ln.Addr().String()
	cmd := command(t, `greeting = "minimal"`)
	cmd.Env = append(cmd.Env, fmt.Sprintf("WATCHDOG_USEC=%d", interval.Microseconds()))
	systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	if ready := p.WaitReady(t); !strings.HasPrefix(ready["STATUS"], "Serving on "+ln.Addr().String()) {
		t.Errorf("READY=1 with STATUS=%q, want what is served", ready["STATUS"])
	}
	for path, want := range map[string]string{"/": "minimal\n", "/healthz": "ok\n", "/readyz": "ready\n"} {
		if code, body := systemdtest.Get(t, url+path); code != 200 || body != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, code, body, want)
		}
	}
	if code, body := systemdtest.Get(t, url+"/metrics"); code != 200 || !strings.Contains(body, `daemon_http_requests_total{code="200",method="get",route="/"} 1`) {
		t.Errorf("GET /metrics: %d, without the request to / counted: %.300q", code, body)
	}
	if msg := p.Notify.Next(t, systemdtest.Wait); msg != "WATCHDOG=1" {
		t.Errorf("got %q, want WATCHDOG=1", msg)
	}

	// A reload that makes the check fail: the new greeting is served, and
	// the watchdog is no longer fed.
	if err := os.WriteFile(systemdtest.ConfigPath(cmd), []byte("greeting = \"reloaded\"\nfail_check = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGHUP)
	if msg := p.Notify.NextExcept(t, systemdtest.Wait, "WATCHDOG=1"); !strings.HasPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC=", msg)
	}
	p.WaitReady(t)
	if _, body := systemdtest.Get(t, url+"/"); body != "reloaded\n" {
		t.Errorf("GET / after the reload: %q", body)
	}
	if code, _ := systemdtest.Get(t, url+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz with a failing check: %d, want 503", code)
	}
	p.Notify.NextOrNone(interval / 2) // a ping already on its way
	if msg, ok := p.Notify.NextOrNone(2 * interval); ok {
		t.Errorf("got %q with a failing check, want no ping", msg)
	}

	// A stop waits for the request in flight.
	slow := make(chan string, 1)
	go func() {
		resp, err := (&http.Client{Timeout: systemdtest.Wait}).Get(url + "/sleep?d=500ms")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		slow <- string(body)
	}()
	// In flight: the slow request, and this scrape.
	for deadline := time.Now().Add(systemdtest.Wait); !strings.Contains(metricsOf(t, url), "daemon_http_requests_in_flight 2"); {
		if time.Now().After(deadline) {
			t.Fatal("the slow request never was in flight")
		}
	}
	p.Signal(t, syscall.SIGTERM)
	if msg := p.Notify.Next(t, systemdtest.Wait); !strings.HasPrefix(msg, "STOPPING=1\n") {
		t.Errorf("after SIGTERM: %q, want STOPPING=1", msg)
	}
	if body := <-slow; body != "slept 500ms\n" {
		t.Errorf("the request in flight during the stop got %q", body)
	}
	if code := p.ExitCode(t); code != 0 {
		t.Errorf("exit status after the stop: %d, want 0", code)
	}
}

// metricsOf returns what GET /metrics answers at url.
func metricsOf(t *testing.T, url string) string {
	t.Helper()
	_, body := systemdtest.Get(t, url+"/metrics")
	return body
}

// TestLogFormatFlagWinsOverTheFile: -log-format json over log_format =
// "text" in the file.
func TestLogFormatFlagWinsOverTheFile(t *testing.T) {
	ln := systemdtest.ListenTCP(t)
	cmd := command(t, `log_format = "text"`, "-log-format", "json")
	systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	p.WaitReady(t)
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	lines := strings.Split(strings.TrimSpace(p.Stderr.String()), "\n")
	for _, line := range lines {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("log line %q is not JSON, as -log-format json asks", line)
		}
	}
	if len(lines) < 2 {
		t.Errorf("logged %q, want at least the ready and stopped lines", lines)
	}
}

// TestAFailedStartSaysWhyToSystemd: a daemon that cannot start sends
// STATUS= with the reason before it exits, and ERRNO= when an errno is
// behind it, so that `systemctl status` shows why.
func TestAFailedStartSaysWhyToSystemd(t *testing.T) {
	held := systemdtest.ListenTCP(t)
	missing := filepath.Join(t.TempDir(), "missing.toml")
	for _, tc := range []struct {
		name, config string
		args         []string
		exit         int
		status       []string
		errno        string
	}{
		{"bad config", "\ndrain_timeout = \"soon\"", nil, 78, []string{"Failed: ", ":2:17: key drain_timeout"}, ""},
		{"config file missing", "", []string{"-config", missing}, 78, []string{"Failed: ", missing}, "2"},
		{"port in use", "", []string{"-listen", held.Addr().String()}, 1, []string{"Failed: ", "address already in use"}, "98"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := systemdtest.Spawn(t, command(t, tc.config, tc.args...), systemdtest.Listen(t, false))
			if code := p.ExitCode(t); code != tc.exit {
				t.Errorf("exit status %d, want %d", code, tc.exit)
			}
			msg := p.Notify.NextExcept(t, systemdtest.Wait, "STATUS=Starting")
			f := systemdtest.Fields(msg)
			for _, want := range tc.status {
				if !strings.Contains(f["STATUS"], want) {
					t.Errorf("STATUS=%q does not say %q", f["STATUS"], want)
				}
			}
			if f["ERRNO"] != tc.errno {
				t.Errorf("ERRNO=%q, want %q (message %q)", f["ERRNO"], tc.errno, msg)
			}
		})
	}
}

// TestDebugInvocationLogsAtDebug: under RestartMode=debug systemd sets
// DEBUG_INVOCATION=1, and that run logs at debug level whatever log_level
// says (here each sd_notify message); without it, the file's level holds.
func TestDebugInvocationLogsAtDebug(t *testing.T) {
	for _, debug := range []bool{false, true} {
		t.Run(fmt.Sprintf("DEBUG_INVOCATION=%v", debug), func(t *testing.T) {
			ln := systemdtest.ListenTCP(t)
			cmd := command(t, `log_level = "warn"`)
			if debug {
				cmd.Env = append(cmd.Env, "DEBUG_INVOCATION=1")
			}
			systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
			p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
			p.WaitReady(t)
			p.Signal(t, syscall.SIGTERM)
			p.ExitCode(t)
			logged := strings.Contains(p.Stderr.String(), `level=DEBUG msg=sd_notify sent="READY=1`)
			if logged != debug {
				t.Errorf("debug line for READY=1 logged: %v, want %v:\n%s", logged, debug, p.Stderr)
			}
		})
	}
}

// TestTheStartLogsTheRuntimesLimits: the log line at start says what
// GOMAXPROCS and the Go memory limit are and where the limit came from;
// GOMEMLIMIT in the environment is left as the runtime read it. (The
// limit taken from a unit's MemoryHigh= is shown under systemd, in
// test/systemd.)
func TestTheStartLogsTheRuntimesLimits(t *testing.T) {
	ln := systemdtest.ListenTCP(t)
	cmd := command(t, "")
	cmd.Env = append(cmd.Env, "GOMEMLIMIT=100MiB", "GOMAXPROCS=1")
	systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	p.WaitReady(t)
	p.Signal(t, syscall.SIGTERM)
	p.ExitCode(t)
	want := `msg="runtime limits" GOMAXPROCS=1 GOMEMLIMIT.bytes=104857600 GOMEMLIMIT.from=GOMEMLIMIT`
	if !strings.Contains(p.Stderr.String(), want) {
		t.Errorf("no %s in the log:\n%s", want, p.Stderr)
	}
}

// TestTooFewOpenFilesForMaxConnectionsIsSaid: when LimitNOFILE= leaves
// too few files for max_connections, the daemon says so at start (a
// connection past the limit would fail in accept, not wait). prlimit(1)
// sets the limit, as systemd would.
func TestTooFewOpenFilesForMaxConnectionsIsSaid(t *testing.T) {
	// The daemon's own files (openFilesNeeded in limits.go) are 64.
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	for _, tc := range []struct {
		maxConnections int
		warned         bool
	}{{449, true}, {448, false}} { // 512 files leave 448 beside the daemon's 64
		t.Run(fmt.Sprint(tc.maxConnections), func(t *testing.T) {
			ln := systemdtest.ListenTCP(t)
			cmd := command(t, fmt.Sprintf("[http]\nmax_connections = %d", tc.maxConnections))
			cmd.Args = append([]string{prlimit, "--nofile=512:512", cmd.Path}, cmd.Args[1:]...)
			cmd.Path = prlimit
			systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
			p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
			p.WaitReady(t)
			p.Signal(t, syscall.SIGTERM)
			p.ExitCode(t)
			warned := strings.Contains(p.Stderr.String(), "more than the limit (512): raise LimitNOFILE=")
			if warned != tc.warned {
				t.Errorf("max_connections = %d under 512 open files: warned %v, want %v:\n%s", tc.maxConnections, warned, tc.warned, p.Stderr)
			}
		})
	}
}

// TestAnUnreadableTokenFailsTheStartSayingWhy: an API token the daemon
// cannot read stops the start, and systemctl status shows why (STATUS=,
// ERRNO=), like a bad config or a port in use.
func TestAnUnreadableTokenFailsTheStartSayingWhy(t *testing.T) {
	cmd := command(t, "", "-listen", "127.0.0.1:0")
	creds := t.TempDir()
	// A directory where the file should be: unreadable, even for root.
	if err := os.Mkdir(filepath.Join(creds, "api-token"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, "CREDENTIALS_DIRECTORY="+creds)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	if code := p.ExitCode(t); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	f := systemdtest.Fields(p.Notify.NextExcept(t, systemdtest.Wait, "STATUS=Starting"))
	if !strings.HasPrefix(f["STATUS"], "Failed: ") || !strings.Contains(f["STATUS"], "credential api-token") || f["ERRNO"] != "21" {
		t.Errorf("STATUS=%q ERRNO=%q; want Failed: … credential api-token …, ERRNO=21 (EISDIR)", f["STATUS"], f["ERRNO"])
	}
}
