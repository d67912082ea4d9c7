package docs

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"example.com/daemon/internal/metrics"
)

// rulesFile is the alerting rules shipped with the daemon.
var rulesFile = filepath.Join(top, "deploy", "prometheus", "daemon.rules.yml")

// TestAlertsNameOnlyMetricsTheDaemonHas: every metric of the daemon's own
// and of its process that an alerting rule names is one the daemon
// exports, so that renaming a metric breaks this test rather than silently
// leaving an alert that can never fire. promtool checks the rules' syntax
// (make test-alerts), but any name is valid PromQL.
func TestAlertsNameOnlyMetricsTheDaemonHas(t *testing.T) {
	have := exportedNames(t)
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	name := regexp.MustCompile(`\b(?:daemon|process|go)_[a-z0-9_]*[a-z0-9]\b`)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue // a comment may name what the rules do not use
		}
		named = append(named, name.FindAllString(line, -1)...)
	}
	slices.Sort(named)
	named = slices.Compact(named)
	if len(named) < 5 {
		t.Fatalf("the rules name only %v; is the pattern right?", named)
	}
	for _, n := range named {
		if !have[n] {
			t.Errorf("%s names %s, which the daemon does not export", rulesFile, n)
		}
	}
	t.Logf("the rules name %v", named)
}

// exportedNames returns the names of the series a fresh daemon exports on
// GET /metrics, once it has served a request and recovered a panic (until
// then the series of requests and panics do not exist): a histogram
// family's name with _bucket, _sum and _count.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.Build{Version: "v", Revision: "r", GoVersion: "go"})
	h := m.Instrument("GET /x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	m.Panicked("GET /x")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range families {
		have[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				have[f.GetName()+suffix] = true
			}
		}
	}
	for _, want := range []string{"daemon_http_requests_total", "daemon_ready", "process_start_time_seconds"} {
		if !have[want] {
			t.Fatalf("a fresh daemon exports no %s; the rules' check would prove nothing", want)
		}
	}
	return have
}
