package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// row is one line of the result table.
type row struct {
	measure            string
	daemon, a, b       string
	ratio, goal, state string
}

// measureStart: time to ready, from execve(2) to the READY=1 datagram, for
// the daemon and both baselines, alternating, on all CPUs (as under
// systemd), with the same listening socket passed to each.
func (b *bench) measureStart() error {
	ln, _, err := tcpListener()
	if err != nil {
		return err
	}
	defer ln.Close()
	servers := []*server{b.daemon, b.bareDeps, b.bare}
	ready := map[*server][]time.Duration{}
	var starting []time.Duration // the daemon's STATUS=Starting
	for round := range b.opts.warmStarts + b.opts.starts {
		for _, s := range rotate(servers, round) {
			p, err := b.start(s, ln, "all")
			if err != nil {
				return err
			}
			if err := p.stop(); err != nil {
				return fmt.Errorf("%w%s", err, b.logTail(s))
			}
			if round < b.opts.warmStarts {
				continue
			}
			ready[s] = append(ready[s], p.ready.sent.Sub(p.execAt))
			if s == b.daemon {
				for _, d := range p.before {
					if strings.HasPrefix(d.text, "STATUS=Starting") {
						starting = append(starting, d.sent.Sub(p.execAt))
					}
				}
			}
		}
	}
	d, a, bb := median(ready[b.daemon]), median(ready[b.bare]), median(ready[b.bareDeps])
	n := len(ready[b.daemon])
	ra, rb := pairedRatio(ready[b.daemon], ready[b.bare]), pairedRatio(ready[b.daemon], ready[b.bareDeps])
	b.rows = append(b.rows,
		row{measure: fmt.Sprintf("time to ready, exec → READY=1 (median of %d)", n),
			daemon: ms(d), a: ms(a), b: ms(bb),
			ratio: fmt.Sprintf("%.2f× (a)", ra)},
		row{measure: "  the same, against bare+deps (b)",
			ratio: fmt.Sprintf("%.2f× (b)", rb), goal: "≤ 1.25× (b)", state: metIf(round2(rb) <= 1.25)},
	)
	b.note("time to ready, p10–p90: daemon %s–%s, bare %s–%s, bare+deps %s–%s",
		ms(pct(ready[b.daemon], 10)), ms(pct(ready[b.daemon], 90)),
		ms(pct(ready[b.bare], 10)), ms(pct(ready[b.bare], 90)),
		ms(pct(ready[b.bareDeps], 10)), ms(pct(ready[b.bareDeps], 90)))
	if len(starting) > 0 {
		s := median(starting)
		b.note("daemon: exec → STATUS=Starting (flags, config, logger, metrics, state, socket taken) %s, then → READY=1 %s (medians)",
			ms(s), ms(d-s))
	}
	b.note("what linking the dependencies costs, bare+deps against bare: %s (%.2f×)", ms(bb-a), pairedRatio(ready[b.bareDeps], ready[b.bare]))
	return nil
}

