package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// exercised returns metrics with every series of ours present.
func exercised(t *testing.T) (*prometheus.Registry, *Metrics) {
	reg := prometheus.NewRegistry()
	m := New(reg, Build{Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26"})
	h := m.Instrument("GET /items/{id}", m.Handler())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/items/x", nil))
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
			t.Fatal("promtool missing: make test installs Debian's prometheus package (tools/deps.sh)")
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
		`daemon_http_requests_total{code="200",method="get",route="/items/{id}"} 1`,
		"go_goroutines ", "process_cpu_seconds_total ", "go_build_info{",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// TestInstrumentRecordsWhatPromhttpWould serves the same requests through
// Instrument and through promhttp's three wrappers, each on a registry of
// its own, and compares the series: same label values (methods promhttp does
// not know become "unknown", a handler that writes nothing counts as 200),
// same counts, also when a route's method and code change from request to
// request.
func TestInstrumentRecordsWhatPromhttpWould(t *testing.T) {
	handler := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("answer") {
		case "nothing":
		case "flush":
			io.WriteString(w, "part")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush through the wrapper: %v", err)
			}
		case "404":
			http.NotFound(w, r)
		case "204":
			w.WriteHeader(http.StatusNoContent)
		case "418":
			w.WriteHeader(http.StatusTeapot)
		case "103":
			w.WriteHeader(http.StatusEarlyHints) // interim: the 202 is the answer
			w.WriteHeader(http.StatusAccepted)
		default:
			io.WriteString(w, "hello")
		}
	}
	requests := []struct{ method, query string }{
		{"GET", ""}, {"GET", ""}, {"HEAD", ""}, {"GET", "answer=404"}, {"GET", ""},
		{"PUT", "answer=204"}, {"PUT", "answer=204"}, {"GET", "answer=nothing"},
		{"BREW", ""}, {"PROPFIND", "answer=418"}, {"POST", "answer=flush"},
		{"get", ""}, {"DELETE", "answer=418"}, {"GET", ""}, {"GET", "answer=103"},
		{"OPTIONS", ""}, {"PATCH", ""}, {"TRACE", ""}, {"NOTIFY", ""}, {"CONNECT", ""},
	}
	serve := func(h http.Handler) {
		for _, req := range requests {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, "/items/x?"+req.query, nil))
		}
	}
	ours := New(prometheus.NewRegistry(), Build{})
	serve(ours.Instrument("GET /items/{id}", http.HandlerFunc(handler)))

	theirs := New(prometheus.NewRegistry(), Build{})
	route := prometheus.Labels{"route": "/items/{id}"}
	serve(promhttp.InstrumentHandlerInFlight(theirs.inFlight,
		promhttp.InstrumentHandlerDuration(theirs.duration.MustCurryWith(route),
			promhttp.InstrumentHandlerCounter(theirs.requests.MustCurryWith(route), http.HandlerFunc(handler)))))

	got, want := requestSeries(t, ours), requestSeries(t, theirs)
	if got != want {
		t.Errorf("Instrument recorded\n%s\npromhttp records\n%s", got, want)
	}
	if !strings.Contains(got, `method="unknown"`) || !strings.Contains(got, `code="418"`) || !strings.Contains(got, `code="202"`) {
		t.Errorf("the requests did not reach every label value:\n%s", got)
	}
}

// TestInstrumentKeepsTheWritersInterfaces: behind Instrument a handler
// still finds what net/http's own writer offers: io.ReaderFrom (io.Copy
// from a file uses sendfile), http.Flusher, and http.Hijacker, here taking
// a real connection over.
func TestInstrumentKeepsTheWritersInterfaces(t *testing.T) {
	m := New(prometheus.NewRegistry(), Build{})
	srv := httptest.NewServer(m.Instrument("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("no io.ReaderFrom behind Instrument")
		}
		if _, ok := w.(http.Flusher); !ok {
			t.Error("no http.Flusher behind Instrument")
		}
		h, ok := w.(http.Hijacker)
		if !ok {
			t.Error("no http.Hijacker behind Instrument")
			return
		}
		conn, buf, err := h.Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nhijacked\n")
		buf.Flush()
	})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "hijacked\n" {
		t.Errorf("answer %q, want the hijacking handler's", b)
	}
}

