//go:build systemd

// Package systemd_test holds the scenario tests that need a real systemd as
// PID 1: they drive the daemon, installed from its Debian package, with
// systemctl, dpkg and HTTP, and read what systemd and the kernel say about
// it. They run inside the container that run.sh boots from Dockerfile.test,
// never on a developer's machine:
//
//	bash test/systemd/run.sh                  # all scenarios
//	bash test/systemd/run.sh -test.run Reload # some of them
//
// The tests share the one daemon, so they run one after another, in the
// order of their files' names and then of the source, and each starts from
// a known state (freshStart, startStandalone):
//
//	activation_test.go  socket activation of daemon.service: the system as
//	                    booted (as TestMain saw it, so that test need not
//	                    run first), the first connection, a start that
//	                    waits for READY=1
//	alerts_test.go      the shipped alerting rules in a real Prometheus, with
//	                    node_exporter, while the kit's faults are made
//	credentials_test.go the API token: a credential, rotated, encrypted, missing
//	debug_test.go       DEBUG_INVOCATION after a failure
//	drain_test.go       a stop that finishes the requests in flight, and
//	                    restarts under load that lose none
//	example_*_test.go   the example app's scenarios (its greeting and notes),
//	                    which leave with it; nothing else uses them
//	failure_test.go     failed starts
//	failurenotice_test.go  the failure notice OnFailure= starts: after a
//	                    failure for good, and (by version) after a restart
//	faults_test.go      daemon-reexec, a journald restart
//	fdstore_test.go     what the daemon keeps in, and takes out of, the FD store
//	health_test.go      the health check and systemd's watchdog, running and
//	                    stopping
//	https_test.go       HTTPS from credentials: the drop-ins, rotation (by
//	                    reload or restart, by version), a broken pair kept
//	                    out, client certificates
//	journal_test.go     the daemon's journal entries
//	journalremote_test.go  the journal shipped by journal-upload to a
//	                    journal-remote collector, every field intact
//	reboot_test.go      the reboot, which only test/vm runs (it selects it
//	                    by name, -test.run '^TestReboot'); it skips elsewhere
//	reload_test.go      systemctl reload: applied in place, refused, too slow
//	resources_test.go   the Go memory limit, GOMAXPROCS and memory pressure
//	sandbox_test.go     the sandbox and, last of daemon.service's scenarios
//	                    before the standalone ones, the metrics socket
//	standalone_test.go  daemon-standalone.service and the FD store
//	upgrade_test.go     the package: upgrade, remove, purge, reinstall; last
//	                    but one, because removing the package stops
//	                    everything (so a new file's name sorts before it:
//	                    the watchdog's scenarios are in health_test.go, not
//	                    watchdog_test.go)
//	walkthrough_test.go docs/walkthrough.md's commands, from a first install
//	                    on (it purges the package and empties the journal
//	                    first), against the outputs the doc shows; last
//
// The kit's scenarios use only the kit: its routes (/healthz, /readyz,
// /metrics), its keys (baseConfig) and its test instruments (instrument),
// so that they pass for any app on the kit. What is the example's is in the
// example_ files.
//
// Waiting is always bounded polling of something observable (eventually),
// never a sleep.
package systemd_test

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	// name is the daemon's binary and unit name (the Makefile's NAME).
	name    = envOr("NAME", "daemon")
	unit    = name + ".service"
	sockets = []string{name + ".socket", name + "-metrics.socket"}
	// standaloneUnit binds its own port and keeps it in the FD store.
	standaloneUnit = name + "-standalone.service"
	// configPath is where the package installs the config and where
	// ConfigurationDirectory= points the daemon.
	configPath = "/etc/" + name + "/config.toml"
	// tokenPath is the API token the package's postinst creates and the
	// units' LoadCredential= hands the daemon.
	tokenPath = "/etc/" + name + "/api-token"
	// packagePath is the package run.sh installed, copied into the
	// container for the scenarios that reinstall it.
	packagePath = os.Getenv("PACKAGE")
)

