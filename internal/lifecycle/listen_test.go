package lifecycle_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"example.com/daemon/internal/systemd"
	"example.com/daemon/internal/systemd/systemdtest"
)

// Step 2, the listening sockets: with the FD store (-fd-store), the socket
// passed back is kept or replaced as the configuration says.

// TestAStoredSocketThatListensElsewhereLeavesTheStore: with the FD store
// (-fd-store), the socket passed back is the one an earlier start opened.
// When the configuration now says another address, the daemon takes that
// socket out of the store (FDSTOREREMOVE=1), listens where it is told and
// stores the new socket; a stored socket it has no use for leaves too.
func TestAStoredSocketThatListensElsewhereLeavesTheStore(t *testing.T) {
	t.Parallel()
	old, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := systemdtest.FreePort(t)
	d := start(t, options{
		config:        fmt.Sprintf("listen = %q", addr),
		listener:      old,
		storeListener: true,
		extra:         systemd.Listeners{"renamed": {unused}},
	})
	expect(t, d, "FDSTOREREMOVE", "FDNAME") // the main socket, elsewhere
	if got := expect(t, d, "FDSTOREREMOVE", "FDNAME"); got["FDNAME"] != "renamed" {
		t.Errorf("removed %q, want the unused socket's name", got["FDNAME"])
	}
	if got := expect(t, d, "FDSTORE", "FDNAME"); got["FDNAME"] != "http" {
		t.Errorf("stored %q, want http", got["FDNAME"])
	}
	stored := d.notify.StoredFile(t, wait)
	defer stored.Close()
	expect(t, d, "STATUS")
	if ready := expect(t, d, "READY", "STATUS"); !strings.Contains(ready["STATUS"], addr) {
		t.Errorf("READY=1 with STATUS=%q, want it serving on the configured %s", ready["STATUS"], addr)
	}
	if code, _ := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("GET /readyz on %s: %d", addr, code)
	}
}

// TestAStoredSocketOnTheConfiguredAddressIsKept: the common case, a
// restart with the same configuration, keeps the socket and stores
// nothing anew.
func TestAStoredSocketOnTheConfiguredAddressIsKept(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, options{config: fmt.Sprintf("listen = %q", ln.Addr()), listener: ln, storeListener: true})
	expect(t, d, "STATUS")
	if ready := expect(t, d, "READY", "STATUS"); !strings.Contains(ready["STATUS"], ln.Addr().String()+" (socket-activated)") {
		t.Errorf("READY=1 with STATUS=%q, want the stored socket served", ready["STATUS"])
	}
}
