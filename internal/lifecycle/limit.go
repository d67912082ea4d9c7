package lifecycle

import (
	"bytes"
	"context"
	"crypto/tls"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// limitListener keeps the count of the daemon's open connections, from
// the moment it accepts one until it is closed, whoever closes it: the
// server, the client, the shedding below, or a handler that took it over
// (Hijack, for a WebSocket say), which holds its slot as long as it is
// open. The limit counts on it, and so does the drain (drain, waitClosed).
//
// It serves at most max connections at once, as
// netutil.LimitListener does, with one difference that matters under
// attack: when every slot is taken and a new client connects, it makes
// room by closing a connection that holds its slot without using it (a
// slowloris, a long-idle keep-alive), instead of making the new client
// queue behind it until read_header_timeout or idle_timeout.
//
// It must never close a connection with a request on its way to us: that
// request is lost, answered by a reset or by the end of the stream, and a
// client that does not retry (a load generator, a proxy forwarding a POST)
// reports a failure. A client in a loop of requests sends its next one
// within microseconds of an answer, and one that has just connected sends
// its first when it gets round to it; closing whichever connection had
// waited longest for a request lost 7% of the requests of h2load -c 1100
// at max_connections 1024. So a connection is closed only while the server
// waits on its client, in Read, with nothing unread in the socket (unread),
// and only once the client has kept it waiting long enough to be out of
// any such loop:
//
//   - slow, first: its request began to arrive slowAfter ago or more and is
//     not all there. A client sends its request in one go; one that trickles
//     in is a slowloris, which would otherwise hold its slot until
//     read_header_timeout.
//   - idle, then: admitted or answered idleAfter ago or more, and not one
//     byte of a request since. A client that has not asked for that long is
//     in no loop of requests: it is a browser's or a proxy's spare
//     connection, whose client retries a request sent just as it closes
//     (RFC 9112, 9.3.1), or an attacker's.
//
// Oldest first within each. A connection in a handler, or whose request has
// come but waits for the server (a goroutine not yet run, under load), is
// never closed: the wait is ours, not its client's. When no connection may
// be closed, a new client waits in the socket's backlog and takes a slot
// when one closes or ages into one of the two kinds. What is left is the
// instant of the close itself, a race net/http's own close at idle_timeout
// has too: a client that sends just then, after idling a second, loses that
// request. docs/lifecycle.md, step 4, says why this policy.
//
// Each accept at the limit looks at every connection, under the lock
// their closes take too: cheap at the default of 1024, and worth a list
// ordered by age for limits far larger.
type limitListener struct {
	net.Listener
	max  int
	shed func() // counts a connection closed to make room
	// answered counts a request net/http answered itself (serverAnswer).
	answered func(code int)
	// slowAfter and idleAfter are the constants below, but in a test.
	slowAfter, idleAfter time.Duration
	epoch                time.Time // phases are timed from here (monotonic)

	mu    sync.Mutex
	conns map[*limitedConn]struct{}
	// draining, once the drain began, is told how many connections are
	// left at every close (the draining gauge).
	draining func(open int)
	freed    chan struct{} // a send when a connection closes
	closed   atomic.Bool
}

const (
	// slowAfter is how long a request may take to arrive, counted from its
	// first byte, before its connection counts as slow. A request's headers
	// come in one flight, within a millisecond of their first byte unless
	// they outgrow TCP's first window (about 14 kB). A tenth of a second is
	// far past that, and short enough that a new client under a slowloris
	// finds a slow connection to take the slot of at once.
	slowAfter = 100 * time.Millisecond
	// idleAfter is how long a connection must wait for a request, its
	// first or its next, before it counts as idle. A client in a loop of
	// requests asks again within a round trip and the time it takes itself
	// (a load generator with a thousand connections: a tenth of a second at
	// worst, measured); a second is well past that.
	idleAfter = time.Second
	// recheck is how often an Accept waiting for room looks again: a
	// connection becomes one it may close by ageing, with no event to say
	// so.
	recheck = 10 * time.Millisecond
)

func newLimitListener(ln net.Listener, max int, shed func(), answered func(code int)) *limitListener {
	return &limitListener{
		Listener: ln, max: max, shed: shed, answered: answered,
		slowAfter: slowAfter, idleAfter: idleAfter, epoch: time.Now(),
		conns: map[*limitedConn]struct{}{}, freed: make(chan struct{}, 1),
	}
}

// now is the time since the listener was made: phases are stamped with it.
func (l *limitListener) now() time.Duration { return time.Since(l.epoch) }

// Accept accepts a connection, then, if that makes one too many, closes a
// slow or idle one to make room, or, when there is none, holds the new one
// until there is, or until one closes.
func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.admit(lc)
			l.mu.Unlock()
			return lc, nil
		}
		victim := l.takeVictim()
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
			l.shed()
			continue
		}
		// No connection may be closed: wait. If the listener is closed
		// meanwhile (the stop), the connection held here is served all
		// the same, over the limit: its client had connected, and the
		// drain answers it.
		if err := l.waitForRoom(); err != nil {
			l.mu.Lock()
			l.admit(lc)
			l.mu.Unlock()
			return lc, nil
		}
	}
}