// baseConfig is what freshStart writes unless a test needs more: the kit's
// keys alone, so that it holds for any app on the kit. The test instruments
// on (the health switch, the slow request, the allocation, the log burst:
// instrument), debug logging so the journal has something to show, and a
// drain longer than any request a scenario leaves in flight. The
// instruments' key is dotted, not an [instruments] table, so that a test
// can append top-level keys to this config.
const baseConfig = `
log_level = "debug"
drain_timeout = "10s"
instruments.enabled = true
`

// instrumentsConfig is baseConfig with the test instruments on or off, a
// reloadable key: what the reload scenarios change, to see which config is
// in force (instrumentsAnswer).
func instrumentsConfig(on bool) string {
	return strings.Replace(baseConfig, "instruments.enabled = true", fmt.Sprintf("instruments.enabled = %t", on), 1)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	if _, err := os.Stat("/run/systemd/system"); err != nil || os.Getpid() == 1 {
		fmt.Fprintln(os.Stderr, "these tests need systemd as PID 1: run them with `bash test/systemd/run.sh`")
		os.Exit(2)
	}
	// Put the installed config back at the end, for whoever looks inside a
	// container kept with KEEP=1.
	orig, err := os.ReadFile(configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if asBooted, err = bootState(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	os.WriteFile(configPath, orig, 0o644)
	os.Exit(code)
}

// asBooted holds the daemon's units as the boot left them, read by TestMain
// before any test runs, so that TestServiceIsNotStartedAtBoot can check them
// wherever it comes in the order of the tests (files sort by name, and a
// new file may sort before activation_test.go).
var asBooted map[string]map[string]string

// bootState reads the state of the daemon's service and sockets.
func bootState() (map[string]map[string]string, error) {
	st := map[string]map[string]string{}
	for _, u := range append([]string{unit}, sockets...) {
		out, err := tryCommand("systemctl", "show", "--property=ActiveState,SubState,InactiveExitTimestampMonotonic", u)
		if err != nil {
			return nil, fmt.Errorf("systemctl show %s: %w", u, err)
		}
		st[u] = map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				st[u][k] = v
			}
		}
	}
	return st, nil
}

// command runs a program and returns its standard output; the test fails
// if it does not exit 0.
func command(t testing.TB, prog string, args ...string) string {
	t.Helper()
	out, err := tryCommand(prog, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", prog, strings.Join(args, " "), err)
	}
	return out
}

// tryCommand runs a program; the error carries its standard error.
func tryCommand(prog string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func systemctl(t testing.TB, args ...string) string {
	t.Helper()
	return command(t, "systemctl", args...)
}

// prop returns one property of a unit, as `systemctl show` has it.
func prop(t testing.TB, unit, property string) string {
	t.Helper()
	return strings.TrimSpace(systemctl(t, "show", "--property="+property, "--value", unit))
}

func propInt(t testing.TB, unit, property string) int {
	t.Helper()
	v := prop(t, unit, property)
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s %s=%q: not a number", unit, property, v)
	}
	return n
}

// propDuration reads a time property given in microseconds (...USec).
func propDuration(t testing.TB, unit, property string) time.Duration {
	t.Helper()
	v := prop(t, unit, property)
	// systemd writes "10s", "1min 30s", "500ms"; Go wants "1m30s".
	d, err := time.ParseDuration(strings.ReplaceAll(strings.ReplaceAll(v, "min", "m"), " ", ""))
	if err != nil {
		t.Fatalf("%s %s=%q: %v", unit, property, v, err)
	}
	return d
}

// writeConfig replaces the daemon's config file.
func writeConfig(t testing.TB, body string) {
	t.Helper()
	tmp := configPath + ".new"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, configPath); err != nil {
		t.Fatal(err)
	}
}