// measureReload: SIGHUP → RELOADING=1 → READY=1, the daemon and bare (a)
// alternating, both running at once on all CPUs.
func (b *bench) measureReload() error {
	servers := []*server{b.daemon, b.bare}
	procs := map[*server]*process{}
	for _, s := range servers {
		ln, _, err := tcpListener()
		if err != nil {
			return err
		}
		p, err := b.start(s, ln, "all")
		ln.Close()
		if err != nil {
			return err
		}
		procs[s] = p
	}
	total := map[*server][]time.Duration{}
	first := map[*server][]time.Duration{}
	const warm = 10
	for i := range warm + b.opts.reloads {
		for _, s := range rotate(servers, i) {
			p := procs[s]
			sent := time.Now()
			if err := syscall.Kill(p.pid, syscall.SIGHUP); err != nil {
				return err
			}
			reloading, _, err := b.notify.next(p.pid, "RELOADING=1", 5*time.Second, p.done)
			if err != nil {
				return fmt.Errorf("%s: %w%s", s.name, err, b.logTail(s))
			}
			ready, _, err := b.notify.next(p.pid, "READY=1", 5*time.Second, p.done)
			if err != nil {
				return fmt.Errorf("%s: %w%s", s.name, err, b.logTail(s))
			}
			if i >= warm {
				total[s] = append(total[s], ready.sent.Sub(sent))
				first[s] = append(first[s], reloading.sent.Sub(sent))
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, s := range servers {
		if err := procs[s].stop(); err != nil {
			return fmt.Errorf("%w%s", err, b.logTail(s))
		}
	}
	d, a := median(total[b.daemon]), median(total[b.bare])
	b.rows = append(b.rows, row{
		measure: fmt.Sprintf("reload, SIGHUP → READY=1 (median of %d)", len(total[b.daemon])),
		daemon:  ms(d), a: ms(a), ratio: fmt.Sprintf("%.2f× (a)", pairedRatio(total[b.daemon], total[b.bare])),
		goal: "< 1 ms", state: metIf(d < time.Millisecond),
	})
	b.note("reload, daemon: SIGHUP → RELOADING=1 %s, RELOADING=1 → READY=1 %s (medians); p90 SIGHUP → READY=1 %s",
		ms(median(first[b.daemon])), ms(d-median(first[b.daemon])), ms(pct(total[b.daemon], 90)))
	return nil
}

// measureHTTP: GET path under wrk, the daemon against bare (a), alternating
// runs, each server pinned to the server CPU and wrk to the client CPU.
func (b *bench) measureHTTP() error {
	servers := []*server{b.daemon, b.bare, b.bareTimeouts}
	f, err := b.serveAll(servers, "http")
	if err != nil {
		return err
	}
	defer f.kill()
	procs, urls := f.procs, f.urls
	for _, s := range servers[1:] {
		if err := b.sameAnswer(urls[b.daemon], urls[s]); err != nil {
			return err
		}
	}
	// Warm up: fill the connection and buffer pools, let the runtime's
	// heap grow to its working size.
	for _, s := range servers {
		if _, err := b.wrk(procs[s], urls[s], 2*time.Second); err != nil {
			return err
		}
	}
	results := map[*server][]wrkResult{}
	for round := range b.opts.rounds {
		for _, s := range rotate(servers, round) {
			r, err := b.wrk(procs[s], urls[s], b.opts.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			results[s] = append(results[s], r)
		}
	}
	all := map[*server][]wrkResult{}
	maps.Copy(all, results)
	// A run during which other processes wanted the CPUs says more about
	// them than about the server. When enough rounds of runs were quiet,
	// the ratios come from those alone.
	const quietBelow = 0.05
	var quiet []int
	for i := range b.opts.rounds {
		if !slices.ContainsFunc(servers, func(s *server) bool { return results[s][i].busy >= quietBelow }) {
			quiet = append(quiet, i)
		}
	}
	pairs := "all rounds of runs"
	if len(quiet) >= 3 {
		pairs = fmt.Sprintf("the %d of %d rounds of runs during which other processes waited for a CPU less than %.0f%% of the time", len(quiet), b.opts.rounds, quietBelow*100)
		for _, s := range servers {
			var rs []wrkResult
			for _, i := range quiet {
				rs = append(rs, results[s][i])
			}
			results[s] = rs
		}
	} else {
		pairs += fmt.Sprintf(" (only %d of %d were quiet: the machine was busy, take the ratios with salt or run again)", len(quiet), b.opts.rounds)
	}
	b.note("GET %s medians and ratios from %s", b.opts.path, pairs)
	field := func(s *server, f func(wrkResult) float64) []float64 {
		var xs []float64
		for _, r := range results[s] {
			xs = append(xs, f(r))
		}
		return xs
	}
	rps := func(r wrkResult) float64 { return r.rps }
	p50 := func(r wrkResult) float64 { return float64(r.p50) }
	p99 := func(r wrkResult) float64 { return float64(r.p99) }
	cpu := func(r wrkResult) float64 { return float64(r.cpu) / float64(r.requests) }
	dc, ac := field(b.daemon, cpu), field(b.bare, cpu)
	dr, ar := field(b.daemon, rps), field(b.bare, rps)
	d50, a50 := field(b.daemon, p50), field(b.bare, p50)
	d99, a99 := field(b.daemon, p99), field(b.bare, p99)
	rr, r50, r99 := pairedRatio(dr, ar), pairedRatio(d50, a50), pairedRatio(d99, a99)
	tc, tr, t99 := field(b.bareTimeouts, cpu), field(b.bareTimeouts, rps), field(b.bareTimeouts, p99)
	b.rows = append(b.rows,
		row{measure: fmt.Sprintf("GET %s throughput, req/s (median of %d × %s, %d conns)", b.opts.path, b.opts.rounds, b.opts.duration, b.opts.conns),
			daemon: fmt.Sprintf("%.0f", medianF(dr)), a: fmt.Sprintf("%.0f", medianF(ar)),
			ratio: fmt.Sprintf("%.2f× (a)", rr), goal: "≥ 0.90× (a)", state: metIf(round2(rr) >= 0.9)},
		row{measure: "GET " + b.opts.path + " latency p50",
			daemon: ms(time.Duration(medianF(d50))), a: ms(time.Duration(medianF(a50))),
			ratio: fmt.Sprintf("%.2f× (a)", r50)},
		row{measure: "GET " + b.opts.path + " latency p99",
			daemon: ms(time.Duration(medianF(d99))), a: ms(time.Duration(medianF(a99))),
			ratio: fmt.Sprintf("%.2f× (a)", r99), goal: "≤ 1.20× (a)", state: metIf(round2(r99) <= 1.2)},
		row{measure: "GET " + b.opts.path + " server CPU time per request",
			daemon: us(medianF(dc)), a: us(medianF(ac)),
			ratio: fmt.Sprintf("%.2f× (a)", pairedRatio(dc, ac))},
	)
	// Against bare with the same timeouts: what the kit's handler chain
	// (metrics, panic recovery, the connection limit and tracking, the
	// router) costs on top of what any server facing clients should set.
	tRR, tR99 := pairedRatio(dr, tr), pairedRatio(d99, t99)
	b.rows = append(b.rows,
		row{measure: "GET " + b.opts.path + " throughput against bare+timeouts (a+t)",
			daemon: fmt.Sprintf("%.0f", medianF(dr)), a: fmt.Sprintf("%.0f (a+t)", medianF(tr)),
			ratio: fmt.Sprintf("%.2f× (a+t)", tRR), goal: "≥ 0.97× (a+t)", state: metIf(round2(tRR) >= 0.97)},
		row{measure: "GET " + b.opts.path + " latency p99 against bare+timeouts (a+t)",
			daemon: ms(time.Duration(medianF(d99))), a: ms(time.Duration(medianF(t99))) + " (a+t)",
			ratio: fmt.Sprintf("%.2f× (a+t)", tR99), goal: "≤ 1.10× (a+t)", state: metIf(round2(tR99) <= 1.10)},
	)
	b.note("the server timeouts alone: %s %.0f req/s, p99 %s, CPU per request %s; against bare (a) %.2f× throughput, %.2f× p99, %.2f× CPU per request. "+
		"The daemon against it: %.2f× throughput, %.2f× p99, %.2f× CPU per request",
		b.bareTimeouts.name, medianF(tr), ms(time.Duration(medianF(t99))), us(medianF(tc)),
		pairedRatio(tr, ar), pairedRatio(t99, a99), pairedRatio(tc, ac),
		pairedRatio(dr, tr), pairedRatio(d99, t99), pairedRatio(dc, tc))
	var runs []string
	for _, s := range servers {
		var xs []string
		for _, r := range all[s] {
			xs = append(xs, fmt.Sprintf("%.0f (%.0f%%)", r.rps, r.busy*100))
		}
		runs = append(runs, s.name+" "+strings.Join(xs, " "))
	}
	b.note("wrk runs in order, req/s (share of the run other processes waited for a CPU): %s", strings.Join(runs, "; "))
	for _, s := range servers {
		if m, err := procs[s].memory(); err == nil {
			b.note("RSS after the wrk runs (warm-up + %d × %s): %s %s", b.opts.rounds, b.opts.duration, s.name, mib(m.rss))
		}
	}
	return b.stopAll(f, servers)
}

// fleet is the servers a phase runs side by side, each on a socket of its
// own, with the URL of the path it measures on each.
type fleet struct {
	procs map[*server]*process
	urls  map[*server]string
}

// serveAll starts servers as serve does, their URLs in scheme (http or
// https). The caller defers kill, and ends with stopAll.
func (b *bench) serveAll(servers []*server, scheme string) (*fleet, error) {
	f := &fleet{procs: map[*server]*process{}, urls: map[*server]string{}}
	for _, s := range servers {
		p, url, err := b.serve(s)
		if err != nil {
			f.kill()
			return nil, err
		}
		f.procs[s], f.urls[s] = p, scheme+strings.TrimPrefix(url, "http")+b.opts.path
	}
	return f, nil
}

// kill kills the servers still running: on an error's way out.
func (f *fleet) kill() {
	for _, p := range f.procs {
		p.kill()
	}
}

// stopAll stops the servers one after another, as systemd would, and says
// which did not stop cleanly.
func (b *bench) stopAll(f *fleet, servers []*server) error {
	for _, s := range servers {
		p := f.procs[s]
		delete(f.procs, s)
		if err := p.stop(); err != nil {
			return fmt.Errorf("%w%s", err, b.logTail(s))
		}
	}
	return nil
}

// serve starts s on a listening socket of its own, pinned to the servers'
// CPUs as under load, and returns it with the URL it answers on.
func (b *bench) serve(s *server) (*process, string, error) {
	ln, url, err := tcpListener()
	if err != nil {
		return nil, "", err
	}
	defer ln.Close() // the server has its own copy
	p, err := b.start(s, ln, b.opts.serverCPU)
	return p, url, err
}

// sameAnswer checks that the daemon and the baseline answer GET path alike,
// but for the Date: the same status, headers and bytes.
func (b *bench) sameAnswer(daemonURL, bareURL string) error {
	get := func(url string) (string, error) {
		resp, err := http.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		var hs []string
		for k, v := range resp.Header {
			if k != "Date" {
				hs = append(hs, k+": "+strings.Join(v, ", "))
			}
		}
		sort.Strings(hs)
		return fmt.Sprintf("%s\n%s\n\n%q", resp.Status, strings.Join(hs, "\n"), body), nil
	}
	d, err := get(daemonURL)
	if err != nil {
		return err
	}
	a, err := get(bareURL)
	if err != nil {
		return err
	}
	if d != a {
		b.note("WARNING: the daemon and the bare server answer GET %s differently:\n--- daemon\n%s\n--- bare\n%s", b.opts.path, d, a)
	}
	return nil
}

// measureMemory: RSS right after READY=1 and after a fixed number of
// requests, on fresh processes pinned like the HTTP runs.
func (b *bench) measureMemory() error {
	servers := []*server{b.daemon, b.bareDeps, b.bare}
	type reading struct{ rss, anon, file []float64 }
	atStart := map[*server]*reading{}
	afterLoad := map[*server]*reading{}
	for _, s := range servers {
		atStart[s], afterLoad[s] = &reading{}, &reading{}
	}
	read := func(p *process, r *reading) error {
		m, err := p.memory()
		if err != nil {
			return err
		}
		r.rss = append(r.rss, float64(m.rss))
		r.anon = append(r.anon, float64(m.anon))
		r.file = append(r.file, float64(m.file))
		return nil
	}
	for round := range b.opts.memRounds {
		for _, s := range rotate(servers, round) {
			p, url, err := b.serve(s)
			if err != nil {
				return err
			}
			time.Sleep(200 * time.Millisecond)
			if err := read(p, atStart[s]); err != nil {
				p.kill()
				return err
			}
			if err := load(url+b.opts.path, b.opts.requests, b.opts.conns); err != nil {
				p.kill()
				return fmt.Errorf("%s: %w", s.name, err)
			}
			time.Sleep(200 * time.Millisecond)
			if err := read(p, afterLoad[s]); err != nil {
				p.kill()
				return err
			}
			if err := p.stop(); err != nil {
				return fmt.Errorf("%w%s", err, b.logTail(s))
			}
		}
	}
	for _, m := range []struct {
		name string
		mem  map[*server]*reading
	}{
		{"RSS after start", atStart},
		{fmt.Sprintf("RSS after %d requests", b.opts.requests), afterLoad},
	} {
		d, a, bb := medianF(m.mem[b.daemon].rss), medianF(m.mem[b.bare].rss), medianF(m.mem[b.bareDeps].rss)
		b.rows = append(b.rows, row{
			measure: fmt.Sprintf("%s, VmRSS (median of %d)", m.name, b.opts.memRounds),
			daemon:  mib(int64(d)), a: mib(int64(a)), b: mib(int64(bb)),
			ratio: fmt.Sprintf("%.2f× (a), %.2f× (b)", d/a, d/bb), goal: "≤ 1.15× (b)", state: metIf(round2(d/bb) <= 1.15),
		})
		// The heap and stacks apart from the binary's pages, which grow
		// with every dependency linked in.
		da, aa, ba := medianF(m.mem[b.daemon].anon), medianF(m.mem[b.bare].anon), medianF(m.mem[b.bareDeps].anon)
		b.rows = append(b.rows, row{
			measure: fmt.Sprintf("%s, RssAnon (median of %d)", m.name, b.opts.memRounds),
			daemon:  mib(int64(da)), a: mib(int64(aa)), b: mib(int64(ba)),
			ratio: fmt.Sprintf("%.2f× (a), %.2f× (b)", da/aa, da/ba), goal: "≤ 1.50× (a)", state: metIf(round2(da/aa) <= 1.5),
		})
		var parts []string
		for _, s := range servers {
			parts = append(parts, fmt.Sprintf("%s %s + %s", s.name,
				mib(int64(medianF(m.mem[s].anon))), mib(int64(medianF(m.mem[s].file)))))
		}
		b.note("%s, RssAnon (heap, stacks) + RssFile (pages of the binary, shared page cache): %s", m.name, strings.Join(parts, "; "))
	}
	return nil
}

func (b *bench) printTable(w io.Writer) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tdaemon\tbare (a)\tbare+deps (b)\tratio\tgoal\t")
	for _, r := range b.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.measure, dash(r.daemon), dash(r.a), dash(r.b), dash(r.ratio), r.goal, r.state)
	}
	tw.Flush()
	if len(b.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range b.notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// round2 rounds a ratio as the table shows it, so that the verdict agrees
// with the number printed beside it.
func round2(x float64) float64 { return math.Round(x*100) / 100 }

func metIf(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func median(ds []time.Duration) time.Duration { return pct(ds, 50) }

// pct is the p-th percentile, by the nearest rank.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if p == 50 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func us(ns float64) string { return fmt.Sprintf("%.2f µs", ns/1e3) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// pairedRatio is the median of x[i]/y[i]: the ratio of two servers
// measured back to back, round after round. Pairing cancels the drift of a
// shared machine's load, which a ratio of two medians would not.
func pairedRatio[T time.Duration | float64](x, y []T) float64 {
	var rs []float64
	for i := range min(len(x), len(y)) {
		if y[i] != 0 {
			rs = append(rs, float64(x[i])/float64(y[i]))
		}
	}
	return medianF(rs)
}
