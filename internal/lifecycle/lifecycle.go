// Package lifecycle sequences a daemon's life under systemd, and owns what
// every daemon needs whatever its app does: the systemd protocol, GET
// /healthz, GET /readyz, GET /metrics, request metrics, panic recovery, the
// reload of the configuration and the drain. Run reads top to bottom in the
// order things happen: take the listening sockets, start the app, serve,
// tell systemd READY=1, then answer SIGHUP with a reload and SIGTERM with a
// drain, feeding the watchdog while the app is healthy. The signals come in
// caught already: main catches them first of all (CatchSignals).
//
// The app, the part that is a particular service, implements App.
package lifecycle

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"runtime/debug"
	runtimemetrics "runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"example.com/daemon/internal/auth"
	"example.com/daemon/internal/config"
	"example.com/daemon/internal/metrics"
	"example.com/daemon/internal/systemd"
	"example.com/daemon/internal/tlscreds"
)

// App is the service that Run runs: only what a particular service has of
// its own. Its settings are not here: their type is the app's, which Run
// does not need to know. The app is made with them, and a reload hands it
// the next ones through Options.LoadConfig.
type App interface {
	// Start does what the app needs before it can serve: open its state,
	// warm up. Connections wait in the socket's backlog meanwhile. ctx is
	// cancelled when a stop is requested during the start, and Start should
	// then return soon. A start that may outlast TimeoutStartSec= calls
	// progress as it goes.
	Start(ctx context.Context, progress Progress) error
	// Routes registers the app's endpoints with handle, which wraps each in
	// request metrics and panic recovery and serves it on the main
	// listener beside the daemon's own (routes.go).
	Routes(handle func(pattern string, h http.Handler))
	// Check is the health check: GET /healthz answers with it, and the
	// watchdog is fed only while it passes. It fails when the app cannot do
	// its work (a wedged loop, a stuck disk).
	Check(ctx context.Context) error
	// Close releases what Start opened. Run calls it once Start has
	// returned, whatever Start returned, and after the last request.
	Close() error
}

// MemoryReleaser is an App that keeps memory it could do without (a cache,
// buffers kept for reuse). When the kernel reports memory pressure, Run
// calls ReleaseMemory and then returns the freed memory to the kernel
// (docs/resources.md).
type MemoryReleaser interface {
	ReleaseMemory()
}

// Progress reports how a long start goes: status becomes STATUS=, and
// systemd is asked to wait up to more from now before TimeoutStartSec=
// ends the start (EXTEND_TIMEOUT_USEC=). A warm-up that makes progress
// calls it as it goes, and so is not killed for being slow; one that hangs
// stops calling it, and still is.
type Progress func(status string, more time.Duration)

// Options are what Run needs, all of it passed in.
type Options struct {
	// Signals ask for a stop or a reload; main caught them before anything
	// else (CatchSignals).
	Signals Signals
	Logger  *slog.Logger
	// LogLevel is the logger's level; a reload sets it.
	LogLevel *slog.LevelVar
	// Systemd is what systemd passed in: the notify socket, the listening
	// sockets and the watchdog interval (systemd.Take).
	Systemd systemd.Passed
	// MetricsListen is where to serve metrics when systemd passed no socket
	// named "metrics"; empty means on the main listener.
	MetricsListen string
	// StoreListener hands a listener the daemon opened itself to systemd's
	// file descriptor store (FileDescriptorStoreMax= in the unit).
	StoreListener bool
	Metrics       *metrics.Metrics
	// Config is the configuration read at start.
	Config config.Config
	// LoadConfig reads the configuration file again, at a reload, and
	// checks all of it, the daemon's settings and the app's. It returns the
	// daemon's, and applyApp, which hands the app its own: those are of the
	// app's type, which Run has no need to know. Run calls applyApp only
	// once the whole reload was found valid (reload).
	LoadConfig func() (next config.Config, applyApp func(), err error)
	// Token is the API token (the credential api-token): Run reads it
	// before the app starts and again at every reload; the app's write
	// routes and the test instruments require it.
	Token *auth.Token
	// TLS is the certificate and key the main listener serves HTTPS with,
	// from the credentials tls.crt and tls.key; without them it serves
	// plain HTTP. Run reads them before the app starts and again at every
	// reload (tls.go).
	TLS *tlscreds.Server
	App App
}