// TestInstrumentCountsTheCodeSent checks the one place where Instrument and
// promhttp differ: after a superfluous second WriteHeader, net/http has
// sent the first code, and that is the one counted (promhttp counts the
// last).
func TestInstrumentCountsTheCodeSent(t *testing.T) {
	m := New(prometheus.NewRegistry(), Build{})
	h := m.Instrument("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("write") {
			io.WriteString(w, "ok") // sends 200
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	for url, want := range map[string]int{"/": 503, "/?write": 200} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
		code := strconv.Itoa(want)
		if got := testutil.ToFloat64(m.requests.WithLabelValues("/", "get", code)); rec.Code != want || got != 1 {
			t.Errorf("GET %s: sent %d; counted %v under code %s, want 1:\n%s", url, rec.Code, got, code, requestSeries(t, m))
		}
	}
}

// requestSeries are the request counts and duration counts in m's scrape.
func requestSeries(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var lines []string
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "daemon_http_requests_total{") ||
			strings.HasPrefix(line, "daemon_http_request_duration_seconds_count{") ||
			strings.HasPrefix(line, "daemon_http_requests_in_flight ") {
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("no request series in the scrape:\n%s", rec.Body.String())
	}
	return strings.Join(lines, "")
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

// TestBothExpositionFormatsAreValid scrapes the handler as Prometheus does,
// in the text format 0.0.4 and, when asked for it, in OpenMetrics 1.0, and
// reads each scrape by the rules of its format. OpenMetrics names a
// counter's family without _total, so a counter foo_total and a gauge foo
// are two families named foo, which a strict parser rejects, and with it the
// whole scrape; the Go collector's go_memstats_alloc_bytes(_total) were
// such a pair.
func TestBothExpositionFormatsAreValid(t *testing.T) {
	_, m := exercised(t)
	for _, f := range []struct {
		name, accept, contentType string
		openMetrics               bool
	}{
		{"text 0.0.4", "text/plain", "text/plain; version=0.0.4", false},
		{"OpenMetrics 1.0", "application/openmetrics-text; version=1.0.0", "application/openmetrics-text; version=1.0.0", true},
	} {
		t.Run(f.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Accept", f.accept)
			m.Handler().ServeHTTP(rec, req)
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, f.contentType) {
				t.Fatalf("Content-Type %q, want %s", ct, f.contentType)
			}
			for _, problem := range expositionProblems(rec.Body.String(), f.openMetrics) {
				t.Error(problem)
			}
			// promtool reads either format with the text format's parser,
			// which also refuses a family announced twice. Its lint remarks
			// on OpenMetrics ("no help text" for a counter, whose HELP names
			// the family without _total) are that reading, not faults; the
			// text format must pass whole (TestPromtoolAcceptsTheScrape).
			if promtool, err := exec.LookPath("promtool"); err == nil {
				cmd := exec.Command(promtool, "check", "metrics")
				cmd.Stdin = strings.NewReader(rec.Body.String())
				if out, _ := cmd.CombinedOutput(); bytes.Contains(out, []byte("error while linting")) {
					t.Errorf("promtool check metrics cannot parse the scrape:\n%s", out)
				}
			} else {
				t.Log("promtool not installed (Debian package prometheus): the scrape was read by expositionProblems only")
			}
		})
	}
}

