// Package lifecycle sequences the daemon's life under systemd. Run reads top
// to bottom in the order things happen: take the listening socket, start the
// app, catch signals, serve, tell systemd READY=1, then answer SIGHUP with a
// reload and SIGTERM with a drain, feeding the watchdog all along while the
// app is healthy.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/metrics"
	"example.com/daemon/internal/systemd"
)

// App is the service that Run runs.
type App interface {
	// Start does the work needed before the app can serve.
	Start(ctx context.Context) error
	// Handler serves the app's requests, and metrics on GET /metrics
	// unless metrics is nil.
	Handler(metrics http.Handler) http.Handler
	// SetReady sets what the readiness endpoint answers.
	SetReady(ready bool)
	// Check is the health check that gates the watchdog.
	Check(ctx context.Context) error
	// Close releases the app after the last request finished.
	Close() error
}

// Daemon is what Run needs, all of it passed in.
type Daemon struct {
	Logger *slog.Logger
	// Notifier sends sd_notify messages; it drops them outside systemd.
	Notifier *systemd.Notifier
	// Listeners are the sockets systemd passed in; empty without socket
	// activation.
	Listeners systemd.Listeners
	// Listen is the address to open when systemd passed no socket.
	Listen string
	// MetricsListen is where to serve metrics when systemd passed no socket
	// named "metrics"; empty means on the main listener.
	MetricsListen string
	// HTTP bounds what a client may hold: timeouts, header size, and the
	// number of connections served at once.
	HTTP    config.HTTP
	Metrics *metrics.Metrics
	// StoreListener hands a listener the daemon opened itself to systemd's
	// file descriptor store (FileDescriptorStoreMax= in the unit).
	StoreListener bool
	// Watchdog is systemd's watchdog interval (WatchdogSec=); 0 when off.
	Watchdog time.Duration
	App      App
	// Reload re-reads the configuration and applies it, or returns why it
	// could not, leaving the old one in place.
	Reload func() error
	// DrainTimeout is how long in-flight requests may take once stopping
	// begins; read when the stop begins, so a reload can change it.
	DrainTimeout func() time.Duration
}

// The FileDescriptorName= of the sockets the daemon serves: the app, and
// its metrics.
const (
	mainSocket    = "http"
	metricsSocket = "metrics"
)

