package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	runtimemetrics "runtime/metrics"
	"strconv"
	"time"
)

// The kit's test instruments: what the scenarios under systemd use to make
// the kit show what it does, whatever the app is. They answer only while
// [instruments] enabled is set in the configuration (404 otherwise, read on
// every request, so a reload turns them on and off), and each needs the API
// token: one of them can wedge the daemon, which makes it a write.
//
//	POST /debug/health?state=fail|hang|ok  the health check fails, hangs, or is the app's again
//	GET  /debug/sleep?d=DURATION           a request that takes as long as asked (the drain)
//	GET  /debug/panic                      a panic in a handler (the recovery)
//	GET  /debug/alloc?live=&garbage=&hold= an allocation (the Go memory limit, memory pressure)
//	POST /debug/log?seq=N&n=COUNT          a burst of log records (journald's faults)
func (d *daemon) instrumentRoutes(handle func(string, http.Handler)) {
	handle("POST /debug/health", d.instrument(d.handleHealthSwitch()))
	handle("GET /debug/sleep", d.instrument(handleSleep()))
	handle("GET /debug/panic", d.instrument(handlePanic()))
	handle("GET /debug/alloc", d.instrument(handleAlloc()))
	handle("POST /debug/log", d.instrument(d.handleLog()))
}

// instrument answers 404 unless the instruments are on, and 401 without
// the token.
func (d *daemon) instrument(h http.Handler) http.Handler {
	withToken := d.Token.Require(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.instrumentsOn.Load() {
			http.NotFound(w, r)
			return
		}
		withToken.ServeHTTP(w, r)
	})
}

// What the health switch makes of the app's health check.
const (
	healthApp  int32 = iota // the app's own check
	healthFail              // fails at once, as a check that finds a fault
	healthHang              // blocks until its deadline, as a wedged loop or a stuck disk
)

// check is the health check that GET /healthz and the watchdog use: the
// app's, unless the health switch says otherwise.
func (d *daemon) check(ctx context.Context) error {
	switch d.health.Load() {
	case healthFail:
		return errors.New("the health check was made to fail (POST /debug/health)")
	case healthHang:
		<-ctx.Done()
		return fmt.Errorf("the health check was made to hang (POST /debug/health): %w", ctx.Err())
	}
	return d.App.Check(ctx)
}

// handleHealthSwitch sets the health switch: the watchdog then stops being
// fed, and systemd kills and restarts the daemon, whose new process starts
// healthy.
func (d *daemon) handleHealthSwitch() http.Handler {
	states := map[string]int32{"ok": healthApp, "fail": healthFail, "hang": healthHang}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		state, ok := states[r.URL.Query().Get("state")]
		if !ok {
			http.Error(w, "want ?state=fail, hang or ok", http.StatusBadRequest)
			return
		}
		d.health.Store(state)
		d.Logger.Warn("health switch set", "state", r.URL.Query().Get("state"))
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleSleep holds the request open for ?d= (default 1s), or until the
// client leaves: an in-flight request for the drain to finish.
func handleSleep() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(cmp.Or(r.URL.Query().Get("d"), "1s"))
		if err != nil {
			http.Error(w, "d: "+err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(d):
			fmt.Fprintf(w, "slept %s\n", d)
		case <-r.Context().Done():
		}
	})
}

// handlePanic panics, to show that one bad request does not end the daemon.
func handlePanic() http.Handler {
	return http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("panic requested (GET /debug/panic)")
	})
}

// handleAlloc holds ?live= MiB for the request while it allocates ?garbage=
// MiB more, 1 MiB at a time, then keeps the live part for ?hold= (default
// 0): a load that the garbage collector, left to GOGC alone, lets grow the
// heap to twice what is live. It answers with the garbage collections it
// took, to show the Go memory limit at work (docs/resources.md).
func handleAlloc() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		live, err1 := strconv.Atoi(cmp.Or(q.Get("live"), "0"))
		garbage, err2 := strconv.Atoi(cmp.Or(q.Get("garbage"), "0"))
		hold, err3 := time.ParseDuration(cmp.Or(q.Get("hold"), "0s"))
		// Bounded, although only tests turn it on: 4 GiB held, 64 GiB churned.
		if err := errors.Join(err1, err2, err3); err != nil || live < 0 || live > 4096 || garbage < 0 || garbage > 65536 || hold > time.Minute {
			http.Error(w, "want ?live=MiB (at most 4096)&garbage=MiB (at most 65536)&hold=DURATION (at most 1m)", http.StatusBadRequest)
			return
		}
		before := gcCycles()
		kept := make([][]byte, live)
		for i := range kept {
			kept[i] = touched(1 << 20)
		}
		var churn [4][]byte
		for i := range garbage {
			churn[i%len(churn)] = touched(1 << 20)
		}
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
		}
		runtime.KeepAlive(kept)
		runtime.KeepAlive(&churn)
		fmt.Fprintf(w, "held %d MiB, allocated %d MiB more: %d garbage collections\n", live, garbage, gcCycles()-before)
	})
}

// touched returns n bytes written to, one byte a page, so that the kernel
// really gives them (a fresh allocation is only address space).
func touched(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}

// gcCycles is the garbage collections the runtime has completed.
func gcCycles() uint64 {
	s := []runtimemetrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	runtimemetrics.Read(s)
	return s[0].Value.Uint64()
}

// handleLog logs ?n= records (default 1, at most 100,000) numbered from
// ?seq=, to show that no log record is lost while journald restarts.
func (d *daemon) handleLog() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seq, err1 := strconv.Atoi(r.URL.Query().Get("seq"))
		n, err2 := strconv.Atoi(cmp.Or(r.URL.Query().Get("n"), "1"))
		if err := errors.Join(err1, err2); err != nil || n < 1 || n > 100_000 {
			http.Error(w, "want ?seq=N&n=COUNT (at most 100000)", http.StatusBadRequest)
			return
		}
		for i := range n {
			d.Logger.Info("instrument log line", "seq", seq+i)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// startDelay is the instruments' warm-up: start_delay long, reporting
// progress each second, so that systemd waits for it past
// TimeoutStartSec= and still ends a start that stops making progress.
func startDelay(ctx context.Context, d time.Duration, progress Progress) error {
	end := time.Now().Add(d)
	for left := d; left > 0; left = time.Until(end) {
		progress(fmt.Sprintf("Warming up: %s left", left.Round(time.Second)), left+5*time.Second)
		select {
		case <-time.After(min(left, time.Second)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
