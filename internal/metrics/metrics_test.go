package metrics

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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

// BenchmarkInstrumentOverhead measures what the HTTP metrics add to one
// request: the same handler served bare and instrumented, alternately in the
// same loop so that both see the same machine.
func BenchmarkInstrumentOverhead(b *testing.B) {
	m := New(prometheus.NewRegistry(), Build{})
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello from daemon!\n")
	})
	instrumented := m.Instrument("GET /{$}", hello)
	req := httptest.NewRequest("GET", "/", nil)
	rec := httptest.NewRecorder()
	var bare, inst time.Duration
	for b.Loop() {
		t0 := time.Now()
		hello.ServeHTTP(rec, req)
		t1 := time.Now()
		instrumented.ServeHTTP(rec, req)
		inst += time.Since(t1)
		bare += t1.Sub(t0)
		rec.Body.Reset()
	}
	b.ReportMetric(float64(inst-bare)/float64(b.N), "ns-added/op")
	b.ReportMetric(float64(inst)/float64(bare), "x-bare")
}