// freshStart gives a test a daemon just started with config. reset-failed
// clears the unit's failed state and its start counter: the tests restart
// the daemon more often than StartLimitBurst= (5 in 10s, systemd.unit(5))
// allows, which is a limit on runaway restarts, not something to test here.
// It returns the daemon's PID.
func freshStart(t testing.TB, config string) int {
	t.Helper()
	writeConfig(t, config)
	// A unit stopped and referenced by nothing running may be unloaded
	// (systemd 262 does it after a fresh install's stop); it has no failed
	// state to clear then.
	if _, err := tryCommand("systemctl", "reset-failed", unit); err != nil && !strings.Contains(err.Error(), "not loaded") {
		t.Fatalf("systemctl reset-failed %s: %v", unit, err)
	}
	systemctl(t, "restart", unit)
	return activeMainPID(t, unit, "restart")
}

// activeMainPID checks that unit is active after `systemctl verb` and
// returns its MainPID. Should the test fail, its log shows the unit's
// status.
func activeMainPID(t testing.TB, unit, verb string) int {
	t.Helper()
	if s := prop(t, unit, "ActiveState"); s != "active" {
		t.Fatalf("after systemctl %s, %s is %s", verb, unit, s)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s status:\n%s", unit, statusOf(unit))
		}
	})
	return propInt(t, unit, "MainPID")
}

func statusOf(unit string) string {
	out, _ := tryCommand("systemctl", "status", "--no-pager", "--lines=30", unit)
	return out
}

// listenAddr returns the address a socket unit listens on, from systemd
// (Listen=[::]:8080 (Stream)), so that no test repeats the port numbers of
// the .socket files. The tests connect over IPv4 loopback.
func listenAddr(t testing.TB, socketUnit string) string {
	t.Helper()
	v := prop(t, socketUnit, "Listen")
	addr, _, _ := strings.Cut(v, " ")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s Listen=%q: %v", socketUnit, v, err)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

func baseURL(t testing.TB) string { return "http://" + listenAddr(t, name+".socket") }

// client waits long enough for a request to survive a restart or a
// watchdog kill, which it waits out in the socket's backlog.
var client = &http.Client{Timeout: 30 * time.Second}

// get returns the status and body of a GET.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// do sends a request and returns the status and body. A write carries the
// API token.
func do(t testing.TB, method, url, body string) (int, string) {
	t.Helper()
	auth := ""
	if method != http.MethodGet && method != http.MethodHead {
		auth = "Bearer " + apiToken(t)
	}
	return doAuth(t, method, url, body, auth)
}

// doAuth is do with the Authorization header given ("" for none).
func doAuth(t testing.TB, method, url, body, authorization string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// instrument sends a request to one of the kit's test instruments (path
// under /debug/, with its query) on the socket-activated port, with the API
// token they all need, and returns the status and body.
func instrument(t testing.TB, method, path string) (int, string) {
	t.Helper()
	return doAuth(t, method, baseURL(t)+path, "", "Bearer "+apiToken(t))
}

// instrumentsAnswer returns the status of the cheapest instrument, a sleep
// of nothing: 200 while the config in force turns the instruments on, 404
// while it leaves them off.
func instrumentsAnswer(t testing.TB) int {
	t.Helper()
	code, _ := instrument(t, http.MethodGet, "/debug/sleep?d=0s")
	return code
}

// instrumentsStatus is what instrumentsAnswer gives when the instruments
// are on or off.
func instrumentsStatus(on bool) int {
	if on {
		return http.StatusOK
	}
	return http.StatusNotFound
}

// apiToken returns the token in the file LoadCredential= names.
func apiToken(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// eventually polls cond every 20ms until it holds, and fails the test with
// cond's last explanation if it still does not after limit.
func eventually(t testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %s: %s", what, limit, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// journalCursor returns the journal's current end, for reading only what
// comes after it.
func journalCursor(t testing.TB) string {
	t.Helper()
	out := command(t, "journalctl", "--lines=0", "--show-cursor", "--quiet")
	_, cursor, ok := strings.Cut(out, "-- cursor: ")
	if !ok {
		// An empty journal has no cursor yet; read from the start.
		return ""
	}
	return strings.TrimSpace(cursor)
}

// journal returns the entries after cursor that have every FIELD=value
// given in matches, as journalctl -o json gives them. Field values are
// strings, except binary ones (arrays). The matching is done here, not by
// journalctl: systemd 252's journalctl --after-cursor with matches skips the
// first matching entry when the cursor's own entry does not match.
func journal(t testing.TB, cursor string, matches ...string) []map[string]any {
	t.Helper()
	args := []string{"--output=json", "--no-pager"}
	if cursor != "" {
		args = append(args, "--after-cursor="+cursor)
	}
	out := command(t, "journalctl", args...)
	var entries []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
next:
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("journalctl -o json: %v: %s", err, sc.Text())
		}
		for _, m := range matches {
			k, v, _ := strings.Cut(m, "=")
			if e[k] != v {
				continue next
			}
		}
		entries = append(entries, e)
	}
	return entries
}

// messages returns the MESSAGE field of each entry, for matching and for
// failure output.
func messages(entries []map[string]any) []string {
	var ms []string
	for _, e := range entries {
		if m, ok := e["MESSAGE"].(string); ok {
			ms = append(ms, m)
		}
	}
	return ms
}

//go:embed exposure-limits
var exposureLimits string

// exposureLimit returns the highest exposure score (0.0–10.0) a service unit
// may have, from the same file check-units.sh reads.
func exposureLimit(t testing.TB, unit string) float64 {
	t.Helper()
	key := "NAME" + strings.TrimPrefix(unit, name)
	for _, line := range strings.Split(exposureLimits, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			tenths, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("exposure-limits: %q: %v", line, err)
			}
			return float64(tenths) / 10
		}
	}
	t.Fatalf("exposure-limits has no line for %s", key)
	return 0
}