// Run runs the daemon until SIGTERM or SIGINT (or ctx) stops it. A clean stop
// returns nil.
func Run(ctx context.Context, d Daemon) error {
	log := d.Logger

	// 1. The listening socket: systemd's, if it passed one, else our own.
	// With socket activation systemd opened the port before starting us and
	// keeps it open across restarts; binding a port ourselves then would
	// fail, or worse, listen where no client is sent.
	ln, origin, err := listen(d.Listeners, d.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	metricsLn, err := listenMetrics(d.Listeners, d.MetricsListen)
	if err != nil {
		return err
	}
	if metricsLn != nil {
		defer metricsLn.Close()
	}
	if unused := d.Listeners.Close(); len(unused) > 0 {
		log.Warn("closing sockets passed in that the daemon does not use", "names", unused)
	}
	d.Metrics.SetSocketActivated(origin == passedIn)
	serving := fmt.Sprintf("Serving on %s (%s)", ln.Addr(), origin)

	// Without a .socket unit, systemd can still keep the port open across
	// restarts: hand our socket to its file descriptor store, and the next
	// start (after a crash, a watchdog kill or a restart) finds it in
	// LISTEN_FDS as if socket-activated. Clients then wait in the backlog
	// instead of being refused while the daemon is down.
	if d.StoreListener && origin == ownSocket {
		if err := storeListener(d.Notifier, ln); err != nil {
			log.Warn("could not hand the listener to systemd's FD store", "err", err)
		}
	}

	// 2. Start the app. Connections that arrive meanwhile wait in the
	// socket's backlog; systemd reports the unit as "activating" and holds
	// `systemctl start` until READY=1.
	notify(d, systemd.Status("Starting"))
	if err := d.App.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer d.App.Close()

	// 3. Signals, before READY=1: systemd may send SIGHUP (reload) or SIGTERM
	// (stop) the moment the unit is active, and a signal that arrives before
	// it is caught kills the process (SIGHUP's default action is to end it).
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	// 4. Serve. The socket already listens, so from here on every connection
	// is accepted and served, including one made the instant READY=1 arrives.
	// Metrics have a listener of their own, or a route on the main one.
	metricsOnMain := d.Metrics.Handler()
	metricsServed := make(chan error, 1)
	if metricsLn != nil {
		metricsOnMain = nil
		metricsSrv := newServer(d, d.Metrics.Handler(), nil)
		defer metricsSrv.Close() // after the drain, so that metrics show it
		go func() { metricsServed <- metricsSrv.Serve(metricsLn) }()
		serving += fmt.Sprintf(", metrics on %s", metricsLn.Addr())
	}
	conns := &connections{metrics: d.Metrics}
	srv := newServer(d, d.App.Handler(metricsOnMain), conns)
	// Past MaxConnections, Accept waits: new clients queue in the kernel's
	// backlog rather than each costing the daemon a goroutine and buffers.
	accepting := netutil.LimitListener(ln, d.HTTP.MaxConnections)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(accepting) }()

	// 5. READY=1: systemd marks the unit active, `systemctl start` returns
	// and units ordered After= this one start.
	setReady(d, true)
	notify(d, systemd.Ready, systemd.Status("%s", serving))
	log.Info("ready", "addr", ln.Addr().String(), "origin", origin)

	// 6. The watchdog, fed only while the app's health check passes, so
	// that systemd restarts a daemon that hangs rather than one that dies.
	// It keeps going during the stop: systemd still enforces WatchdogSec=
	// while a unit is stopping.
	watchdogCtx, stopWatchdog := context.WithCancel(context.Background())
	defer stopWatchdog()
	if d.Watchdog > 0 {
		go feedWatchdog(watchdogCtx, d)
	}

	// 7. Wait for a signal, the context, or the server failing.
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				reload(d, serving)
				continue
			}
			log.Info("stop requested", "signal", sig.String())
		case <-ctx.Done():
			log.Info("stop requested", "cause", context.Cause(ctx).Error())
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		case err := <-metricsServed:
			return fmt.Errorf("serve metrics: %w", err)
		}
		break
	}

	// 8. Stop: say so first, then stop taking requests and drain the ones in
	// flight. /readyz answers 503 from now on.
	setReady(d, false)
	conns.drain()
	drain := d.DrainTimeout()
	notify(d, systemd.Stopping,
		systemd.Status("Stopping: finishing in-flight requests (at most %s)", drain),
		// Stopping may take the whole drain timeout; should that be longer
		// than TimeoutStopSec=, ask for the time (and a little for exiting)
		// instead of being killed mid-request.
		systemd.ExtendTimeout(drain+5*time.Second))
	drainCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	// A second SIGTERM or SIGINT (an impatient operator, Ctrl-C twice) cuts
	// the drain short: the remaining connections are closed at once.
	go func() {
		for {
			select {
			case sig := <-signals:
				if sig != syscall.SIGHUP { // a reload while stopping is moot
					log.Warn("second stop signal; closing in-flight requests now", "signal", sig.String())
					cancel()
					return
				}
			case <-drainCtx.Done():
				return
			}
		}
	}()
	// Stop accepting. A socket systemd passed in stays open in systemd's
	// hands: connections still in its backlog wait there for the next
	// start. Once Serve has returned, every connection it accepted is
	// counted.
	accepting.Close()
	if err := <-served; !errors.Is(err, net.ErrClosed) {
		log.Warn("serving ended with an unexpected error while stopping", "err", err)
	}
	// Answer the requests on the connections accepted, then close them:
	// with keep-alives off, each connection closes after its response, and
	// idle ones close at once. http.Server.Shutdown alone would drop a
	// request it has not read when it begins, such as the first one on a
	// connection just accepted. (A client that sends another request on a
	// kept-alive connection as it closes sees it closed unanswered, as with
	// any HTTP/1.1 server; clients resend idempotent requests then.)
	// Switching keep-alives off again on every poll closes the connections
	// that went idle since, and, as Shutdown does, those that have sent
	// nothing for 5 s.
	closeIdle := func() { srv.SetKeepAlivesEnabled(false) }
	if err := conns.wait(drainCtx, closeIdle); err != nil {
		log.Warn("drain cut short; closing the remaining connections", "drain_timeout", drain, "cause", context.Cause(drainCtx))
	}
	srv.Close()
	d.Metrics.SetDraining(0)
	log.Info("stopped")
	return nil
}

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