// admit counts c, waiting for its first request from now rather than from
// its accept: held in Accept, it could not be read, and its client has
// kept no one waiting. l.mu is held.
func (l *limitListener) admit(c *limitedConn) {
	c.phase.Store(int64(phaseOf(waiting, l.now())))
	l.conns[c] = struct{}{}
}

// takeVictim takes the connection to close out of the count and returns
// it: the one slow longest, or else the one idle longest (see
// limitListener), or nil when there is neither. l.mu is held.
//
// The mark that takes it is a compare and swap of its whole phase, state
// and start, as the connection's own changes are: one that has begun a
// request or gone into a handler since it was looked at is in another
// phase, and is not taken.
func (l *limitListener) takeVictim() *limitedConn {
	var skip []*limitedConn // their client sent more, not yet read
	for {
		now := l.now()
		var slow, idle *limitedConn
		var slowPhase, idlePhase phase
		for c := range l.conns {
			if !c.reading.Load() || slices.Contains(skip, c) {
				continue // the server is not waiting on this client
			}
			switch p := c.loadPhase(); {
			case p.state() == arriving && now-p.since() >= l.slowAfter:
				if slow == nil || p.since() < slowPhase.since() {
					slow, slowPhase = c, p
				}
			case p.state() == waiting && now-p.since() >= l.idleAfter:
				if idle == nil || p.since() < idlePhase.since() {
					idle, idlePhase = c, p
				}
			}
		}
		c, p := slow, slowPhase
		if c == nil {
			c, p = idle, idlePhase
		}
		if c == nil {
			return nil
		}
		if c.unread() {
			skip = append(skip, c)
			continue
		}
		if c.phase.CompareAndSwap(int64(p), int64(phaseOf(shed, now))) {
			l.remove(c)
			return c
		}
	}
}

