//go:build systemd

package systemd_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The alerting rules the package ships, evaluated by a real Prometheus
// (Debian's prometheus, which base-image.sh installs) that scrapes the
// daemon's metrics socket, and a real node_exporter with the systemd
// collector docs/operating.md turns on, while the kit's faults are made.
// Each scenario starts its own Prometheus, with an empty database, so that
// no alert of an earlier one carries over.

// rulesPath is where the package installs the alerting rules.
var rulesPath = "/usr/share/" + name + "/prometheus/" + name + ".rules.yml"

const (
	// Not 9090, the daemon's metrics socket, nor 9100, node_exporter's
	// default (docs/operating.md has them side by side on one machine).
	prometheusAddr   = "127.0.0.1:9091"
	nodeExporterAddr = "127.0.0.1:9101"
)

// forMinutes matches a rule's `for:` in minutes, as the shipped rules give
// them.
var forMinutes = regexp.MustCompile(`(?m)^(\s+for: )(\d+)m$`)

// scenarioRules returns the shipped rules with each `for: Nm` made `for:
// Ns`, for the scenarios only: a minute of the rules is a second here, so
// that an alert's pending state ends within a bounded wait. The
// expressions, their range windows and everything else are the file's.
func scenarioRules(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatalf("the package's alerting rules: %v", err)
	}
	rules := string(b)
	all := strings.Count(rules, "for: ")
	if n := len(forMinutes.FindAllString(rules, -1)); n == 0 || n != all {
		t.Fatalf("%s: %d of its %d `for:` lines are in whole minutes; the rewrite expects them all so", rulesPath, n, all)
	}
	return forMinutes.ReplaceAllString(rules, "${1}${2}s")
}

// containerLegOnly skips t outside a container: on the VM leg, whose
// Prometheus runs many times slower under qemu's TCG, only the alert that
// needs its systemd and cgroup v2 runs (memory pressure, in
// TestMemoryPressureMakesTheDaemonGiveMemoryBack); the containers run
// the others.
func containerLegOnly(t *testing.T) {
	t.Helper()
	if _, err := tryCommand("systemd-detect-virt", "--container"); err != nil {
		t.Skip("the container legs run this alert scenario")
	}
}

// prometheusServer is a Prometheus started for one scenario.
type prometheusServer struct {
	url string
}

