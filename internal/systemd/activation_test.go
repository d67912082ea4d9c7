package systemd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestListenersSayWhatEachUnusableSocketIs: a descriptor passed in that is
// not a listening stream socket is not served on, and not dropped without
// a word either: it comes back by name, with what it is, in the words of
// the .socket unit that would have made it.
func TestListenersSayWhatEachUnusableSocketIs(t *testing.T) {
	file := func(f interface{ File() (*os.File, error) }) *os.File {
		t.Helper()
		c, err := f.File()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	unixLn, err := net.Listen("unix", filepath.Join(t.TempDir(), "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unixLn.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	conn, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	plain, err := os.CreateTemp(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	// Each under a name of its own, as activation.Files names them: a
	// descriptor of its own, so that closing one file closes nothing else.
	named := func(f *os.File, name string) *os.File {
		t.Helper()
		defer f.Close()
		fd, err := unix.Dup(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(fd), name)
	}

	ls, unusable := listeners([]*os.File{
		named(file(tcp.(*net.TCPListener)), "http"),
		named(file(unixLn.(*net.UnixListener)), "admin"),
		named(file(udp.(*net.UDPConn)), "metrics"),
		named(file(conn.(*net.TCPConn)), "conn"),
		named(plain, "file"),
	})
	defer ls.Close()
	if got := slices.Sorted(func(yield func(string) bool) {
		for name := range ls {
			yield(name)
		}
	}); !slices.Equal(got, []string{"admin", "http"}) {
		t.Errorf("listeners %v, want the two listening stream sockets, admin and http", got)
	}
	for name, want := range map[string]string{
		"metrics": "a datagram socket (ListenDatagram=)",
		"conn":    "not listening, such as one connection (Accept=yes)",
		"file":    "not a socket",
	} {
		if err := unusable[name]; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, want)
		}
	}
	if len(unusable) != 3 {
		t.Errorf("unusable: %v, want metrics, conn and file", unusable)
	}
}

// TestPidfdIDMatches: LISTEN_PIDFDID, when set, must be the inode ID of this
// process's pidfd, as sd_listen_fds(3) has it; without an ID of our own
// (no pidfs) LISTEN_PID alone decides.
func TestPidfdIDMatches(t *testing.T) {
	own := func(id uint64, ok bool) func() (uint64, bool) {
		return func() (uint64, bool) { return id, ok }
	}
	for _, tc := range []struct {
		name    string
		env     string
		own     func() (uint64, bool)
		want    bool
		wantErr bool
	}{
		{"unset", "", own(42, true), true, false},
		{"this process's", "42", own(42, true), true, false},
		{"another process's", "43", own(42, true), false, false},
		{"no pidfs to compare with", "43", own(0, false), true, false},
		{"not a number", "pidfd", own(42, true), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "LISTEN_PIDFDID" {
					return tc.env
				}
				return ""
			}
			got, err := pidfdIDMatches(getenv, tc.own)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("pidfdIDMatches = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestTakeTakesSocketsOnlyForItsOwnPidfd: a process started with a socket as
// fd 3, LISTEN_PID its own PID and LISTEN_PIDFDID either its own pidfd's
// ID or another, calls Take: the socket is its own only in the first case,
// and either way no LISTEN_ variable is left for a child to inherit. The
// process is this test binary again, which the environment tells to be the
// child.
func TestTakeTakesSocketsOnlyForItsOwnPidfd(t *testing.T) {
	if mode, ok := os.LookupEnv("TAKE_CHILD_PIDFDID"); ok {
		takeChild(mode)
		return
	}
	if _, ok := ownPidfdID(); !ok {
		t.Skip("no pidfs here (Linux < 6.9, or not Linux): LISTEN_PIDFDID has nothing to be compared with")
	}
	for _, tc := range []struct {
		mode string
		want string
	}{
		{"own", "taken=[http]"},
		{"other", "taken=[]"},
		{"unset", "taken=[http]"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			f, err := ln.(*net.TCPListener).File()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^TestTakeTakesSocketsOnlyForItsOwnPidfd$")
			cmd.Env = append(os.Environ(), "TAKE_CHILD_PIDFDID="+tc.mode, "LISTEN_FDS=1", "LISTEN_FDNAMES=http")
			cmd.ExtraFiles = []*os.File{f}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want+" left=[]\n") {
				t.Errorf("child said:\n%s\nwant %q and no LISTEN_ variable left", out, tc.want)
			}
		})
	}
}

// takeChild is the child of TestTakeTakesSocketsOnlyForItsOwnPidfd: it sets
// LISTEN_PID to its PID, LISTEN_PIDFDID as mode says, calls Take and prints
// the names it took and the LISTEN_ variables left.
func takeChild(mode string) {
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	id, _ := ownPidfdID()
	switch mode {
	case "own":
		os.Setenv("LISTEN_PIDFDID", strconv.FormatUint(id, 10))
	case "other":
		os.Setenv("LISTEN_PIDFDID", strconv.FormatUint(id+1, 10))
	}
	p, err := Take()
	if err != nil {
		fmt.Println("Take:", err)
		return
	}
	var taken, left []string
	for name := range p.Listeners {
		taken = append(taken, name)
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LISTEN_") {
			left = append(left, kv)
		}
	}
	p.Listeners.Close()
	fmt.Printf("taken=%v left=%v\n", taken, left)
}