// checkExposure checks the sandbox of a running unit as systemd rates it:
// the same as check-units.sh's offline rating of the unit file (else the
// installed unit is not the file that was checked), and within the limit
// both use.
func checkExposure(t testing.TB, unit string) {
	t.Helper()
	online, report := exposure(t, unit)
	offline, _ := exposure(t, "--offline=true", unit)
	limit := exposureLimit(t, unit)
	t.Logf("%s exposure: %.1f running, %.1f from the unit file, limit %.1f", unit, online, offline, limit)
	if online != offline {
		t.Errorf("running unit rates %.1f, its file %.1f: the installed unit is not what check-units.sh checked", online, offline)
	}
	if online > limit {
		t.Errorf("%s exposure %.1f is above %.1f:\n%s", unit, online, limit, report)
	}
}

// exposure runs systemd-analyze security with args and returns the overall
// score it prints last.
func exposure(t testing.TB, args ...string) (float64, string) {
	t.Helper()
	out, err := tryCommand("systemd-analyze", append([]string{"security", "--no-pager"}, args...)...)
	if err != nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	const marker = "Overall exposure level for "
	i := strings.LastIndex(out, marker)
	if i < 0 {
		t.Fatalf("systemd-analyze security %s printed no overall level:\n%s", strings.Join(args, " "), out)
	}
	_, rest, _ := strings.Cut(out[i:], ": ")
	score, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
	if err != nil {
		t.Fatalf("systemd-analyze security: %q: %v", out[i:], err)
	}
	return score, out
}

