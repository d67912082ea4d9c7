// Package metrics defines the daemon's Prometheus metrics: the HTTP
// requests it serves, the steps of its life under systemd, and the Go
// runtime and process underneath.
//
// Everything is registered on a registry the caller creates and passes in,
// never on client_golang's global default: a test can make as many daemons
// as it likes, each with metrics of its own.
package metrics

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// namespace prefixes every metric of the daemon's own. Rename it with the
// daemon.
const namespace = "daemon"

// Build describes the binary, for daemon_build_info.
type Build struct {
	Version, Revision, GoVersion string
}

// Metrics are the daemon's metrics.
type Metrics struct {
	registry *prometheus.Registry

	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	unmatched *route // the requests no route took
	inFlight  prometheus.Gauge
	panics    *prometheus.CounterVec
	shed      prometheus.Counter

	ready           prometheus.Gauge
	startTime       prometheus.Gauge
	reloads         *prometheus.CounterVec
	lastReload      prometheus.Gauge
	lastReloadOK    prometheus.Gauge
	watchdogPings   *prometheus.CounterVec
	socketActivated prometheus.Gauge
	draining        prometheus.Gauge
	memoryPressure  prometheus.Counter
	// Absent until SetTLSCertificate: a daemon serving plain HTTP has no
	// certificate to report, and a 0 would read as one long expired.
	tlsNotBefore, tlsNotAfter *prometheus.GaugeVec
	tlsHandshakeErrors        prometheus.Counter

	// writers are the statusWriters of requests served and done with:
	// one made per request would be an allocation, and garbage, that
	// net/http's own path does not make.
	writers sync.Pool
}

// New creates the metrics and registers them, with the Go runtime and
// process collectors, on reg.
func New(reg *prometheus.Registry, build Build) *Metrics {
	m := &Metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests served, by route pattern (never the raw path, so the series stay few), method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help: "Time to serve an HTTP request, by route pattern and method.",
			// Classic buckets for every Prometheus server; a native
			// histogram as well for those that scrape it (Prometheus ≥ 2.40
			// with native histograms on), at a resolution of about 10%.
			Buckets:                         prometheus.DefBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "panics_total",
			Help: "Panics recovered while serving HTTP requests, by route pattern.",
		}, []string{"route"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "ready",
			Help: "1 between READY=1 and STOPPING=1, as GET /readyz answers; 0 otherwise.",
		}),
		startTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "ready_timestamp_seconds",
			Help: "When the daemon last told systemd READY=1 after starting, in seconds since the Unix epoch.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reloads_total",
			Help: "Configuration reloads (SIGHUP), by result: success, or failure (the old configuration stays).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_reload_timestamp_seconds",
			Help: "When the last reload finished, in seconds since the Unix epoch; 0 before the first.",
		}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_reload_success",
			Help: "1 if the last reload applied the new configuration, 0 if it failed.",
		}),
		watchdogPings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "watchdog_pings_total",
			Help: "Watchdog pings due, by result: sent (WATCHDOG=1), or skipped because the health check failed.",
		}, []string{"result"}),
		socketActivated: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "socket_activated",
			Help: "1 if the main listener came from systemd (socket activation or the FD store), 0 if the daemon opened it.",
		}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "draining_connections",
			Help: "Connections still open while the daemon stops; 0 when not stopping.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "connections_shed_total",
			Help: "Connections closed at max_connections to make room for a new one: each a slow client's, or idle for a second.",
		}),
		memoryPressure: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "memory_pressure_events_total",
			Help: "Times the kernel reported memory pressure ($MEMORY_PRESSURE_WATCH) and the daemon gave memory back.",
		}),
		tlsNotBefore: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "tls", Name: "certificate_not_before_timestamp_seconds",
			Help: "When the TLS certificate in force became valid, in seconds since the Unix epoch; absent when serving plain HTTP.",
		}, nil),
		tlsNotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "tls", Name: "certificate_not_after_timestamp_seconds",
			Help: "When the TLS certificate in force expires, in seconds since the Unix epoch; absent when serving plain HTTP.",
		}, nil),
		tlsHandshakeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "tls", Name: "handshake_errors_total",
			Help: "TLS handshakes that failed: a client that does not trust the certificate, offers no protocol or cipher in common, or never finishes.",
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels describe the running binary.",
		ConstLabels: prometheus.Labels{"version": build.Version, "revision": build.Revision, "goversion": build.GoVersion},
	})
	buildInfo.Set(1)
	m.unmatched = m.newRoute(Unmatched)
	m.lastReloadOK.Set(1) // no reload has failed yet
	for _, result := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(result) // so that both series exist from the start
	}
	for _, result := range []string{"sent", "skipped"} {
		m.watchdogPings.WithLabelValues(result)
	}
	reg.MustRegister(
		m.requests, m.duration, m.inFlight, m.panics, m.shed,
		m.ready, m.startTime, m.reloads, m.lastReload, m.lastReloadOK,
		m.watchdogPings, m.socketActivated, m.draining, m.memoryPressure, buildInfo,
		m.tlsNotBefore, m.tlsNotAfter, m.tlsHandshakeErrors,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return m
}

