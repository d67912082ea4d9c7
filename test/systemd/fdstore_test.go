//go:build systemd

package systemd_test

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestAChangedListenTakesEffectAtTheNextRestart: the standalone unit keeps
// its socket in the FD store across restarts. When -listen changes, the
// next start gets the old socket back, takes it out of the store
// (FDSTOREREMOVE=1), listens on the new address and stores that socket
// instead: the old port is closed, the new one served, at a restart.
func TestAChangedListenTakesEffectAtTheNextRestart(t *testing.T) {
	pid := startStandalone(t, baseConfig, false)
	const before, after = "8080", "8081"
	storedSocket(t, pid, before)

	runtimeDropIn(t, standaloneUnit, "zz-listen.conf",
		"[Service]\nExecStart=\nExecStart=/usr/bin/"+name+" -listen 127.0.0.1:"+after+" -fd-store\n")
	systemctl(t, "restart", standaloneUnit)
	pid = activeMainPID(t, standaloneUnit, "restart")
	storedSocket(t, pid, after)
	if n := prop(t, standaloneUnit, "NFileDescriptorStore"); n != "1" {
		t.Errorf("NFileDescriptorStore=%s after the restart, want 1: the new socket alone", n)
	}
	if st := prop(t, standaloneUnit, "StatusText"); !strings.Contains(st, "127.0.0.1:"+after+" (own socket)") {
		t.Errorf("StatusText=%q, want the new address, opened by the daemon", st)
	}
	if code, _ := get(t, "http://127.0.0.1:"+after+"/readyz"); code != 200 {
		t.Errorf("GET /readyz on the new port: %d", code)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+before, time.Second); err == nil {
		c.Close()
		t.Errorf("the old port %s still accepts connections: its socket was not taken out of the store", before)
	}
}