// startPrometheus starts node_exporter and Prometheus as transient units
// (systemd-run; stopped, and so removed, at the end of the test), with a
// scrape and an evaluation every second, and waits until Prometheus has
// scraped the daemon once.
func startPrometheus(t *testing.T) *prometheusServer {
	t.Helper()
	for _, bin := range []string{"/usr/bin/prometheus", "/usr/bin/prometheus-node-exporter"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s is not installed here (test/systemd/base-image.sh installs it in the containers): %v", bin, err)
		}
	}
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rules, []byte(scenarioRules(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The daemon's job is named as the rules expect; node_exporter's
	// systemd collector with the arguments docs/operating.md gives.
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: %q
    static_configs:
      - targets: [%q]
  - job_name: "node"
    static_configs:
      - targets: [%q]
`, rules, name, listenAddr(t, name+"-metrics.socket"), nodeExporterAddr)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := tryCommand("promtool", "check", "config", configFile); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	units := []string{name + "-scenario-node-exporter.service", name + "-scenario-prometheus.service"}
	transient(t, units[0], "/usr/bin/prometheus-node-exporter",
		"--web.listen-address="+nodeExporterAddr,
		"--collector.systemd", "--collector.systemd.enable-restarts-metrics",
		"--collector.systemd.unit-include="+strings.Join([]string{regexp.QuoteMeta(unit), regexp.QuoteMeta(standaloneUnit), regexp.QuoteMeta(sockets[0]), regexp.QuoteMeta(sockets[1])}, "|"))
	transient(t, units[1], "/usr/bin/prometheus",
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+prometheusAddr)
	p := &prometheusServer{url: "http://" + prometheusAddr}
	start := time.Now()
	// Bounds for a Prometheus under qemu's TCG too, which starts many
	// times slower than in a container.
	eventually(t, 2*time.Minute, "Prometheus ready", func() (bool, string) {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false, err.Error() + "; " + prop(t, units[1], "ActiveState")
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	p.waitValue(t, fmt.Sprintf(`up{job=%q}`, name), 1, time.Minute)
	p.waitValue(t, `up{job="node"}`, 1, time.Minute)
	var build struct {
		Version string `json:"version"`
	}
	p.api(t, "/api/v1/status/buildinfo", &build)
	t.Logf("Prometheus %s ready and scraping the daemon and node_exporter %s after it was started",
		build.Version, time.Since(start).Round(time.Millisecond))
	return p
}

// transient runs a program as a transient service unit, stopped at the end
// of the test. --collect unloads it once stopped, failed or not.
func transient(t *testing.T, u string, argv ...string) {
	t.Helper()
	tryCommand("systemctl", "stop", u) // a leftover of a run cut short, if any
	command(t, "systemd-run", append([]string{"--quiet", "--collect", "--unit=" + u}, argv...)...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := tryCommand("journalctl", "--no-pager", "-n", "30", "-u", u)
			t.Logf("%s's journal:\n%s", u, out)
		}
		tryCommand("systemctl", "stop", u)
	})
}

// api gets a path of Prometheus's HTTP API and decodes its data.
func (p *prometheusServer) api(t testing.TB, path string, data any) {
	t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if body.Status != "success" {
		t.Fatalf("GET %s: %s %s", path, body.Status, body.Error)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// query evaluates a PromQL expression now and returns the value of each
// series it gives, by the series' labels.
func (p *prometheusServer) query(t testing.TB, expr string) map[string]float64 {
	t.Helper()
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	p.api(t, "/api/v1/query?query="+url.QueryEscape(expr), &data)
	values := map[string]float64{}
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%s: value %q: %v", expr, s, err)
		}
		values[fmt.Sprint(r.Metric)] = v
	}
	return values
}

// value evaluates an expression of one series and returns its value, and
// false if it gives none.
func (p *prometheusServer) value(t testing.TB, expr string) (float64, bool) {
	t.Helper()
	values := p.query(t, expr)
	if len(values) > 1 {
		t.Fatalf("%s gives %d series, want one: %v", expr, len(values), values)
	}
	for _, v := range values {
		return v, true
	}
	return 0, false
}

// waitValue waits until expr gives want.
func (p *prometheusServer) waitValue(t testing.TB, expr string, want float64, limit time.Duration) {
	t.Helper()
	eventually(t, limit, expr+" = "+strconv.FormatFloat(want, 'g', -1, 64), func() (bool, string) {
		v, ok := p.value(t, expr)
		return ok && v == want, fmt.Sprintf("%v (%v)", v, ok)
	})
}

// promAlert is an alert as /api/v1/alerts gives it.
type promAlert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
	Value    string            `json:"value"`
}

// alerts returns the active alerts (pending or firing) named alertname.
func (p *prometheusServer) alerts(t testing.TB, alertname string) []promAlert {
	t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	p.api(t, "/api/v1/alerts", &data)
	var found []promAlert
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == alertname {
			found = append(found, a)
		}
	}
	return found
}

// allAlerts names the active alerts and their states, for the log.
func (p *prometheusServer) allAlerts(t testing.TB) string {
	t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	p.api(t, "/api/v1/alerts", &data)
	var list []string
	for _, a := range data.Alerts {
		list = append(list, a.Labels["alertname"]+" "+a.State)
	}
	return "[" + strings.Join(list, ", ") + "]"
}

// waitAlert waits until alertname is in state (pending or firing) and
// returns the time from since, and the alert.
func (p *prometheusServer) waitAlert(t testing.TB, alertname, state string, since time.Time, limit time.Duration) (time.Duration, promAlert) {
	t.Helper()
	var got promAlert
	eventually(t, limit, alertname+" "+state, func() (bool, string) {
		for _, a := range p.alerts(t, alertname) {
			if a.State == state {
				got = a
				return true, ""
			}
		}
		return false, "active alerts: " + p.allAlerts(t)
	})
	return time.Since(since), got
}

// waitResolved waits until alertname is no longer active and returns the
// time from since.
func (p *prometheusServer) waitResolved(t testing.TB, alertname string, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	eventually(t, limit, alertname+" resolved", func() (bool, string) {
		return len(p.alerts(t, alertname)) == 0, "active alerts: " + p.allAlerts(t)
	})
	return time.Since(since)
}

// TestAFailedReloadFiresDaemonReloadFailedUntilAGoodOne: a reload of an
// invalid config sets daemon_last_reload_success to 0, DaemonReloadFailed
// fires at the next scrape and evaluation (it has no `for:`), and the next
// reload of a valid config resolves it. The daemon keeps running
// throughout: the alert is the only sign of the refused config outside
// the unit's status line.
func TestAFailedReloadFiresDaemonReloadFailedUntilAGoodOne(t *testing.T) {
	containerLegOnly(t)
	pid := freshStart(t, baseConfig)
	p := startPrometheus(t)
	metric := name + "_last_reload_success"
	p.waitValue(t, metric, 1, 5*time.Second)

	writeConfig(t, strings.Replace(baseConfig, `log_level = "debug"`, `log_level = "loud"`, 1))
	start := time.Now()
	systemctl(t, "reload", unit)
	firing, a := p.waitAlert(t, "DaemonReloadFailed", "firing", start, 10*time.Second)
	if a.Labels["severity"] != "warning" || a.Labels["instance"] != listenAddr(t, name+"-metrics.socket") {
		t.Errorf("DaemonReloadFailed's labels are %v, want severity warning and the daemon's metrics port as instance", a.Labels)
	}

	writeConfig(t, baseConfig)
	fixed := time.Now()
	systemctl(t, "reload", unit)
	resolved := p.waitResolved(t, "DaemonReloadFailed", fixed, 10*time.Second)
	if got := propInt(t, unit, "MainPID"); got != pid {
		t.Errorf("MainPID went from %d to %d: a reload restarted the daemon", pid, got)
	}
	t.Logf("systemd %d: DaemonReloadFailed firing %s after the bad reload, resolved %s after the good one",
		systemdVersion(t), firing.Round(time.Millisecond), resolved.Round(time.Millisecond))
}

// TestAWedgedHealthCheckFiresDaemonWatchdogPingsSkipped: the health check
// hangs (the health switch), the daemon skips its next watchdog ping and
// counts it, and DaemonWatchdogPingsSkipped fires before systemd's
// watchdog kills and restarts the daemon. The new process is healthy and
// counts no skip, yet the alert stays firing: increase() over 5m counts
// across the restart (a counter reset), so it resolves 5 minutes after the
// last skip, which the scenario does not wait for. Prometheus scraped the
// daemon all along: the metrics socket holds a scrape while the daemon is
// restarted, so DaemonDown does not even go pending.
func TestAWedgedHealthCheckFiresDaemonWatchdogPingsSkipped(t *testing.T) {
	containerLegOnly(t)
	pid := freshStart(t, baseConfig)
	restarts := propInt(t, unit, "NRestarts")
	watchdog := propDuration(t, unit, "WatchdogUSec")
	p := startPrometheus(t)
	skipped := fmt.Sprintf(`%s_watchdog_pings_total{result=%q}`, name, "skipped")
	p.waitValue(t, skipped, 0, 5*time.Second)

	start := time.Now()
	if code, body := instrument(t, http.MethodPost, "/debug/health?state=hang"); code != http.StatusNoContent {
		t.Fatalf("POST /debug/health?state=hang = %d %q, want 204", code, body)
	}
	firing, a := p.waitAlert(t, "DaemonWatchdogPingsSkipped", "firing", start, watchdog+5*time.Second)
	if a.Labels["severity"] != "warning" {
		t.Errorf("DaemonWatchdogPingsSkipped's labels are %v, want severity warning", a.Labels)
	}
	// The skip comes WatchdogSec/4 (the check's deadline) after a ping was
	// due, and the kill WatchdogSec/4 after that: Prometheus has a scrape
	// and an evaluation between them, so the alert usually fires first.
	before := propInt(t, unit, "NRestarts") == restarts
	waitRestarted(t, unit, restarts, pid, 2*watchdog+10*time.Second)
	restarted := time.Since(start)

	// The new process pings again and has skipped none.
	sent := fmt.Sprintf(`%s_watchdog_pings_total{result=%q}`, name, "sent")
	eventually(t, watchdog+5*time.Second, "the new process's first ping scraped", func() (bool, string) {
		s, _ := p.value(t, sent)
		k, _ := p.value(t, skipped)
		return s >= 1 && k == 0, fmt.Sprintf("sent %v, skipped %v", s, k)
	})
	if as := p.alerts(t, "DaemonWatchdogPingsSkipped"); len(as) != 1 || as[0].State != "firing" {
		t.Errorf("DaemonWatchdogPingsSkipped is %v after the restart, want firing until the 5m window has passed", as)
	}
	if as := p.alerts(t, "DaemonDown"); len(as) != 0 {
		t.Errorf("DaemonDown is %s during a watchdog restart: Prometheus saw the daemon down", as[0].State)
	}
	down, _ := p.value(t, fmt.Sprintf(`count_over_time(up{job=%q}[5m]) - sum_over_time(up{job=%q}[5m])`, name, name))
	t.Logf("systemd %d: DaemonWatchdogPingsSkipped firing %s after the hang (WatchdogSec=%s, before the restart: %v); restarted by the watchdog at %s; still firing, with value %s, once the new process pinged; %v failed scrapes",
		systemdVersion(t), firing.Round(time.Millisecond), watchdog, before, restarted.Round(time.Millisecond), a.Value, down)
}

// TestCrashesFireDaemonRestarting: the daemon killed with SIGKILL three
// times, Restart=on-failure starting it again each time. Prometheus sees a
// new process_start_time_seconds each time, and at the third
// DaemonRestarting fires (it has no `for:`); it resolves 15 minutes after
// the third start, which the scenario does not wait for. The restarts are
// invisible to up: each takes about a tenth of a second (RestartSec=), and
// a scrape that comes meanwhile waits in the metrics socket's backlog.
func TestCrashesFireDaemonRestarting(t *testing.T) {
	containerLegOnly(t)
	pid := freshStart(t, baseConfig)
	p := startPrometheus(t)
	changes := fmt.Sprintf(`changes(process_start_time_seconds{job=%q}[15m])`, name)
	p.waitValue(t, changes, 0, 5*time.Second)

	start := time.Now()
	for i := 1; i <= 3; i++ {
		if as := p.alerts(t, "DaemonRestarting"); len(as) != 0 {
			t.Fatalf("DaemonRestarting is %s after %d restarts, want it only after 3", as[0].State, i-1)
		}
		restarts := propInt(t, unit, "NRestarts")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		pid = waitRestarted(t, unit, restarts, pid, 10*time.Second)
		// Each process scraped once at least, or two starts would count as
		// one change.
		p.waitValue(t, changes, float64(i), 5*time.Second)
	}
	firing, a := p.waitAlert(t, "DaemonRestarting", "firing", start, 5*time.Second)
	if v, _ := strconv.ParseFloat(a.Value, 64); a.Labels["severity"] != "warning" || v != 3 {
		t.Errorf("DaemonRestarting: labels %v, value %s; want severity warning and 3 starts", a.Labels, a.Value)
	}
	if as := p.alerts(t, "DaemonDown"); len(as) != 0 {
		t.Errorf("DaemonDown is %s after three crashes", as[0].State)
	}
	down, _ := p.value(t, fmt.Sprintf(`count_over_time(up{job=%q}[5m]) - sum_over_time(up{job=%q}[5m])`, name, name))
	restartsSeen, _ := p.value(t, fmt.Sprintf(`node_systemd_service_restart_total{name=%q}`, unit))
	t.Logf("systemd %d: DaemonRestarting firing %s after the first SIGKILL, with value %s; %v failed scrapes; node_exporter counts NRestarts=%v",
		systemdVersion(t), firing.Round(time.Millisecond), a.Value, down, restartsSeen)
}

// TestAConfigErrorFiresDaemonDownAndDaemonUnitFailed: a restart with an
// invalid config fails for good (exit 78, not restarted), and the scrapes
// that come after it start the daemon again through the metrics socket,
// and fail, until systemd's start limit fails the sockets too
// (TestABadConfigUnderSocketActivationFailsTheSockets). Every scrape
// fails: DaemonDown goes pending, then fires; node_exporter reports the
// failed units, and DaemonUnitFailed fires for each. Fixing the file,
// reset-failed and starting the sockets, as the runbook says, resolves
// both.
func TestAConfigErrorFiresDaemonDownAndDaemonUnitFailed(t *testing.T) {
	containerLegOnly(t)
	freshStart(t, baseConfig)
	restore := func() {
		writeConfig(t, baseConfig)
		tryCommand("systemctl", append([]string{"reset-failed", unit}, sockets...)...)
		tryCommand("systemctl", append([]string{"start"}, sockets...)...)
	}
	t.Cleanup(restore)
	p := startPrometheus(t)

	writeConfig(t, "log_level = [this is not TOML\n")
	start := time.Now()
	if _, err := tryCommand("systemctl", "restart", unit); err == nil {
		t.Fatal("systemctl restart with a broken config succeeded")
	}
	pending, _ := p.waitAlert(t, "DaemonDown", "pending", start, 15*time.Second)
	firing, a := p.waitAlert(t, "DaemonDown", "firing", start, 15*time.Second)
	if a.Labels["severity"] != "critical" {
		t.Errorf("DaemonDown's labels are %v, want severity critical", a.Labels)
	}
	unitFailed, _ := p.waitAlert(t, "DaemonUnitFailed", "firing", start, 15*time.Second)
	failed := map[string]bool{}
	for _, a := range p.alerts(t, "DaemonUnitFailed") {
		failed[a.Labels["name"]] = a.State == "firing"
	}
	if !failed[unit] {
		t.Errorf("DaemonUnitFailed fires for %v, not for %s", failed, unit)
	}
	states := prop(t, unit, "Result") + ", " + sockets[0] + " " + prop(t, sockets[0], "ActiveState") + ", " + sockets[1] + " " + prop(t, sockets[1], "ActiveState")

	restore()
	fixed := time.Now()
	resolvedDown := p.waitResolved(t, "DaemonDown", fixed, 15*time.Second)
	resolvedFailed := p.waitResolved(t, "DaemonUnitFailed", fixed, 15*time.Second)
	t.Logf("systemd %d: DaemonDown pending %s and firing %s after the failed restart (for: 2s here, 2m shipped); DaemonUnitFailed firing %s for %v (%s); after the fix DaemonDown resolved in %s, DaemonUnitFailed in %s",
		systemdVersion(t), pending.Round(time.Millisecond), firing.Round(time.Millisecond), unitFailed.Round(time.Millisecond), failed, states,
		resolvedDown.Round(time.Millisecond), resolvedFailed.Round(time.Millisecond))
}