// expositionProblems reads an exposition line by line and lists what breaks
// the format's rules: a family announced (HELP, TYPE, UNIT) twice or after
// its samples, a sample outside its family or with a name its type does not
// have, and for OpenMetrics a family whose name is another's plus a suffix
// the other's samples may carry, and a missing or early # EOF.
func expositionProblems(body string, openMetrics bool) []string {
	// The sample names each type allows: the family name plus one of these.
	suffixes := map[string][]string{
		"counter": {""}, "gauge": {""}, "untyped": {""},
		"histogram": {"_bucket", "_count", "_sum"},
		"summary":   {"", "_count", "_sum"},
	}
	if openMetrics {
		suffixes = map[string][]string{
			"counter": {"_total", "_created"}, "gauge": {""}, "unknown": {""}, "stateset": {""},
			"info":           {"_info"},
			"histogram":      {"_bucket", "_count", "_sum", "_created", "_gcount", "_gsum"},
			"gaugehistogram": {"_bucket", "_gcount", "_gsum"},
			"summary":        {"", "_count", "_sum", "_created"},
		}
	}
	var problems []string
	types := map[string]string{}   // family name → type
	announced := map[string]bool{} // "HELP name", "TYPE name", "UNIT name"
	sampled := map[string]bool{}   // families whose samples have begun
	family, eof := "", false
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		if eof {
			problems = append(problems, fmt.Sprintf("line %d: %q after # EOF", n, line))
			break
		}
		if line == "# EOF" && openMetrics {
			eof = true
			continue
		}
		if kind, rest, ok := strings.Cut(strings.TrimPrefix(line, "# "), " "); strings.HasPrefix(line, "# ") && ok && (kind == "HELP" || kind == "TYPE" || kind == "UNIT") {
			name, value, _ := strings.Cut(rest, " ")
			if announced[kind+" "+name] {
				problems = append(problems, fmt.Sprintf("line %d: a second %s for %s: the family is announced twice", n, kind, name))
			}
			if sampled[name] {
				problems = append(problems, fmt.Sprintf("line %d: %s for %s after its samples", n, kind, name))
			}
			announced[kind+" "+name] = true
			if kind == "TYPE" {
				if _, known := suffixes[value]; !known {
					problems = append(problems, fmt.Sprintf("line %d: %s has type %q, not one of this format", n, name, value))
				}
				types[name] = value
			}
			family = name
			continue
		}
		if strings.HasPrefix(line, "#") {
			if openMetrics {
				problems = append(problems, fmt.Sprintf("line %d: %q: OpenMetrics has no free comments", n, line))
			}
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		sampled[family] = true
		if !slices.ContainsFunc(suffixes[types[family]], func(s string) bool { return name == family+s }) {
			problems = append(problems, fmt.Sprintf("line %d: sample %s in family %s (%s)", n, name, family, types[family]))
		}
	}
	if openMetrics && !eof {
		problems = append(problems, "no # EOF at the end")
	}
	if openMetrics {
		for name := range types {
			for _, s := range []string{"_total", "_created", "_count", "_sum", "_bucket", "_gcount", "_gsum", "_info"} {
				if other, ok := types[name+s]; ok {
					problems = append(problems, fmt.Sprintf("families %s (%s) and %s%s (%s): a sample of one could be the other's", name, types[name], name, s, other))
				}
			}
		}
	}
	return problems
}

// TestExpositionProblemsFindsTheCollision keeps the reader above honest: it
// must refuse the OpenMetrics that client_golang's Go collector used to
// serve, and accept the same metrics once the gauge is gone.
func TestExpositionProblemsFindsTheCollision(t *testing.T) {
	const gauge = `# HELP go_memstats_alloc_bytes Number of bytes allocated in heap and currently in use.
# TYPE go_memstats_alloc_bytes gauge
go_memstats_alloc_bytes 403136.0
`
	const counter = `# HELP go_memstats_alloc_bytes Total number of bytes allocated in heap until now.
# TYPE go_memstats_alloc_bytes counter
go_memstats_alloc_bytes_total 403136.0
`
	if p := expositionProblems(gauge+counter+"# EOF\n", true); len(p) == 0 {
		t.Error("a gauge and a counter both named go_memstats_alloc_bytes in OpenMetrics: no problem found")
	}
	if p := expositionProblems(counter+"# EOF\n", true); len(p) != 0 {
		t.Errorf("the counter alone: %v", p)
	}
	if p := expositionProblems(counter, true); len(p) == 0 {
		t.Error("OpenMetrics without # EOF: no problem found")
	}
}