// newServer returns an HTTP server for h. Its timeouts keep a slow or idle
// client from holding a connection forever.
func newServer(d Daemon, h http.Handler, conns *connections) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: d.HTTP.ReadHeaderTimeout.Duration,
		ReadTimeout:       d.HTTP.ReadTimeout.Duration,
		WriteTimeout:      d.HTTP.WriteTimeout.Duration,
		IdleTimeout:       d.HTTP.IdleTimeout.Duration,
		MaxHeaderBytes:    d.HTTP.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(d.Logger.Handler(), slog.LevelWarn),
	}
	if conns != nil {
		srv.ConnState = conns.track
	}
	return srv
}

// connections counts the open connections of a server, for the draining
// gauge during a stop.
type connections struct {
	metrics  *metrics.Metrics
	open     atomic.Int64
	draining atomic.Bool
}

func (c *connections) track(_ net.Conn, state http.ConnState) {
	var n int64
	switch state {
	case http.StateNew:
		n = c.open.Add(1)
	case http.StateClosed, http.StateHijacked:
		n = c.open.Add(-1)
	default:
		return
	}
	if c.draining.Load() {
		c.metrics.SetDraining(int(n))
	}
}

func (c *connections) drain() {
	c.draining.Store(true)
	c.metrics.SetDraining(int(c.open.Load()))
}

// wait returns once every connection has closed, or with ctx's error,
// calling closeIdle at every poll. It polls, as http.Server.Shutdown does:
// a stop is rare, and the connection hook stays one atomic add.
func (c *connections) wait(ctx context.Context, closeIdle func()) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for closeIdle(); c.open.Load() > 0; closeIdle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// setReady sets readiness where it is reported: GET /readyz and metrics.
func setReady(d Daemon, ready bool) {
	d.App.SetReady(ready)
	d.Metrics.SetReady(ready)
}

// listen returns systemd's main socket if it passed sockets in, else a socket
// of our own on addr, and says which.
func listen(passed systemd.Listeners, addr string) (net.Listener, string, error) {
	if len(passed) > 0 {
		ln, err := passed.TakeMain(mainSocket)
		if err != nil {
			return nil, "", err
		}
		if ln == nil {
			return nil, "", fmt.Errorf("socket activation: no socket named %q among those passed in; set FileDescriptorName=%s in the .socket unit", mainSocket, mainSocket)
		}
		return ln, passedIn, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	return ln, ownSocket, nil
}

// Where the main listener came from, as STATUS= and the logs say.
const (
	passedIn  = "socket-activated" // by a .socket unit, or from the FD store
	ownSocket = "own socket"
)

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

// reload answers SIGHUP. RELOADING=1 and MONOTONIC_USEC= go in one datagram;
// READY=1 ends the reload whether it worked or not, because the daemon keeps
// serving either way; STATUS= says which.
func reload(d Daemon, serving string) {
	notify(d, systemd.Reloading, systemd.MonotonicUsec(), systemd.Status("Reloading configuration"))
	err := d.Reload()
	d.Metrics.Reloaded(err == nil)
	if err != nil {
		d.Logger.Error("reload failed; still using the previous configuration", "err", err)
		notify(d, systemd.Ready, systemd.Status("%s; reload failed, still using the previous configuration: %v", serving, err))
		return
	}
	d.Logger.Info("configuration reloaded")
	notify(d, systemd.Ready, systemd.Status("%s", serving))
}

// feedWatchdog sends WATCHDOG=1 at half the interval, as sd_watchdog_enabled(3)
// advises, each time the health check passes. A check that fails or hangs
// skips the ping; after a whole interval without one systemd kills the
// daemon (SIGABRT) and, with Restart=on-failure, starts it again.
func feedWatchdog(ctx context.Context, d Daemon) {
	tick := time.NewTicker(d.Watchdog / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		checkCtx, cancel := context.WithTimeout(ctx, d.Watchdog/4)
		err := d.App.Check(checkCtx)
		cancel()
		d.Metrics.WatchdogPing(err == nil)
		if err != nil {
			if ctx.Err() == nil {
				d.Logger.Error("health check failed; not feeding the watchdog", "err", err)
			}
			continue
		}
		notify(d, systemd.Watchdog)
	}
}

// notify sends to systemd and logs a failure: a lost status message is worth
// a log line, not the daemon's life.
func notify(d Daemon, assignments ...string) {
	if err := d.Notifier.Notify(assignments...); err != nil {
		d.Logger.Warn("sd_notify failed", "err", err)
	}
}