// fileUID returns the owner of a file.
func fileUID(fi os.FileInfo) int {
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// systemdVersion returns the running systemd's version, 252 or 257 in the
// harness: the first number `systemctl --version` prints.
func systemdVersion(t testing.TB) int {
	t.Helper()
	out := command(t, "systemctl", "--version")
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("systemctl --version: %q", out)
	}
	v, err := strconv.Atoi(strings.TrimFunc(f[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err != nil {
		t.Fatalf("systemctl --version: %q: %v", out, err)
	}
	return v
}

// environ returns a process's environment.
func environ(t testing.TB, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// listeningInode returns the inode of the TCP socket that listens on port
// (IPv4 or IPv6, any address), from /proc/net/tcp{,6}, or 0 if none does.
// The inode names the socket itself: two processes holding the same inode
// hold the same socket, and a socket bound again has a new one.
func listeningInode(t testing.TB, port string) uint64 {
	t.Helper()
	want, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatalf("port %q: %v", port, err)
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || p != want {
				continue
			}
			inode, err := strconv.ParseUint(f[9], 10, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", table, line, err)
			}
			return inode
		}
	}
	return 0
}

// holdsSocket reports whether process pid has the socket with inode open.
func holdsSocket(pid int, inode uint64) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	want := fmt.Sprintf("socket:[%d]", inode)
	for _, fd := range fds {
		if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == want {
			return true
		}
	}
	return false
}

// load sends GET /healthz without a pause from several goroutines, each
// request on a new connection (no keep-alive), so that any moment in which
// nobody listens on the port shows up as a refused connection. A request
// counts as served when it gets 200 "ok": the daemon took it and its health
// check passed. Refused connections (ECONNREFUSED) are counted apart from
// other failures (a reset, a wrong answer), because they mean different
// things: the first that the port was closed, the second that a request the
// daemon had taken was lost.
type load struct {
	ok, refused, failed atomic.Int64
	errs                sync.Map // error text -> true
	stop                chan struct{}
	wg                  sync.WaitGroup
	once                sync.Once
}

// loadClient opens a new connection for every request.
var loadClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func startLoad(t testing.TB, url string, workers int) *load {
	return startLoadWith(t, loadClient, url, workers)
}

// startLoadWith is startLoad with a client of the test's own (one that
// trusts a test CA, say), which must open a new connection for every
// request.
func startLoadWith(t testing.TB, loadClient *http.Client, url string, workers int) *load {
	l := &load{stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := loadClient.Get(url + "/healthz")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || string(b) != "ok\n" {
						err = fmt.Errorf("%d %q", resp.StatusCode, b)
					}
				}
				switch {
				case err == nil:
					l.ok.Add(1)
				case errors.Is(err, syscall.ECONNREFUSED):
					l.refused.Add(1)
				default:
					l.failed.Add(1)
					l.errs.Store(err.Error(), true)
				}
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

// halt stops the load and waits for the requests in flight.
func (l *load) halt() {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
	})
}

// served waits until n more requests have succeeded than when it was called.
func (l *load) served(t testing.TB, n int64, after string) {
	t.Helper()
	before := l.ok.Load()
	eventually(t, 15*time.Second, "requests served after "+after, func() (bool, string) {
		return l.ok.Load() >= before+n, fmt.Sprintf("%d served, %d refused, %d failed",
			l.ok.Load()-before, l.refused.Load(), l.failed.Load())
	})
}

// errorList lists the distinct errors of failed (not refused) requests.
func (l *load) errorList() string {
	var list []string
	l.errs.Range(func(k, _ any) bool { list = append(list, k.(string)); return true })
	return strings.Join(list, "\n")
}

// waitRestarted waits until unit runs again after its main process died:
// NRestarts one more than before, a new MainPID, and active.
func waitRestarted(t testing.TB, unit string, restarts, oldPID int, limit time.Duration) int {
	t.Helper()
	var pid int
	eventually(t, limit, unit+" restarted", func() (bool, string) {
		n := propInt(t, unit, "NRestarts")
		pid = propInt(t, unit, "MainPID")
		st := prop(t, unit, "ActiveState") + "/" + prop(t, unit, "SubState")
		return n == restarts+1 && pid != 0 && pid != oldPID && st == "active/running",
			fmt.Sprintf("NRestarts=%d (was %d) MainPID=%d (was %d) %s", n, restarts, pid, oldPID, st)
	})
	return pid
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsSubstring(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func portOf(addr string) string {
	i := strings.LastIndex(addr, ":")
	return addr[i+1:]
}

// procUID returns the real UID a process runs as.
func procUID(t testing.TB, pid int) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			uid, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				t.Fatal(err)
			}
			return uid
		}
	}
	t.Fatalf("/proc/%d/status has no Uid line", pid)
	return 0
}

// props returns several properties of a unit from one `systemctl show`, so
// that they describe the same moment.
func props(t testing.TB, unit string, names ...string) map[string]string {
	t.Helper()
	out := systemctl(t, "show", "--property="+strings.Join(names, ","), unit)
	p := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			p[k] = v
		}
	}
	return p
}