// The FileDescriptorName= of the sockets the daemon serves: the app, and
// its metrics.
const (
	mainSocket    = "http"
	metricsSocket = "metrics"
)

// daemon is a running daemon's state: what Run was given, and what
// changes while it runs.
type daemon struct {
	Options
	cfg     config.Config // the configuration in force; reloads replace it
	serving string        // what is served where, for STATUS=
	https   bool          // the main listener serves HTTPS (tls.go)
	ready   atomic.Bool   // what GET /readyz answers

	instrumentsOn atomic.Bool  // [instruments] enabled, as last loaded
	notifyFailing atomic.Bool  // the last sd_notify failed (notify)
	health        atomic.Int32 // the health switch (instruments.go)

	// mu orders the messages other goroutines send against the main
	// sequence: no progress report once the start is over, no watchdog
	// ping once the stop has begun.
	mu       sync.Mutex
	starting bool
	stopping bool
	// expiry warns when the certificate nears its end (tls.go).
	expiry *time.Timer
}

// Run runs the daemon until a stop signal (or ctx) stops it. A clean stop,
// including one requested before the start finished, returns nil. Each step
// is a method below, named for what it does; docs/lifecycle.md follows the
// same numbers.
func Run(ctx context.Context, o Options) error {
	d := newDaemon(o)

	// 1. Signals, first of all: main caught them before it read the
	// configuration (CatchSignals), so that neither a SIGTERM nor a SIGHUP
	// sent meanwhile ended the process by its default action. A stop or a
	// reload asked for since waits in d.Signals for the steps below.

	// 2. The listening sockets: systemd's, if it passed any, else our own.
	// With socket activation systemd opened the port before starting us
	// and keeps it open across restarts; binding a port ourselves then
	// would fail, or worse, listen where no client is sent.
	lns, err := d.listen()
	if err != nil {
		return err
	}
	defer lns.close()

	// 3. Start the app. Connections that arrive meanwhile wait in the
	// socket's backlog; systemd reports the unit as "activating" and holds
	// `systemctl start` until READY=1. The API token is read first. A stop
	// requested now cancels the start; a reload waits until the daemon is
	// ready. The credentials are read first: the API token, and the
	// certificate that makes the main listener serve HTTPS.
	d.notify(systemd.Status("Starting"))
	if err := d.loadToken(); err != nil {
		return err
	}
	if err := d.loadTLS(lns.main); err != nil {
		return err
	}
	reloadWaiting, stopped, err := d.start(ctx)
	defer d.App.Close()
	if err != nil || stopped {
		return err
	}

	// 4. Serve. The socket already listens, so from here on every
	// connection is accepted and served, including one made the instant
	// READY=1 arrives. Metrics have a listener of their own, or a route on
	// the main one.
	srv := d.serve(lns)
	defer srv.closeMetrics() // after the drain, so that metrics show it

	// 5. READY=1: systemd marks the unit active, `systemctl start` returns
	// and units ordered After= this one start. /readyz says so first.
	d.setReady(true)
	d.notify(systemd.Ready(d.status()))
	d.Logger.Info("ready", "addr", lns.main.Addr().String(), "origin", lns.origin)

	// 6. The watchdog, fed only while the app's health check passes, so
	// that systemd restarts a daemon that hangs rather than one that dies.
	// And memory pressure, where systemd ≥ 254 says where to watch for it:
	// the daemon gives back what it can before the kernel has to take it.
	stopWatchdog := d.startWatchdog()
	defer stopWatchdog()
	stopPressureWatch := d.startPressureWatch()
	defer stopPressureWatch()

	// 7. Answer reloads until a signal or the context asks for a stop, or
	// a server fails. A reload asked for before READY=1 is answered first.
	failed := d.wait(ctx, reloadWaiting, srv)

	// 8. Stop: say so first, then stop taking requests and drain the ones
	// in flight, within drain_timeout. A server that failed ends the daemon
	// through the same stop, and Run returns its error.
	return d.stop(srv, failed)
}