// wake tells an Accept waiting for room to look again.
func (l *limitListener) wake() {
	select {
	case l.freed <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// waitForRoom waits for a connection to close, or for recheck to pass,
// and says whether the listener was closed meanwhile.
func (l *limitListener) waitForRoom() error {
	t := time.NewTimer(recheck)
	defer t.Stop()
	select {
	case <-l.freed:
	case <-t.C:
	}
	if l.closed.Load() {
		return net.ErrClosed
	}
	return nil
}

func (l *limitListener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

// remove takes c out of the count. l.mu is held.
func (l *limitListener) remove(c *limitedConn) {
	delete(l.conns, c)
	if l.draining != nil {
		l.draining(len(l.conns))
	}
}

// drain begins the drain: from now on gauge is told how many connections
// are open, now and at every close.
func (l *limitListener) drain(gauge func(open int)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = gauge
	gauge(len(l.conns))
}

// waitClosed returns once every connection has closed, or with ctx's
// error, calling closeIdle at every poll. It polls, as
// http.Server.Shutdown does: a stop is rare, and a close stays cheap.
func (l *limitListener) waitClosed(ctx context.Context, closeIdle func()) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for closeIdle(); l.open() > 0; closeIdle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// open is the number of open connections.
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// closeAll closes every connection still open. At the end of the drain,
// after http.Server.Close, what is left is the connections handlers took
// over, which the server leaves to them.
func (l *limitListener) closeAll() {
	l.mu.Lock()
	conns := slices.Collect(maps.Keys(l.conns))
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// A connection's state, for limitListener.
const (
	waiting  = iota // for a request, its first or its next: nothing of it read
	arriving        // a request has begun to arrive, and no handler has it
	busy            // a handler has its request, until the response is out
	shed            // closed to make room
)

// phase is a connection's state and when it entered it (since the
// listener's epoch), in one word, so that one compare and swap tells
// whether either has changed: a connection that has been through a whole
// request since it was looked at is waiting again, but in a newer phase.
type phase int64

func phaseOf(state int, since time.Duration) phase { return phase(since)<<2 | phase(state) }
func (p phase) state() int                         { return int(p & 3) }
func (p phase) since() time.Duration               { return time.Duration(p >> 2) }

// limitedConn is a connection limitListener counts, with its phase:
// waiting from its admission, arriving from the first byte of a request,
// busy from the moment a handler takes the request (markBusy) until the
// response is written whole and it waits for the next (http.StateIdle):
// waiting again from then.
type limitedConn struct {
	net.Conn
	l     *limitListener
	phase atomic.Int64
	// reading is set while the server is in Read, most often waiting for
	// the client to send; a request that has come but has not been read
	// is in the socket, where unread finds it.
	reading atomic.Bool
	once    sync.Once
	// http2 is set once the connection is known to serve HTTP/2 (connState).
	http2, protoKnown atomic.Bool
}

func (c *limitedConn) loadPhase() phase { return phase(c.phase.Load()) }

// Read reads as the connection does, noting for limitListener that the
// server waits on the client meanwhile, and when a request begins.
func (c *limitedConn) Read(b []byte) (int, error) {
	c.reading.Store(true)
	n, err := c.Conn.Read(b)
	c.reading.Store(false)
	if p := c.loadPhase(); n > 0 && p.state() == waiting {
		c.phase.CompareAndSwap(int64(p), int64(phaseOf(arriving, c.l.now())))
	}
	return n, err
}

// unread says whether bytes from the client wait in the socket: a request,
// or more of one, that has come although the server has not read it yet.
// It peeks, which leaves them for the server to read.
func (c *limitedConn) unread() bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	if err := raw.Control(func(fd uintptr) {
		var b [1]byte
		n, _, _ = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	}); err != nil {
		return false // closed meanwhile: nothing waits in it
	}
	return n > 0
}

// Write counts the answers net/http writes on the connection itself,
// before any handler: no handler sees those requests, so no route can
// count them (serverAnswer).
func (c *limitedConn) Write(b []byte) (int, error) {
	if s := c.loadPhase().state(); s == waiting || s == arriving {
		if code, ok := serverAnswer(b); ok {
			c.l.answered(code)
		}
	}
	return c.Conn.Write(b)
}

// serverAnswer reads the status code of what net/http writes on a
// connection none of whose requests is in a handler. Only net/http writes
// then, and only to refuse a request it could not hand to one: 400 for one
// it cannot read, 431 for headers over MaxHeaderBytes, 501 for an unknown
// Transfer-Encoding, 417 for an Expect other than 100-continue. It writes
// each in one piece, status line first, and closes the connection after.
// (A handler's response is written while the connection is busy, and the
// connection turns waiting only once it is out: connState.)
func serverAnswer(b []byte) (code int, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 4 || rest[3] != ' ' {
		return 0, false
	}
	code, err := strconv.Atoi(string(rest[:3]))
	if err != nil || code < 100 || code > 599 {
		return 0, false
	}
	return code, true
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.remove(c)
		c.l.mu.Unlock()
		c.l.wake()
	})
	return err
}

// connKey is the context key under which a request finds its connection.
type connKey struct{}

// connContext puts the connection in the context of its requests
// (http.Server.ConnContext), for markBusy.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := limited(c); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// markBusy marks the request's connection busy as h takes the request, so
// that limitListener never closes it in the middle of one; connState marks
// it waiting again once the response is out.
//
// A request whose connection was shed between its headers' arrival and
// this point is not served: the connection is closing already, and
// http.ErrAbortHandler makes net/http drop it without writing a response
// (returning would send an empty 200). Only a slow request can be shed
// so, and only in the instant after its last byte came.
func markBusy(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lc, ok := r.Context().Value(connKey{}).(*limitedConn); ok && !lc.enter(busy) {
			panic(http.ErrAbortHandler)
		}
		h.ServeHTTP(w, r)
	})
}

// enter moves c into state, from now, unless it was shed: it reports
// whether it did. A busy connection is never closed, so when it turned
// busy matters to no one: that phase is stamped 0, which spares every
// request a reading of the clock. (A waiting phase after it is stamped
// anew, so a compare and swap still tells it from the one before.)
func (c *limitedConn) enter(state int) bool {
	var since time.Duration
	if state != busy {
		since = c.l.now()
	}
	for {
		p := c.loadPhase()
		if p.state() == shed {
			return false
		}
		if c.phase.CompareAndSwap(int64(p), int64(phaseOf(state, since))) {
			return true
		}
	}
}

// connState follows a connection's state (http.Server.ConnState): idle
// after a response, it waits for its next request from now; taken over by a
// handler (a WebSocket, say), it is no HTTP connection to shed, and stays
// busy for good.
func connState(c net.Conn, state http.ConnState) {
	lc, ok := limited(c)
	if !ok {
		return
	}
	// The protocol ALPN chose, read once the handshake is done: HTTP/2's
	// server reports its connections active as a stream begins.
	if tc, isTLS := c.(*tls.Conn); isTLS && state == http.StateActive && !lc.protoKnown.Swap(true) {
		lc.http2.Store(tc.ConnectionState().NegotiatedProtocol == "h2")
	}
	if state == http.StateIdle {
		lc.enter(waiting)
	}
}

// onlyHTTP2 reports whether every connection still open serves HTTP/2, and
// there is one at least (stop).
func (l *limitListener) onlyHTTP2() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if !c.http2.Load() {
			return false
		}
	}
	return len(l.conns) > 0
}

// limited is the limitedConn under c, which TLS may wrap.
func limited(c net.Conn) (*limitedConn, bool) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	return lc, ok
}
