package metrics

import (
	"bytes"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// exercised returns metrics with every series of ours present.
func exercised(t *testing.T) (*prometheus.Registry, *Metrics) {
	reg := prometheus.NewRegistry()
	m := New(reg, Build{Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26"})
	h := m.Instrument("GET /notes/{name}", m.Handler())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/notes/x", nil))
	m.SetReady(true)
	m.Reloaded(false)
	m.WatchdogPing(false)
	m.SetSocketActivated(true)
	m.SetDraining(2)
	return reg, m
}

func TestMetricsFollowPrometheusConventions(t *testing.T) {
	reg, _ := exercised(t)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestPromtoolAcceptsTheScrape(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool missing: .ci/run installs Debian's prometheus package")
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	_, m := exercised(t)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(rec.Body.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{
		`daemon_build_info{goversion="go1.26",revision="abc",version="v1.2.3"} 1`,
		`daemon_http_requests_total{code="200",method="get",route="/notes/{name}"} 1`,
		"go_goroutines ", "process_cpu_seconds_total ", "go_build_info{",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