// newDaemon is the state of a daemon about to run with o.
func newDaemon(o Options) *daemon {
	d := &daemon{Options: o, cfg: o.Config}
	if d.LogLevel == nil {
		d.LogLevel = new(slog.LevelVar)
	}
	if d.Token == nil {
		d.Token = auth.NewToken(d.Systemd.Credentials)
	}
	if d.TLS == nil {
		d.TLS = tlscreds.New(d.Systemd.Credentials, time.Now)
	}
	d.instrumentsOn.Store(d.cfg.Instruments.Enabled)
	if why := d.Systemd.Notifier.Unsupported(); why != "" {
		d.Logger.Warn(why)
	}
	return d
}

// listeners are the sockets the daemon serves on.
type listeners struct {
	main    net.Listener
	origin  string       // where main came from: passedIn or ownSocket
	metrics net.Listener // metrics' own; nil to serve them on main
}

func (l listeners) close() {
	l.main.Close()
	if l.metrics != nil {
		l.metrics.Close()
	}
}

// listen takes the sockets to serve on (step 2), says what they are in
// d.serving, and closes those passed in that the daemon does not serve.
func (d *daemon) listen() (listeners, error) {
	ln, origin, err := d.listenMain()
	if err != nil {
		return listeners{}, err
	}
	metricsLn, err := listenMetrics(d.Systemd.Listeners, d.MetricsListen)
	if err != nil {
		ln.Close()
		return listeners{}, err
	}
	d.closeUnused()
	d.Metrics.SetSocketActivated(origin == passedIn)
	d.serving = fmt.Sprintf("Serving on %s (%s)", ln.Addr(), origin)
	if metricsLn != nil {
		d.serving += fmt.Sprintf(", metrics on %s", metricsLn.Addr())
	}
	// Without a .socket unit, systemd can still keep the port open across
	// restarts: hand our socket to its file descriptor store, and the next
	// start (after a crash, a watchdog kill or a restart) finds it in
	// LISTEN_FDS as if socket-activated. Clients then wait in the backlog
	// instead of being refused while the daemon is down.
	if d.StoreListener && origin == ownSocket {
		if err := storeListener(d.Systemd.Notifier, ln); err != nil {
			d.Logger.Warn("could not hand the listener to systemd's FD store", "err", err)
		}
	}
	return listeners{main: ln, origin: origin, metrics: metricsLn}, nil
}

// listenMain returns the main listener and where it came from (listen).
// With the FD store, what comes back is the socket an earlier start
// opened. If the configuration now names another address, that socket
// leaves the store and a new one is opened: a changed listen takes effect
// at the next restart, not only once the store is empty.
func (d *daemon) listenMain() (net.Listener, string, error) {
	addr := d.cfg.Listen.String()
	ln, origin, err := mainListener(d.Systemd.Listeners, d.Systemd.Unusable, addr)
	if err != nil || !d.StoreListener || origin != passedIn || listensOn(ln, addr) {
		return ln, origin, err
	}
	d.Logger.Info("the stored socket listens elsewhere; opening one on the configured address",
		"stored", ln.Addr().String(), "listen", addr)
	d.notify(systemd.FDStoreRemove(mainSocket))
	ln.Close()
	return mainListener(nil, nil, addr)
}