// Handler serves the registry in the Prometheus exposition formats: the
// text format 0.0.4, and OpenMetrics to a scraper that asks for it
// (Accept: application/openmetrics-text).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(withoutAllocBytesGauge(m.registry), promhttp.HandlerOpts{
		Registry:          m.registry, // counts its own errors in promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	})
}

// withoutAllocBytesGauge gathers g without the gauge go_memstats_alloc_bytes.
//
// The Go collector exposes that gauge and the counter
// go_memstats_alloc_bytes_total. OpenMetrics names a counter's family
// without _total, so the scrape would announce the family
// go_memstats_alloc_bytes twice, a gauge and a counter, and a strict parser
// (promtool, Python's prometheus_client) rejects the whole scrape
// (client_golang issue 829). The gauge is go_memstats_heap_alloc_bytes
// under another name, so it is the one left out: every other Go metric
// keeps the name dashboards know. (Turning the MemStats metrics off for
// their runtime/metrics counterparts, WithGoCollectorMemStatsMetricsDisabled,
// would rename all of them and, with the histograms, quadruple the Go
// series.)
func withoutAllocBytesGauge(g prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool {
			return mf.GetName() == "go_memstats_alloc_bytes"
		}), err
	})
}

// Unmatched is the route label of the requests no route takes: paths
// nothing is registered under (404), a registered path asked with another
// method (405), the redirects ServeMux makes to a cleaned path, and what
// net/http answers before any handler (400 for a request it cannot read,
// 431 for headers over max_header_bytes). It is one value whatever the
// path, so that a scanner trying a thousand paths adds no series; it has no
// slash, so no ServeMux pattern's label can be it.
const Unmatched = "unmatched"

// Instrument counts and times the requests h serves under the route
// pattern (a http.ServeMux pattern such as "GET /items/{id}").
//
// It records the series promhttp's InstrumentHandlerInFlight, …Duration and
// …Counter would, with the same label values, in one wrapper rather than
// three: each of those builds a label map and hashes it on every request,
// which cost more than serving GET / itself (docs/performance.md).
//
// Registered in a ServeMux that InstrumentMux wraps, it leaves the counting
// to that wrapper and only names the route, so a request is counted once,
// and under "unmatched" when no route took it. The ServeMux must hand the
// route its writer as it got it: wrap the route's handler, not the mux,
// in anything that replaces the writer.
func (m *Metrics) Instrument(pattern string, h http.Handler) http.Handler {
	rt := m.route(pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sw, ok := w.(*statusWriter); ok && sw.route == nil {
			sw.route = rt // InstrumentMux counts it
			h.ServeHTTP(w, r)
			return
		}
		m.serve(rt, h, w, r)
	})
}

// InstrumentMux counts and times the requests mux serves, each under the
// route that took it (Instrument) or, when none did, under "unmatched".
// Without it, a scan for paths the daemon does not have, or a client that
// sends the wrong method, shows in no series at all.
func (m *Metrics) InstrumentMux(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(nil, mux, w, r)
	})
}

