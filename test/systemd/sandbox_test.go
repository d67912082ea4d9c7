//go:build systemd

package systemd_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRunsAsDynamicUser: DynamicUser= gives the daemon a UID from systemd's
// dynamic range that no file in /etc/passwd names, resolvable only while
// the unit runs (nss-systemd), and the state directory belongs to it.
func TestRunsAsDynamicUser(t *testing.T) {
	pid := freshStart(t, baseConfig)
	uid := procUID(t, pid)
	if uid < 61184 || uid > 65519 {
		t.Errorf("daemon runs as UID %d, outside the dynamic range 61184-65519 (a static user of the same name?)", uid)
	}
	user := prop(t, unit, "User")
	entry := strings.TrimSpace(command(t, "getent", "passwd", user))
	if f := strings.Split(entry, ":"); len(f) < 3 || f[2] != strconv.Itoa(uid) {
		t.Errorf("getent passwd %s = %q, want UID %d", user, entry, uid)
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	if strings.Contains(string(passwd), user+":") {
		t.Errorf("%s is in /etc/passwd: a static user, not a dynamic one", user)
	}
	// The state directory belongs to the daemon as the daemon sees it:
	// in its mount namespace, looked at with the host's UIDs.
	state := prop(t, unit, "StateDirectory")
	dir := filepath.Join("/var/lib", state)
	seen := strings.TrimSpace(command(t, "nsenter", "--target", strconv.Itoa(pid), "--mount", "stat", "--dereference", "--format=%u", dir))
	if seen != strconv.Itoa(uid) {
		t.Errorf("in the daemon's mount namespace %s belongs to UID %s, want the daemon's %d", dir, seen, uid)
	}
	// On disk, systemd either chowns the directory to each new dynamic
	// UID (252 always; 257 and later where no ID-mapped mount can be made,
	// as in the harness's containers), or leaves it owned by nobody and
	// bind-mounts it into the service ID-mapped, nobody to the dynamic UID
	// (257 and later where the file system allows, NEWS 257: 262 on ext4
	// in test/vm, /var/lib/private/daemon, "idmapped" in the service's
	// mountinfo); mountinfo says which.
	fi, err := os.Stat(filepath.Join("/var/lib/private", state))
	if err != nil {
		t.Fatalf("state directory: %v", err)
	}
	owner := fileUID(fi)
	idmapped := mountOptions(t, pid, dir)["idmapped"] || mountOptions(t, pid, filepath.Join("/var/lib/private", state))["idmapped"]
	t.Logf("systemd %d: /var/lib/private/%s belongs to UID %d on disk; mounted ID-mapped in the service: %v", systemdVersion(t), state, owner, idmapped)
	switch {
	case idmapped && owner != 65534:
		t.Errorf("/var/lib/private/%s is mounted ID-mapped but belongs to UID %d on disk, want nobody (65534)", state, owner)
	case !idmapped && owner != uid:
		t.Errorf("/var/lib/private/%s belongs to UID %d, want the daemon's %d", state, owner, uid)
	}
}

// mountOptions returns the per-mount options (ro, nosuid, idmapped, ...) of
// the mount at path in process pid's mount namespace, from its mountinfo,
// or none if nothing is mounted there.
func mountOptions(t testing.TB, pid int, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	var opts map[string]bool
	for _, line := range strings.Split(string(b), "\n") {
		// ID parent major:minor root mountpoint options ...
		f := strings.Fields(line)
		if len(f) < 6 || f[4] != path {
			continue
		}
		opts = map[string]bool{} // the last mount there is the one in effect
		for _, o := range strings.Split(f[5], ",") {
			opts[o] = true
		}
	}
	return opts // nil if nothing is mounted there
}

// TestCannotWriteOutsideStateDirectory: with ProtectSystem=strict the
// daemon's view of the file system is read-only except its state directory
// and a private /tmp and /var/tmp. ProtectSystem= leaves the API file
// systems under /dev writable, and PrivateDevices= bind-mounts the host's
// /dev/shm and /dev/mqueue, open to every user, into the daemon's /dev:
// InaccessiblePaths= closes them. Checked by entering the daemon's
// namespaces as its user and trying.
func TestCannotWriteOutsideStateDirectory(t *testing.T) {
	pid := freshStart(t, baseConfig)
	uid := strconv.Itoa(procUID(t, pid))
	state := "/var/lib/" + prop(t, unit, "StateDirectory")
	touch := func(path string) error {
		_, err := tryCommand("nsenter", "--target", strconv.Itoa(pid), "--all", "--setuid", uid, "--setgid", uid,
			"sh", "-c", `touch "$1" && rm "$1"`, "sh", path)
		return err
	}
	for _, path := range []string{
		filepath.Join(state, "probe"),
		"/tmp/probe",
		"/var/tmp/probe",
	} {
		if err := touch(path); err != nil {
			t.Errorf("daemon cannot write %s, which it should: %v", path, err)
		}
	}
	for _, path := range []string{
		filepath.Join(filepath.Dir(configPath), "probe"), // its config: read-only to it
		"/etc/probe",
		"/usr/bin/probe",
		"/var/lib/probe",
		"/var/tmp/../lib/probe",
		"/root/probe",
		"/home/probe",
		"/dev/shm/probe",    // the host's, shared with every service
		"/dev/mqueue/probe", // a POSIX message queue, the host's too
		"/dev/probe",
	} {
		if err := touch(path); err == nil {
			t.Errorf("daemon could write %s", path)
		}
	}
}

// TestHasNoNetworkOfItsOwn: PrivateNetwork= puts the daemon in a network
// namespace with only a loopback device, yet it serves on the sockets
// systemd passed in (every other test shows that). It cannot even reach the
// host's loopback, where its own public port is.
func TestHasNoNetworkOfItsOwn(t *testing.T) {
	pid := freshStart(t, baseConfig)
	self, _ := os.Readlink("/proc/1/ns/net")
	its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	if its == self {
		t.Fatalf("daemon shares PID 1's network namespace %s", its)
	}
	links := command(t, "nsenter", "--target", strconv.Itoa(pid), "--net", "ip", "-o", "link", "show")
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(links), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	if len(names) != 1 || names[0] != "lo" {
		t.Errorf("network devices in the daemon's namespace: %v, want only lo", names)
	}
	if out, err := tryCommand("nsenter", "--target", strconv.Itoa(pid), "--net",
		"curl", "--silent", "--max-time", "2", baseURL(t)+"/healthz"); err == nil {
		t.Errorf("from the daemon's network namespace, %s answered %q", baseURL(t), out)
	}
}

// TestOutboundConnectionsNeedAllThreeLoosened: the recipe in
// docs/hardening.md for a daemon that must connect out (a database, an
// API), checked for real. Three walls stand in the way, and each case opens
// some: PrivateNetwork= (no route out of the namespace),
// RestrictAddressFamilies= (no AF_INET socket at all) and IPAddressDeny=
// (an eBPF filter on the packets). The connection is made by curl in an
// ExecStartPost= line, which runs inside the same sandbox and cgroup as
// the daemon, to a server this test runs on 127.0.0.2 (the container has
// only a loopback device). A failed ExecStartPost= fails the start.
func TestOutboundConnectionsNeedAllThreeLoosened(t *testing.T) {
	var hits atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	probe := "ExecStartPost=/usr/bin/curl --silent --show-error --fail --max-time 1 http://" + ln.Addr().String() + "/\n"
	open := "PrivateNetwork=no\nRestrictAddressFamilies=AF_INET AF_INET6\n"
	cases := []struct {
		what, dropIn string
		connects     bool
	}{
		{"as shipped", "", false},
		{"recipe A: namespace, families and the one address", open + "IPAddressAllow=127.0.0.2\n", true},
		{"namespace and families, no address allowed", open, false},
		{"namespace and families, another address allowed", open + "IPAddressAllow=127.0.0.3\n", false},
		{"families and the address, own namespace kept", "RestrictAddressFamilies=AF_INET AF_INET6\nIPAddressAllow=127.0.0.2\n", false},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			writeConfig(t, baseConfig)
			// Runs after runtimeDropIn's cleanup has taken the drop-in away.
			t.Cleanup(func() {
				systemctl(t, "reset-failed", unit)
				systemctl(t, "restart", unit)
			})
			runtimeDropIn(t, unit, "zz-scenario.conf", "[Service]\n"+c.dropIn+probe)
			before := hits.Load()
			systemctl(t, "reset-failed", unit)
			_, err := tryCommand("systemctl", "restart", unit)
			connected := hits.Load() > before
			t.Logf("%s: systemctl restart: %v; the server saw a request: %v", c.what, err, connected)
			if connected != c.connects || (err == nil) != c.connects {
				t.Errorf("connected %v (start error %v), want connected %v", connected, err, c.connects)
			}
			if c.connects {
				// The daemon still does its job: socket activation is
				// unaffected by its own network settings.
				if code, body := get(t, baseURL(t)+"/healthz"); code != http.StatusOK {
					t.Errorf("GET /healthz = %d %q with the loosened sandbox", code, body)
				}
			}
		})
	}
}