// mainListener returns systemd's main socket if it passed sockets in, else
// a socket of our own on addr, and says which. Sockets passed in that Take
// could not use (unusable) count as passed: under systemd a socket of our
// own would listen where no client is sent, so without a usable main
// socket the start fails, naming them.
func mainListener(passed systemd.Listeners, unusable map[string]error, addr string) (net.Listener, string, error) {
	if len(passed) > 0 || len(unusable) > 0 {
		ln, err := passed.TakeMain(mainSocket)
		if err != nil {
			return nil, "", err
		}
		if ln != nil {
			return ln, passedIn, nil
		}
		if why, ok := unusable[mainSocket]; ok {
			return nil, "", fmt.Errorf("socket activation: the socket passed in as %q cannot be served on: %w", mainSocket, why)
		}
		err = fmt.Errorf("socket activation: no socket named %q among those passed in; set FileDescriptorName=%s in the .socket unit", mainSocket, mainSocket)
		for _, name := range slices.Sorted(maps.Keys(unusable)) {
			err = fmt.Errorf("%w; %q cannot be served on: %w", err, name, unusable[name])
		}
		return nil, "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	return ln, ownSocket, nil
}

// listensOn reports whether ln listens on addr (host:port; an empty host,
// 0.0.0.0 or :: for every address).
func listensOn(ln net.Listener, addr string) bool {
	have, ok := ln.Addr().(*net.TCPAddr)
	want, err := net.ResolveTCPAddr("tcp", addr)
	if !ok || err != nil || have.Port != want.Port {
		return false
	}
	if want.IP == nil || want.IP.IsUnspecified() {
		return have.IP.IsUnspecified()
	}
	return have.IP.Equal(want.IP)
}

// Where the main listener came from, as STATUS= and the logs say.
const (
	passedIn  = "socket-activated" // by a .socket unit, or from the FD store
	ownSocket = "own socket"
)

// listenMetrics returns the socket to serve metrics on: systemd's "metrics"
// socket, else one of our own on addr if given, else nil (metrics are then
// served on the main listener).
func listenMetrics(passed systemd.Listeners, addr string) (net.Listener, error) {
	ln, err := passed.Take(metricsSocket)
	if err != nil || ln != nil || addr == "" {
		return ln, err
	}
	return net.Listen("tcp", addr)
}

// storeListener sends a duplicate of ln's descriptor to the FD store under
// the main socket's name, so that it comes back as the main listener.
func storeListener(n *systemd.Notifier, ln net.Listener) error {
	tcp, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("%T has no file descriptor to store", ln)
	}
	f, err := tcp.File()
	if err != nil {
		return err
	}
	defer f.Close() // systemd holds its own copy once the message is sent
	return n.StoreFiles(mainSocket, f)
}

// closeUnused closes the sockets passed in that the daemon does not serve,
// saying which. One that is not a listening stream socket (a
// ListenDatagram= or an Accept=yes in the .socket unit) was closed by
// Take: say what it is, or the operator's port would just be missing. (The
// main socket's case failed the start in mainListener.) From the store, a socket
// no longer used would come back at every start (a renamed one, say); take
// it out.
func (d *daemon) closeUnused() {
	unusable := d.Systemd.Unusable
	var refused []string
	for _, name := range slices.Sorted(maps.Keys(unusable)) {
		d.Logger.Warn("ignoring a socket passed in that the daemon cannot use", "name", name, "err", unusable[name])
		refused = append(refused, name)
	}
	unused := d.Systemd.Listeners.Close()
	if len(unused) > 0 {
		d.Logger.Warn("closing sockets passed in that the daemon does not use", "names", unused)
	}
	if d.StoreListener {
		for _, name := range append(refused, unused...) {
			d.notify(systemd.FDStoreRemove(name))
		}
	}
}

// loadToken reads the API token before the app starts (step 3). Without
// one the daemon still serves, and refuses the routes that need it, saying
// how to give one; a token it cannot read (the wrong owner, say) stops the
// start, with the reason in STATUS=.
func (d *daemon) loadToken() error {
	if _, err := d.Token.Load(); errors.Is(err, systemd.ErrNoCredential) {
		d.Logger.Warn("routes that need the API token are refused until the daemon has one", "err", err)
	} else if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return nil
}