// serve serves r with h and records it under rt; when rt is nil, under
// the route an Instrument inside h named, or else as unmatched.
func (m *Metrics) serve(rt *route, h http.Handler, w http.ResponseWriter, r *http.Request) {
	m.inFlight.Inc()
	defer m.inFlight.Dec()
	start := time.Now()
	sw, _ := m.writers.Get().(*statusWriter)
	if sw == nil {
		sw = new(statusWriter)
	}
	*sw = statusWriter{ResponseWriter: w, route: rt}
	h.ServeHTTP(sw, r)
	elapsed := time.Since(start)
	rt, status := sw.route, sw.status
	// A ResponseWriter may not be used once ServeHTTP has returned
	// (http.Handler), so the next request can have this one. A handler
	// that panics out of here (http.ErrAbortHandler) leaves it to the
	// garbage collector.
	*sw = statusWriter{}
	m.writers.Put(sw)
	if rt == nil {
		rt = m.unmatched
	}
	rt.record(r.Method, status, elapsed)
}

// route is where the requests of one route are counted and timed.
type route struct {
	requests *prometheus.CounterVec // curried with the route label
	duration prometheus.ObserverVec
	// Finding a series by its label values hashes them under a lock, about
	// 100 ns a request. A route answers nearly every request with the same
	// method and code, so keep the series of the last request and look
	// them up again only when those change.
	last atomic.Pointer[series]
}

// route makes the series of a route pattern, and creates at 0 those
// known before the first request: its panics, and, when the pattern names
// a method, its request durations for that method, whose count is the
// route's request count. A series that only appears with its first event
// hides that event from rate() and increase(), which see it start at 1.
// The request counts wait for a request: their status code is not known
// before.
func (m *Metrics) route(pattern string) *route {
	label := routeLabel(pattern)
	rt := m.newRoute(label)
	m.panics.WithLabelValues(label)
	if method, _, ok := strings.Cut(pattern, " "); ok {
		rt.duration.WithLabelValues(methodLabel(method))
	}
	return rt
}

func (m *Metrics) newRoute(label string) *route {
	curried := prometheus.Labels{"route": label}
	return &route{requests: m.requests.MustCurryWith(curried), duration: m.duration.MustCurryWith(curried)}
}

// record counts and times a request answered with code.
func (rt *route) record(method string, code int, elapsed time.Duration) {
	s := rt.last.Load()
	if s == nil || s.method != method || s.code != code {
		s = &series{
			method:   method,
			code:     code,
			requests: rt.requests.WithLabelValues(methodLabel(method), codeLabel(code)),
			duration: rt.duration.WithLabelValues(methodLabel(method)),
		}
		rt.last.Store(s)
	}
	s.duration.Observe(elapsed.Seconds())
	s.requests.Inc()
}

// series are where a request with this method and status code is counted
// and timed.
type series struct {
	method   string
	code     int
	requests prometheus.Counter
	duration prometheus.Observer
}

// statusWriter remembers the status code a handler sends.
// Under InstrumentMux it also carries, back out of the ServeMux, the route
// that took the request.
type statusWriter struct {
	http.ResponseWriter
	status int
	route  *route
}

func (w *statusWriter) WriteHeader(code int) {
	// The first final code is the one sent; a 1xx before it (103 Early
	// Hints, say) is an interim response, except 101, which ends HTTP.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// WriteString spares io.WriteString a copy of its string.
func (w *statusWriter) WriteString(str string) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.WriteString(w.ResponseWriter, str)
}

// Flush keeps streaming handlers working behind the wrapper; Unwrap lets
// http.ResponseController reach the rest (deadlines, hijacking).
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom keeps io.Copy to the response on net/http's fast path: from a
// file, sendfile(2).
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, r)
}

