package systemd

import (
	"net"
	"os"
	"path/filepath"
	"slices"
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