// start runs App.Start while answering signals: SIGTERM or SIGINT (or ctx)
// cancels the start, sends STOPPING=1 and makes Run return nil; SIGHUP is
// kept for once the daemon is ready, since the configuration may change
// again before then. It returns whether a reload waits, whether a stop
// ended the start, or the start's error.
func (d *daemon) start(ctx context.Context) (reloadWaiting, stopped bool, err error) {
	startCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Progress counts only while the start runs: a late report would
	// overwrite the STATUS= of READY=1 or STOPPING=1.
	d.mu.Lock()
	d.starting = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.starting = false
		d.mu.Unlock()
	}()
	progress := func(status string, more time.Duration) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.starting {
			d.notify(systemd.Progress(status, more))
		}
	}
	started := make(chan error, 1)
	go func() {
		err := d.App.Start(startCtx, progress)
		if delay := d.cfg.Instruments.StartDelay.Duration; err == nil && d.cfg.Instruments.Enabled && delay > 0 {
			d.Logger.Info("warming up (instruments.start_delay)", "start_delay", delay)
			err = startDelay(startCtx, delay, progress)
		}
		started <- err
	}()
	for {
		select {
		case err := <-started:
			if err != nil {
				return false, false, fmt.Errorf("start: %w", err)
			}
			return reloadWaiting, false, nil
		case <-d.Signals.Reload:
			d.Logger.Info("reload requested while starting; it follows once ready")
			reloadWaiting = true
			continue
		case sig := <-d.Signals.Stop:
			d.Logger.Info("stop requested while starting", "signal", sig.String())
		case <-ctx.Done():
			d.Logger.Info("stop requested while starting", "cause", context.Cause(ctx).Error())
		}
		d.mu.Lock()
		d.starting = false
		d.notify(systemd.Stopping("Stopping: the start was interrupted", 0))
		d.mu.Unlock()
		cancel()
		if err := <-started; err != nil && !errors.Is(err, context.Canceled) {
			d.Logger.Warn("the interrupted start failed", "err", err)
		}
		d.Logger.Info("stopped")
		return false, true, nil
	}
}

// servers are the daemon's HTTP servers, serving (step 4).
type servers struct {
	main *http.Server
	// accepting is the main listener, which counts the connections for
	// max_connections and for the drain (limit.go).
	accepting *limitListener
	served    chan error // what main's Serve returned
	mainEnded bool       // served has been read
	// metrics is nil when metrics are served on the main listener.
	metrics       *http.Server
	metricsServed chan error
}

// serve starts serving on lns (step 4): the daemon's routes and the app's
// on the main listener, at most max_connections at once (limit.go and
// docs/lifecycle.md, step 4, say which connection makes room for a new
// one), and metrics on their own listener if they have one.
func (d *daemon) serve(lns listeners) *servers {
	s := &servers{served: make(chan error, 1), metricsServed: make(chan error, 1)}
	metricsOnMain := d.Metrics.Handler()
	if lns.metrics != nil {
		metricsOnMain = nil
		s.metrics = d.newServer(d.Metrics.Handler())
		go func() { s.metricsServed <- s.metrics.Serve(lns.metrics) }()
	}
	s.accepting = newLimitListener(lns.main, d.cfg.HTTP.MaxConnections, d.Metrics.ConnectionShed, d.Metrics.AnsweredByServer)
	s.main = d.newServer(d.handler(metricsOnMain))
	s.main.ConnState, s.main.ConnContext = connState, connContext
	var ln net.Listener = s.accepting
	if d.https {
		ln = tls.NewListener(s.accepting, d.TLS.Config())
	}
	go func() { s.served <- s.main.Serve(ln) }()
	return s
}

func (s *servers) closeMetrics() {
	if s.metrics != nil {
		s.metrics.Close()
	}
}

