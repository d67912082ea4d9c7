package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A server under test: the daemon or a baseline.
type server struct {
	name string   // as the table shows it
	path string   // the binary
	args []string // its arguments
	env  []string // its environment, besides what every server gets
}

// A running server.
type process struct {
	server *server
	cmd    *exec.Cmd
	pid    int
	execAt time.Time // when the binary was exec'd (the kernel's timestamp)
	ready  datagram  // its first READY=1
	before []datagram
	log    *os.File

	done    chan struct{} // closed when it has exited
	waitErr error         // why, once done is closed
}

// execMarker is the datagram the exec wrapper sends just before execve(2):
// its kernel timestamp is where the time to ready starts.
const execMarker = "BENCH_EXEC=1"

// execWrapper is the driver re-run as
//
//	driver exec CPUS PROGRAM ARGS...
//
// It is what solves socket activation's chicken-and-egg: LISTEN_PID must
// be the pid of the process that reads the sockets, which the parent only
// knows once it has forked. The wrapper is that process before it becomes
// the server: it sets LISTEN_PID to its own pid, pins itself to CPUS
// ("all", or a list such as "0" or "0,1"), tells the notify socket that the
// exec starts now, and execs PROGRAM, which keeps the pid, the affinity and
// file descriptor 3. (`sh -c 'LISTEN_PID=$$ exec …'` does the same, but
// the shell's start would be measured with every run.) Every server,
// daemon and baselines alike, is started this way.
func execWrapper(args []string) {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: driver exec CPUS PROGRAM ARGS...")
		os.Exit(2)
	}
	cpus, argv := args[0], args[1:]
	// The affinity is per thread, and the thread that calls execve(2)
	// passes its own to the new program.
	runtime.LockOSThread()
	if err := setAffinity(cpus); err != nil {
		fmt.Fprintf(os.Stderr, "driver exec: %v\n", err)
		os.Exit(1)
	}
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	if sock := os.Getenv("NOTIFY_SOCKET"); sock != "" {
		conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err == nil {
			_, err = conn.Write([]byte(execMarker))
			conn.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "driver exec: %v\n", err)
			os.Exit(1)
		}
	}
	err := syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintf(os.Stderr, "driver exec %s: %v\n", argv[0], err)
	os.Exit(1)
}

func setAffinity(cpus string) error { return setAffinityOf(0, cpus) }

func cpuSet(cpus string) (unix.CPUSet, error) {
	var set unix.CPUSet
	if cpus == "all" {
		for i := range 1024 {
			set.Set(i) // the kernel keeps the CPUs that exist
		}
		return set, nil
	}
	for _, c := range strings.Split(cpus, ",") {
		n, err := strconv.Atoi(c)
		if err != nil {
			return set, fmt.Errorf("cpus %q: %w", cpus, err)
		}
		set.Set(n)
	}
	return set, nil
}

// start starts s through the exec wrapper, on CPUs cpus, with ln as its
// only activated socket (fd 3, named "http"), and waits for READY=1.
func (b *bench) start(s *server, ln *os.File, cpus string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(b.logPath(s), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"exec", cpus, s.path}, s.args...)...)
	cmd.Env = append(append(b.env(), s.env...),
		"NOTIFY_SOCKET="+b.notify.addr,
		"LISTEN_FDS=1",
		"LISTEN_FDNAMES=http",
	)
	cmd.ExtraFiles = []*os.File{ln}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &process{server: s, cmd: cmd, pid: cmd.Process.Pid, log: logf, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	marker, _, err := b.notify.next(p.pid, execMarker, 10*time.Second, p.done)
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("%s: %w%s", s.name, err, b.logTail(s))
	}
	p.execAt = marker.sent
	p.ready, p.before, err = b.notify.next(p.pid, "READY=1", 10*time.Second, p.done)
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("%s: %w%s", s.name, err, b.logTail(s))
	}
	return p, nil
}

// stop sends SIGTERM and waits for the exit, which must be clean.
func (p *process) stop() error {
	defer p.log.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("%s (pid %d): %w", p.server.name, p.pid, err)
	}
	select {
	case <-p.done:
		if p.waitErr != nil {
			return fmt.Errorf("%s (pid %d) exited: %w", p.server.name, p.pid, p.waitErr)
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill() // it fails only once the process is gone
		<-p.done
		return fmt.Errorf("%s (pid %d) did not stop within 15s of SIGTERM", p.server.name, p.pid)
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill() // it fails only once the process is gone
	<-p.done
	p.log.Close()
}

// memory is what /proc/PID/status says of the process's resident memory,
// in bytes: VmRSS, and its parts RssAnon (heap, stacks: the process's
// own) and RssFile (the pages of the binary it has touched, which are page
// cache, shared with every other process running the same binary).
type memory struct{ rss, anon, file int64 }

func (p *process) memory() (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, ":")
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.rss
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc/%d/status: %s: %w", p.pid, line, err)
		}
		*dst = kb << 10
	}
	if m.rss == 0 {
		return memory{}, fmt.Errorf("no VmRSS in /proc/%d/status", p.pid)
	}
	return m, nil
}

// cpuTime is the CPU time the process has spent, all its threads, in user
// space and in the kernel (utime and stime in /proc/PID/stat, in clock
// ticks of 10 ms: a run of seconds has them to 1%).
func (p *process) cpuTime() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	_, rest, ok := strings.Cut(string(data), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", p.pid, data)
	}
	// Fields 14 and 15 of proc(5); rest starts at field 3.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", p.pid, data)
	}
	const tick = 10 * time.Millisecond // sysconf(_SC_CLK_TCK) is 100 on Linux
	return time.Duration(utime+stime) * tick, nil
}

// tcpListener opens a listening TCP socket on the loopback, as a .socket
// unit would, and returns it as the file to pass in and its URL.
func tcpListener() (*os.File, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	defer ln.Close() // the dup below keeps the socket
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return nil, "", err
	}
	return f, "http://" + ln.Addr().String(), nil
}

func setAffinityOf(tid int, cpus string) error {
	set, err := cpuSet(cpus)
	if err != nil {
		return err
	}
	if err := unix.SchedSetaffinity(tid, &set); err != nil {
		return fmt.Errorf("sched_setaffinity %s: %w", cpus, err)
	}
	return nil
}
