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
	"time"

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
	// The daemon's namespace as a string, which make rename renames.
	namespace := strings.TrimSuffix("daemon_", "_")
	name := regexp.MustCompile(`\b(?:` + namespace + `|process|go)_[a-z0-9_]*[a-z0-9]\b`)
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
// GET /metrics, once it has served a request, recovered a panic and
// loaded a TLS certificate (until then those series do not exist): a histogram
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
	m.SetTLSCertificate(time.Now(), time.Now().Add(time.Hour)) // as when serving HTTPS
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

// TestEveryAlertHasItsRunbookSection: each alerting rule has a severity,
// a summary, a description and a runbook_url, and the runbook link's
// anchor is a heading of the page it names (docs/operating.md), as GitHub
// makes anchors of headings. The page's own links to its sections resolve
// too.
func TestEveryAlertHasItsRunbookSection(t *testing.T) {
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(data), "- alert: ")[1:]
	if len(blocks) < 10 {
		t.Fatalf("found %d alerts in %s; is the pattern right?", len(blocks), rulesFile)
	}
	runbook := regexp.MustCompile(`(?m)^\s+runbook_url: "([^"#]+)#([^"]+)"$`)
	for _, b := range blocks {
		alert, _, _ := strings.Cut(b, "\n")
		for _, want := range []string{"severity: ", "summary: ", "description: "} {
			if !strings.Contains(b, want) {
				t.Errorf("alert %s has no %s", alert, strings.TrimSuffix(want, ": "))
			}
		}
		m := runbook.FindStringSubmatch(b)
		if m == nil {
			t.Errorf("alert %s has no runbook_url of the form \"docs/PAGE.md#anchor\"", alert)
			continue
		}
		if anchor := strings.ToLower(alert); m[2] != anchor {
			t.Errorf("alert %s links to #%s; its section's anchor is #%s", alert, m[2], anchor)
		}
		if !headingAnchors(t, filepath.Join(top, m[1]))[m[2]] {
			t.Errorf("alert %s links to %s#%s, which has no such heading", alert, m[1], m[2])
		}
	}
	page := filepath.Join(top, "docs", "operating.md")
	text, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(t, page)
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(string(text), -1) {
		if !anchors[m[1]] {
			t.Errorf("%s links to #%s, which is none of its headings", page, m[1])
		}
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lower case, punctuation but - and _ dropped, spaces as
// hyphens.
func headingAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, line := range strings.Split(string(data), "\n") {
		heading, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if !strings.HasPrefix(line, "#") || !ok {
			continue
		}
		anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(heading), ""), " ", "-")] = true
	}
	return anchors
}

// TestTheDocsGiveTheFailureNoticesMessageID: the MESSAGE_ID that
// docs/operating.md and the drop-ins tell the reader to look for is the
// one the notice writes.
func TestTheDocsGiveTheFailureNoticesMessageID(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(top, "deploy", "systemd", "daemon-failure@.service"))
	if err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`MESSAGE_ID=([0-9a-f]{32})`)
	m := regexp.MustCompile(`echo MESSAGE_ID=([0-9a-f]{32})`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("daemon-failure@.service writes no MESSAGE_ID")
	}
	want := string(m[1])
	files := docs(t)
	named := 0
	for name, text := range files {
		for _, got := range id.FindAllStringSubmatch(text, -1) {
			named++
			if got[1] != want {
				t.Errorf("%s gives MESSAGE_ID=%s; the notice writes %s", name, got[1], want)
			}
		}
	}
	if named < 3 {
		t.Errorf("the docs give the notice's MESSAGE_ID %d times; docs/operating.md should, at least", named)
	}
}