// newServer returns an HTTP server for h. Its timeouts keep a slow or idle
// client from holding a connection forever.
func (d *daemon) newServer(h http.Handler) *http.Server {
	limits := d.cfg.HTTP
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: limits.ReadHeaderTimeout.Duration,
		ReadTimeout:       limits.ReadTimeout.Duration,
		WriteTimeout:      limits.WriteTimeout.Duration,
		IdleTimeout:       limits.IdleTimeout.Duration,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
		ErrorLog:          log.New(serverLog{d.Logger, d.Metrics.TLSHandshakeFailed}, "", 0),
	}
}

// serverLog takes net/http's error log: each line a warning, except a
// failed TLS handshake, which every scanner, and every client that does not
// trust the certificate, makes by the hundred: those are counted
// (daemon_tls_handshake_errors_total) and logged at debug level.
type serverLog struct {
	logger          *slog.Logger
	handshakeFailed func()
}

func (l serverLog) Write(b []byte) (int, error) {
	msg := strings.TrimSuffix(string(b), "\n")
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		l.handshakeFailed()
		l.logger.Debug(msg)
	} else {
		l.logger.Warn(msg)
	}
	return len(b), nil
}

// setReady sets readiness where it is reported: GET /readyz and metrics.
func (d *daemon) setReady(ready bool) {
	d.ready.Store(ready)
	d.Metrics.SetReady(ready)
}

// startWatchdog feeds the watchdog, if the unit has one (WatchdogSec=),
// until the returned function is called. From the stop on no ping goes
// out, whether or not that function was called yet (stop).
func (d *daemon) startWatchdog() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	if d.Systemd.Watchdog > 0 {
		go d.feedWatchdog(ctx)
	}
	return cancel
}

// feedWatchdog sends WATCHDOG=1 at half the interval, as sd_watchdog_enabled(3)
// advises, each time the health check passes, until ctx ends. A check that
// fails or hangs skips the ping; after a whole interval without one systemd
// kills the daemon (SIGABRT) and, with Restart=on-failure, starts it again.
func (d *daemon) feedWatchdog(ctx context.Context) {
	interval := d.Systemd.Watchdog
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		checkCtx, cancel := context.WithTimeout(ctx, interval/4)
		err := d.check(checkCtx)
		cancel()
		// The stop does not wait for a check (one stuck on a disk may
		// never return); it takes the lock instead, after which none goes
		// out.
		d.mu.Lock()
		if d.stopping {
			d.mu.Unlock()
			return
		}
		d.Metrics.WatchdogPing(err == nil)
		if err == nil {
			d.notify(systemd.Watchdog())
		}
		d.mu.Unlock()
		if err != nil {
			d.Logger.Error("health check failed; not feeding the watchdog", "err", err)
		}
	}
}

// startPressureWatch watches for memory pressure until the returned
// function is called, which returns once the watch has ended, its log line
// written.
func (d *daemon) startPressureWatch() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.watchMemoryPressure(ctx)
	}()
	return func() { cancel(); <-done }
}

// watchMemoryPressure answers each memory pressure event until ctx ends:
// the app drops what it can (MemoryReleaser), then debug.FreeOSMemory
// collects and returns the free heap to the kernel, which would otherwise
// keep it counted against the cgroup for minutes. A watch that cannot be
// set up is logged once; the daemon runs on without it.
func (d *daemon) watchMemoryPressure(ctx context.Context) {
	err := systemd.WatchMemoryPressure(ctx, d.Systemd.MemoryPressure, func() {
		if r, ok := d.App.(MemoryReleaser); ok {
			r.ReleaseMemory()
		}
		before := heapReleased()
		debug.FreeOSMemory()
		d.Logger.Debug("memory pressure: memory given back to the kernel", "released_bytes", heapReleased()-before)
		d.Metrics.MemoryPressure()
	})
	if err != nil {
		d.Logger.Warn("not watching for memory pressure", "err", err)
	}
}