// Hijack serves the handlers that take the connection over (WebSocket
// libraries ask for an http.Hijacker).
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// methodLabel bounds the method label as promhttp does: a client can send
// any token as a method, and each would otherwise become a series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, "get":
		return "get"
	case http.MethodHead, "head":
		return "head"
	case http.MethodPost, "post":
		return "post"
	case http.MethodPut, "put":
		return "put"
	case http.MethodPatch, "patch":
		return "patch"
	case http.MethodDelete, "delete":
		return "delete"
	case http.MethodConnect, "connect":
		return "connect"
	case http.MethodOptions, "options":
		return "options"
	case http.MethodTrace, "trace":
		return "trace"
	case "NOTIFY", "notify":
		return "notify"
	}
	return "unknown"
}

// codeLabel is the status code as a label value. A handler that writes
// nothing has answered 200, as net/http sends.
func codeLabel(code int) string {
	switch code {
	case 0, http.StatusOK:
		return "200"
	case http.StatusNoContent:
		return "204"
	case http.StatusNotFound:
		return "404"
	}
	return strconv.Itoa(code)
}

// Panicked counts a panic recovered on route.
func (m *Metrics) Panicked(route string) {
	m.panics.WithLabelValues(routeLabel(route)).Inc()
}

// routeLabel is the path of a ServeMux pattern such as "GET /items/{id}":
// the method has a label of its own. A pattern that matches one path only
// because it ends in {$} reads as that path ("GET /{$}" is "/"), and a
// pattern that matches a whole subtree because it ends in a slash gets a
// "*" ("/static/" is "/static/*"), so that the two, which ServeMux tells
// apart, have two labels too.
func routeLabel(pattern string) string {
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path
	}
	if exact, ok := strings.CutSuffix(pattern, "{$}"); ok {
		return exact
	}
	if strings.HasSuffix(pattern, "/") {
		return pattern + "*"
	}
	return pattern
}

// SetReady records readiness.
func (m *Metrics) SetReady(ready bool) {
	m.ready.Set(boolValue(ready))
	if ready {
		m.startTime.SetToCurrentTime()
	}
}

// Reloaded records a reload and whether it applied.
func (m *Metrics) Reloaded(ok bool) {
	result := "success"
	if !ok {
		result = "failure"
	}
	m.reloads.WithLabelValues(result).Inc()
	m.lastReload.SetToCurrentTime()
	m.lastReloadOK.Set(boolValue(ok))
}

// WatchdogPing records a ping sent, or skipped because the app was unhealthy.
func (m *Metrics) WatchdogPing(sent bool) {
	result := "sent"
	if !sent {
		result = "skipped"
	}
	m.watchdogPings.WithLabelValues(result).Inc()
}

// SetSocketActivated records where the main listener came from.
func (m *Metrics) SetSocketActivated(activated bool) {
	m.socketActivated.Set(boolValue(activated))
}

// AnsweredByServer records a request net/http answered itself, on the
// connection, before any handler had it: 400 for one it could not read,
// 431 for headers over max_header_bytes, 501 for a transfer coding it does
// not know, 417 for an Expect it does not meet. The request was not read,
// so its method is "unknown"; its route is "unmatched".
func (m *Metrics) AnsweredByServer(code int) {
	m.requests.WithLabelValues(Unmatched, "unknown", codeLabel(code)).Inc()
}

// ConnectionShed records a connection closed to make room for a new one.
func (m *Metrics) ConnectionShed() { m.shed.Inc() }

// MemoryPressure records a memory pressure event the daemon answered.
func (m *Metrics) MemoryPressure() { m.memoryPressure.Inc() }

// SetTLSCertificate records the validity of the certificate in force.
func (m *Metrics) SetTLSCertificate(notBefore, notAfter time.Time) {
	m.tlsNotBefore.WithLabelValues().Set(float64(notBefore.Unix()))
	m.tlsNotAfter.WithLabelValues().Set(float64(notAfter.Unix()))
}

// TLSHandshakeFailed records a failed TLS handshake.
func (m *Metrics) TLSHandshakeFailed() { m.tlsHandshakeErrors.Inc() }

// SetDraining records the connections still open during a stop.
func (m *Metrics) SetDraining(conns int) { m.draining.Set(float64(conns)) }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
