package lifecycle

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener serves at most max connections at once, as
// netutil.LimitListener does, with one difference that matters under
// attack: when every slot is taken and a new client connects, it makes
// room by closing the connection that has waited longest without a
// request in progress, instead of making the new client queue.
//
// Such a connection is either one that has not finished sending its
// request headers (a slowloris client sends them a byte at a time and
// would otherwise hold its slot until read_header_timeout), or an idle
// keep-alive connection between two requests, which a client must expect
// the server to close (RFC 9112, 9.3). A connection whose request is in a
// handler is never closed: when all of them are busy, new clients queue in
// the socket's backlog as before. docs/lifecycle.md, step 4, says why.
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

	mu     sync.Mutex
	conns  map[*limitedConn]struct{}
	freed  chan struct{} // a send when a connection closes or goes idle
	closed atomic.Bool
}

func newLimitListener(ln net.Listener, max int, shed func(), answered func(code int)) *limitListener {
	return &limitListener{Listener: ln, max: max, shed: shed, answered: answered, conns: map[*limitedConn]struct{}{}, freed: make(chan struct{}, 1)}
}

// Accept accepts a connection, then, if that makes one too many, closes
// the one that has waited longest without a request, or, when every
// connection is busy, holds the new one until one closes or goes idle.
func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	lc.since.Store(time.Now().UnixNano())
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.conns[lc] = struct{}{}
			l.mu.Unlock()
			return lc, nil
		}
		victim := l.takeOldestWaiting()
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
			l.shed()
			continue
		}
		// Every connection is in a request: wait for one to close or to
		// go idle. If the listener is closed meanwhile (the stop), the
		// connection held here is served all the same, over the limit:
		// its client had connected, and the drain answers it.
		if err := l.waitFreed(); err != nil {
			l.mu.Lock()
			l.conns[lc] = struct{}{}
			l.mu.Unlock()
			return lc, nil
		}
	}
}

// takeOldestWaiting marks the connection that has waited longest without
// a request in a handler as shed and takes it out of the count, or returns
// nil if every one has a request. l.mu is held. The mark is a compare and
// swap that markBusy makes too, so a handler that takes a request at this
// instant either wins, and the connection is not shed, or finds it shed.
func (l *limitListener) takeOldestWaiting() *limitedConn {
	for {
		var oldest *limitedConn
		var since int64
		for c := range l.conns {
			if c.state.Load() != waiting {
				continue
			}
			if s := c.since.Load(); oldest == nil || s < since {
				oldest, since = c, s
			}
		}
		if oldest == nil {
			return nil
		}
		if oldest.state.CompareAndSwap(waiting, shed) {
			delete(l.conns, oldest)
			return oldest
		}
	}
}

// wake tells an Accept waiting for a slot to look again.
func (l *limitListener) wake() {
	select {
	case l.freed <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// waitFreed waits for a connection to close or go idle, checking every
// 10 ms that the listener is still open, so that closing it ends the wait.
func (l *limitListener) waitFreed() error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-l.freed:
			return nil
		case <-tick.C:
			if l.closed.Load() {
				return net.ErrClosed
			}
		}
	}
}

func (l *limitListener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

// A connection's state, for limitListener.
const (
	waiting int32 = iota // for a request: its first, or its next
	busy                 // a handler has its request, until the response is out
	shed                 // closed to make room
)

// limitedConn is a connection limitListener counts. It is busy from the
// moment a handler takes one of its requests until the response is written
// whole and the connection waits for the next (http.StateIdle); since is
// when it last began to wait (its accept, or that moment).
type limitedConn struct {
	net.Conn
	l     *limitListener
	state atomic.Int32
	since atomic.Int64 // Unix nanoseconds
	once  sync.Once
}

// Write counts the answers net/http writes on the connection itself,
// before any handler: no handler sees those requests, so no route can
// count them (serverAnswer).
func (c *limitedConn) Write(b []byte) (int, error) {
	if c.state.Load() == waiting {
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
		delete(c.l.conns, c)
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
	if lc, ok := c.(*limitedConn); ok {
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
// (returning would send an empty 200).
func markBusy(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lc, ok := r.Context().Value(connKey{}).(*limitedConn); ok && !lc.state.CompareAndSwap(waiting, busy) {
			panic(http.ErrAbortHandler)
		}
		h.ServeHTTP(w, r)
	})
}

// connState follows a connection's state (http.Server.ConnState): idle
// again after a response, it waits for a request from now on; taken over
// by a handler (a WebSocket, say), it is no HTTP connection to shed, and
// stays busy for good.
func connState(c net.Conn, state http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok || state != http.StateIdle {
		return
	}
	lc.since.Store(time.Now().UnixNano())
	if lc.state.CompareAndSwap(busy, waiting) {
		// An Accept may be waiting for a connection it can shed.
		lc.l.wake()
	}
}