// TestRequestsNoRouteTakesAreCountedAsUnmatched: behind InstrumentMux, a
// request for a path nothing is registered under, one with a method its
// path does not take, and one ServeMux redirects are each counted once,
// under route="unmatched" whatever their path; a request a route takes is
// counted under that route alone.
func TestRequestsNoRouteTakesAreCountedAsUnmatched(t *testing.T) {
	m := New(prometheus.NewRegistry(), Build{})
	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", m.Instrument("GET /items/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.PathValue("id"))
	})))
	h := m.InstrumentMux(mux)
	for _, req := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/items/x", 200},
		{"GET", "/wp-login.php", 404},
		{"GET", "/.env", 404},
		{"POST", "/items/x", 405},
		{"GET", "/items/../items/x", 307}, // ServeMux redirects to the clean path
		{"BREW", "/a/" + strings.Repeat("x", 100), 404},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(req.method, req.path, nil))
		if rec.Code != req.code {
			t.Errorf("%s %s: %d, want %d", req.method, req.path, rec.Code, req.code)
		}
	}
	want := `daemon_http_request_duration_seconds_count{method="get",route="/items/{id}"} 1
daemon_http_request_duration_seconds_count{method="get",route="unmatched"} 3
daemon_http_request_duration_seconds_count{method="post",route="unmatched"} 1
daemon_http_request_duration_seconds_count{method="unknown",route="unmatched"} 1
daemon_http_requests_in_flight 0
daemon_http_requests_total{code="200",method="get",route="/items/{id}"} 1
daemon_http_requests_total{code="307",method="get",route="unmatched"} 1
daemon_http_requests_total{code="404",method="get",route="unmatched"} 2
daemon_http_requests_total{code="404",method="unknown",route="unmatched"} 1
daemon_http_requests_total{code="405",method="post",route="unmatched"} 1
`
	if got := requestSeries(t, m); got != want {
		t.Errorf("request series\n%s\nwant\n%s", got, want)
	}
}

// TestAnsweredByServerCountsUnderUnmatched: the requests net/http refuses
// before any handler are counted under route="unmatched", method
// "unknown" (it never read one), with the code it sent.
func TestAnsweredByServerCountsUnderUnmatched(t *testing.T) {
	m := New(prometheus.NewRegistry(), Build{})
	m.AnsweredByServer(400)
	m.AnsweredByServer(431)
	m.AnsweredByServer(400)
	for code, want := range map[string]float64{"400": 2, "431": 1} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(Unmatched, "unknown", code)); got != want {
			t.Errorf("code %s: %v, want %v", code, got, want)
		}
	}
}

// TestRouteLabelsAreThePathAndDistinct: a route's label is its pattern's
// path, the root reads "/", and patterns ServeMux tells apart (one path,
// a subtree) keep labels apart, none of them "unmatched".
func TestRouteLabelsAreThePathAndDistinct(t *testing.T) {
	seen := map[string]string{}
	for _, c := range []struct{ pattern, label string }{
		{"GET /{$}", "/"},
		{"/", "/*"},
		{"GET /items/{id}", "/items/{id}"},
		{"GET /files/{path...}", "/files/{path...}"},
		{"GET /static/{$}", "/static/"},
		{"/static/", "/static/*"},
		{"POST /debug/health", "/debug/health"},
		{"example.com/", "example.com/*"},
	} {
		got := routeLabel(c.pattern)
		if got != c.label {
			t.Errorf("routeLabel(%q) = %q, want %q", c.pattern, got, c.label)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%q and %q share the label %q", other, c.pattern, got)
		}
		if got == Unmatched {
			t.Errorf("%q reads as the unmatched requests", c.pattern)
		}
		seen[got] = c.pattern
	}
}

// TestSeriesExistBeforeTheirFirstEvent: a counter that appears only with
// its first event starts at 1, and rate() and increase() never see that
// event. Every series whose labels are known in advance is in the first
// scrape, at 0: those of the results of reloads and watchdog pings, and
// each route's panics and request durations.
func TestSeriesExistBeforeTheirFirstEvent(t *testing.T) {
	m := New(prometheus.NewRegistry(), Build{})
	m.Instrument("GET /items/{id}", http.NotFoundHandler())
	m.Instrument("/any", http.NotFoundHandler()) // any method: none is known
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	scrape := rec.Body.String()
	for _, want := range []string{
		`daemon_http_panics_total{route="/items/{id}"} 0`,
		`daemon_http_panics_total{route="/any"} 0`,
		`daemon_http_request_duration_seconds_count{method="get",route="/items/{id}"} 0`,
		`daemon_reloads_total{result="success"} 0`,
		`daemon_reloads_total{result="failure"} 0`,
		`daemon_watchdog_pings_total{result="sent"} 0`,
		`daemon_watchdog_pings_total{result="skipped"} 0`,
		`daemon_http_connections_shed_total 0`,
		`daemon_memory_pressure_events_total 0`,
	} {
		if !strings.Contains(scrape, want+"\n") {
			t.Errorf("the first scrape lacks %s", want)
		}
	}
	if strings.Contains(scrape, `route="/any",method=`) || strings.Contains(scrape, `method="unknown"`) {
		t.Errorf("a series for a method no request has used:\n%s", scrape)
	}
}
