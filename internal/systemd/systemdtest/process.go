package systemdtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The helpers below run a daemon as a process and talk to it as systemd
// would: a notify socket, sockets passed as file descriptors 3, 4, …, and
// signals.

// Main is a TestMain for tests that run a daemon as a process: it builds
// the main package pkg as name in a temporary directory, sets *binary to
// its path, runs the tests, removes the directory and exits.
func Main(m *testing.M, pkg, name string, binary *string) {
	dir, err := os.MkdirTemp("", name+"-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*binary = filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", *binary, pkg)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build %s: %v\n", pkg, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Command returns an exec.Cmd for binary with a fresh state directory, a
// config file holding config (ConfigPath names it), and no environment but
// PATH.
func Command(t testing.TB, binary, config string, args ...string) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"-config", path, "-state-dir", dir}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	return cmd
}

// ConfigPath returns the -config argument of cmd.
func ConfigPath(cmd *exec.Cmd) string {
	i := slices.Index(cmd.Args, "-config")
	return cmd.Args[i+1]
}

// Wait bounds every wait of the helpers below.
const Wait = 10 * time.Second

// Process is a running daemon process.
type Process struct {
	Cmd    *exec.Cmd
	Notify *NotifySocket
	Stderr *SyncBuffer
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// Spawn starts cmd, with NOTIFY_SOCKET set to notify unless it is nil, and
// kills it when t ends.
func Spawn(t testing.TB, cmd *exec.Cmd, notify *NotifySocket) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, Notify: notify, Stderr: &SyncBuffer{}, exited: make(chan struct{})}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Stderr
	}
	if notify != nil {
		cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+notify.Addr)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", p.Stderr.String())
		}
	})
	return p
}

// ExitCode waits for the process to end and returns its exit status.
func (p *Process) ExitCode(t testing.TB) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(Wait):
		t.Fatal("daemon did not exit")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// WaitReady waits for READY=1 and returns the message's assignments.
func (p *Process) WaitReady(t testing.TB) map[string]string {
	t.Helper()
	for {
		msg := p.Notify.NextExcept(t, Wait, "WATCHDOG=1")
		if f := Fields(msg); f["READY"] == "1" {
			return f
		}
	}
}

// PassSockets arranges for cmd to receive listeners as systemd passes them:
// file descriptors 3, 4, …, LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID.
func PassSockets(t testing.TB, cmd *exec.Cmd, names []string, listeners ...*net.TCPListener) {
	t.Helper()
	var files []*os.File
	for _, ln := range listeners {
		f, err := ln.File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
	}
	PassFiles(cmd, names, files...)
}

// PassFiles passes files as systemd passes sockets. The PID is not known
// before the process starts, so a shell sets LISTEN_PID and execs the
// daemon, which keeps the shell's PID.
func PassFiles(cmd *exec.Cmd, names []string, files ...*os.File) {
	cmd.ExtraFiles = append(cmd.ExtraFiles, files...)
	cmd.Env = append(cmd.Env,
		"LISTEN_FDS="+strconv.Itoa(len(files)),
		"LISTEN_FDNAMES="+strings.Join(names, ":"))
	cmd.Args = append([]string{"/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`}, cmd.Args...)
	cmd.Path = "/bin/sh"
}

// ListenTCP returns a listener on a free loopback port, closed with t.
func ListenTCP(t testing.TB) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// FreePort returns a loopback address nothing listens on right now.
func FreePort(t testing.TB) string {
	t.Helper()
	ln := ListenTCP(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Get sends GET url and returns the status code and body.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: Wait}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// SyncBuffer is a bytes.Buffer safe for a process's writes and a test's
// reads.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