// TestHasNoPrivileges: no capabilities, no way to gain any, and a system
// call filter in place.
func TestHasNoPrivileges(t *testing.T) {
	pid := freshStart(t, baseConfig)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"CapEff":     "0000000000000000", // CapabilityBoundingSet= (empty)
		"CapPrm":     "0000000000000000",
		"CapBnd":     "0000000000000000",
		"NoNewPrivs": "1", // NoNewPrivileges=, implied by DynamicUser=
		"Seccomp":    "2", // SystemCallFilter=: a filter is installed
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if w, ok := want[k]; ok {
			if v = strings.TrimSpace(v); v != w {
				t.Errorf("/proc/%d/status %s: %s, want %s", pid, k, v, w)
			}
			delete(want, k)
		}
	}
	for k := range want {
		t.Errorf("/proc/%d/status has no %s line", pid, k)
	}
}

// TestSecurityExposureMatchesOfflineCheck: systemd's own rating of the
// running unit is the same as check-units.sh's offline rating of the file,
// and within the limit both use.
func TestSecurityExposureMatchesOfflineCheck(t *testing.T) {
	freshStart(t, baseConfig)
	checkExposure(t, unit)
	standalone := name + "-standalone.service"
	if score, report := exposure(t, "--offline=true", standalone); score > exposureLimit(t, standalone) {
		t.Errorf("%s exposure %.1f is above its limit:\n%s", standalone, score, report)
	}
}

// TestMetricsSocketServesMetrics: the second socket unit's socket carries
// the Prometheus metrics, and the process collector works inside the
// sandbox. It comes last of daemon.service's scenarios before the standalone
// ones (sandbox_test.go sorts just before standalone_test.go): if the daemon
// does not accept on that socket, the test's connection stays in the
// socket's backlog, and systemd would start the daemon again after every
// later test's stop (until the standalone scenarios stop the sockets).
func TestMetricsSocketServesMetrics(t *testing.T) {
	freshStart(t, baseConfig)
	url := "http://" + listenAddr(t, name+"-metrics.socket") + "/metrics"
	code, body := get(t, url)
	if code != http.StatusOK || !strings.Contains(body, "# TYPE ") {
		t.Fatalf("GET %s = %d, want 200 with Prometheus text:\n%.500s", url, code, body)
	}
	// The process collector works inside the sandbox: the start time (how
	// monitoring sees restarts) needs /proc/stat, which ProcSubset=pid
	// would hide.
	if !strings.Contains(body, "\nprocess_start_time_seconds ") {
		t.Errorf("GET %s has no process_start_time_seconds", url)
	}
}