// heapReleased is the heap memory the Go runtime has returned to the
// kernel, in bytes.
func heapReleased() int64 {
	s := []runtimemetrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	runtimemetrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// wait answers reloads, the one asked for before READY=1 first, until a
// stop is asked for or a server fails (step 7), and returns the failure.
func (d *daemon) wait(ctx context.Context, reloadWaiting bool, s *servers) error {
	if reloadWaiting {
		d.reload()
	}
	for {
		select {
		case <-d.Signals.Reload:
			d.reload()
		case sig := <-d.Signals.Stop:
			d.Logger.Info("stop requested", "signal", sig.String())
			return nil
		case <-ctx.Done():
			d.Logger.Info("stop requested", "cause", context.Cause(ctx).Error())
			return nil
		case err := <-s.served:
			s.mainEnded = true
			return fmt.Errorf("serve: %w", err)
		case err := <-s.metricsServed:
			return fmt.Errorf("serve metrics: %w", err)
		}
	}
}

// reload answers SIGHUP. RELOADING=1 begins it (systemd.Reloading); READY=1
// ends it whether it worked or not, because the daemon keeps
// serving either way; STATUS= says which. The new file applies only when
// all of it is valid, the daemon's settings and the app's alike, and only
// with the TLS credentials, when the daemon serves HTTPS: a reload that
// rotates a certificate and finds it broken changes nothing (tls.go).
func (d *daemon) reload() {
	d.notify(systemd.Reloading("Reloading configuration"))
	next, applyApp, err := d.LoadConfig()
	if err == nil {
		err = d.reloadTLS()
	}
	d.Metrics.Reloaded(err == nil)
	if err != nil {
		d.Logger.Error("reload failed; still using the previous configuration", "err", err)
		d.notify(systemd.Ready(fmt.Sprintf("%s; reload failed, still using the previous configuration: %v", d.status(), err)))
		return
	}
	// What was set up at the start stays as it was until the next one.
	started := d.Config
	for _, s := range []struct {
		key     string
		changed bool
	}{
		{"listen", next.Listen != started.Listen},
		{"log_format", next.LogFormat != started.LogFormat},
		{"[http]", next.HTTP != started.HTTP},
	} {
		if s.changed {
			d.Logger.Warn(s.key + " changed; it takes effect at the next start")
		}
	}
	d.LogLevel.Set(next.LogLevel.Level)
	d.instrumentsOn.Store(next.Instruments.Enabled)
	d.reloadToken()
	applyApp()
	d.cfg = next
	d.Logger.Info("configuration reloaded")
	d.notify(systemd.Ready(d.status()))
}

// reloadToken reads the API token again: a credential rotated where the
// reload can see it takes effect at once (docs/hardening.md, "The API
// token", says where that is). A failed read keeps the token read before.
func (d *daemon) reloadToken() {
	hadToken := d.Token.Loaded()
	switch changed, err := d.Token.Load(); {
	case err != nil && hadToken:
		d.Logger.Warn("could not read the API token again; the one read before stays", "err", err)
	case errors.Is(err, systemd.ErrNoCredential):
		d.Logger.Debug("still no API token; the routes that need it stay refused", "err", err)
	case err != nil:
		d.Logger.Warn("could not read the API token; the routes that need it stay refused", "err", err)
	case changed:
		d.Logger.Info("the API token changed; requests need the new one")
	}
}

// stop ends the daemon (step 8) and returns failed, what ended the wait.
// /readyz answers 503 from now on, before STOPPING=1 goes out. The
// watchdog is no longer fed: systemd disarms it once a stop begins, and a
// WATCHDOG=1 sent after that would arm it again, so that a late ping could
// kill the drain (docs/lifecycle.md, step 6). The drain is bounded by
// drain_timeout here, and by TimeoutStopSec= and EXTEND_TIMEOUT_USEC= in
// systemd.
func (d *daemon) stop(s *servers, failed error) error {
	if failed != nil {
		d.Logger.Error("stopping: a server failed", "err", failed)
	}
	d.mu.Lock()
	d.stopping = true // from here on no ping goes out, even from a check still running
	if d.expiry != nil {
		d.expiry.Stop()
	}
	d.mu.Unlock()
	d.setReady(false)
	s.accepting.drain(d.Metrics.SetDraining)
	drain := d.cfg.DrainTimeout.Duration
	// Ask for the drain's time, and a little for exiting, in case it is
	// longer than TimeoutStopSec=. In this datagram it also puts off a
	// watchdog re-armed by a ping systemd read late (docs/lifecycle.md,
	// step 6).
	d.notify(systemd.Stopping(fmt.Sprintf("Stopping: finishing in-flight requests (at most %s)", drain), drain+5*time.Second))
	drainCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	// A second SIGTERM or SIGINT (an impatient operator, Ctrl-C twice) cuts
	// the drain short: the remaining connections are closed at once.
	// (A reload while stopping is moot: SIGHUP is no longer read.)
	go func() {
		select {
		case sig := <-d.Signals.Stop:
			d.Logger.Warn("second stop signal; closing in-flight requests now", "signal", sig.String())
			cancel()
		case <-drainCtx.Done():
		}
	}()
	// Stop accepting. A socket systemd passed in stays open in systemd's
	// hands: connections still in its backlog wait there for the next
	// start.
	s.accepting.Close()
	if !s.mainEnded {
		if err := <-s.served; !errors.Is(err, net.ErrClosed) {
			d.Logger.Warn("serving ended with an unexpected error while stopping", "err", err)
		}
	}
	// Answer the requests on the connections accepted, then close them:
	// with keep-alives off, each connection closes after its response, and
	// idle ones close at once. (http.Server.Shutdown is not used: it drops
	// a request it has not read yet; docs/lifecycle.md, step 8.) Switching
	// keep-alives off again on every poll closes the connections that went
	// idle since, and, as Shutdown does, those that have sent nothing for
	// 5 s.
	// HTTP/2 connections (over HTTPS) take no keep-alive switch: once they
	// are all that is left, Shutdown, which then drops nothing, sends them
	// GOAWAY, and returns at once, given no time to wait (docs/lifecycle.md,
	// step 8).
	goneAway := false
	closeIdle := func() {
		s.main.SetKeepAlivesEnabled(false)
		if !goneAway && s.accepting.onlyHTTP2() {
			goneAway = true
			now, cancel := context.WithCancel(context.Background())
			cancel()
			_ = s.main.Shutdown(now) // context.Canceled: it did not wait, as asked
		}
	}
	if err := s.accepting.waitClosed(drainCtx, closeIdle); err != nil {
		d.Logger.Warn("drain cut short; closing the remaining connections", "drain_timeout", drain, "cause", context.Cause(drainCtx))
	}
	s.main.Close()
	s.accepting.closeAll() // those a handler took over, which Close leaves open
	d.Metrics.SetDraining(0)
	d.Logger.Info("stopped")
	return failed
}

// notify sends to systemd and logs a failure: a lost status message is worth
// a log line, not the daemon's life.
func (d *daemon) notify(m systemd.Message) {
	if d.Systemd.Notifier.Enabled() {
		d.Logger.Debug("sd_notify", "sent", strings.Join(m, " "))
	}
	// A notify socket that stops answering would otherwise log a warning
	// at every watchdog ping: say so once when it starts failing, and once
	// when it works again.
	err := d.Systemd.Notifier.Notify(m)
	switch failing := err != nil; {
	case failing && !d.notifyFailing.Swap(true):
		d.Logger.Warn("sd_notify failed; further failures are not logged until it works again", "err", err)
	case !failing && d.notifyFailing.Swap(false):
		d.Logger.Info("sd_notify works again")
	}
}
