package main

// The example's notes: these phases drive PUT /notes/{name}, which only
// the example has, so they measure the daemon against itself (100 notes
// against 10,000; GET /notes against GET /) and against no baseline.
// make drop-example deletes this file with the example.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// putNotes stores notes named prefix0, prefix1, …, from first up to n,
// from conns clients at once, each a body of size bytes.
func putNotes(url, prefix string, first, n, size, conns int) error {
	client := &http.Client{Timeout: 30 * time.Second}
	body := bytes.Repeat([]byte("n"), size)
	var next atomic.Int64
	next.Store(int64(first))
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := put(client, fmt.Sprintf("%s/notes/%s%d", url, prefix, i), body); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func put(client *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body) // for the connection's reuse; the status says enough
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("PUT %s: %s", url, resp.Status)
	}
	return nil
}

// putLatencies replaces k random notes of the n stored, one at a time, and
// returns how long each PUT took: a write's cost at that size of store.
func putLatencies(url string, n, k, size int) ([]time.Duration, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	body := bytes.Repeat([]byte("r"), size)
	var ds []time.Duration
	for range k {
		t0 := time.Now()
		if err := put(client, fmt.Sprintf("%s/notes/n%d", url, rand.IntN(n)), body); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	return ds, nil
}

// measureNotes: PUT latency with 100 notes stored and with 10,000, GET
// /notes/{name} throughput against GET /, and the RSS of a daemon holding
// 10,000 notes of 1 KiB. The two stores are two daemons, filled first,
// then timed in alternating rounds once the disk has written the fill, so
// that the disk's own pace weighs on both alike.
func (b *bench) measureNotes() error {
	const small, large, size, rounds, perRound = 100, 10000, 1 << 10, 16, 100
	p, url, err := b.serveWithState()
	if err != nil {
		return err
	}
	defer p.kill()
	// A service with no notes (the example deleted) has nothing to measure
	// here.
	if err := put(&http.Client{Timeout: 10 * time.Second}, url+"/notes/n0", []byte("probe")); err != nil && (strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "405")) {
		b.note("notes: the daemon has no PUT /notes/{name} (the example's): not measured (%v)", err)
		return p.stop()
	}
	smallP, smallURL, err := b.serveWithState()
	if err != nil {
		return err
	}
	defer smallP.kill()
	if err := putNotes(smallURL, "n", 0, small, size, 4); err != nil {
		return err
	}
	t0 := time.Now()
	if err := putNotes(url, "n", 0, large, size, 16); err != nil {
		return err
	}
	fill := time.Since(t0)
	syscall.Sync()
	var at100, at10k []time.Duration
	for round := range rounds {
		for _, big := range rotate([]bool{false, true}, round) {
			u, n, dst := smallURL, small, &at100
			if big {
				u, n, dst = url, large, &at10k
			}
			ds, err := putLatencies(u, n, perRound, size)
			if err != nil {
				return err
			}
			*dst = append(*dst, ds...)
		}
	}
	if err := smallP.stop(); err != nil {
		return err
	}
	b.rows = append(b.rows,
		row{measure: fmt.Sprintf("PUT latency p50, %d notes against %d (%d PUTs of 1 KiB each, %d rounds)", large, small, rounds*perRound, rounds),
			daemon: ms(median(at10k)), a: ms(median(at100)), ratio: fmt.Sprintf("%.2f×", float64(median(at10k))/float64(median(at100)))},
		row{measure: fmt.Sprintf("PUT latency p99, %d notes against %d", large, small),
			daemon: ms(pct(at10k, 99)), a: ms(pct(at100, 99)), ratio: fmt.Sprintf("%.2f×", float64(pct(at10k, 99))/float64(pct(at100, 99))),
			goal: "≤ 1.50×", state: metIf(round2(float64(pct(at10k, 99))/float64(pct(at100, 99))) <= 1.5)},
	)
	b.note("notes: the daemon column is a store with %d notes, the bare (a) column one with %d, timed in alternating rounds; filling to %d with 16 clients took %s (%.0f PUTs/s, each an fsync)",
		large, small, large, fill.Round(time.Millisecond), float64(large)/fill.Seconds())

	m, err := p.memory()
	if err != nil {
		return err
	}
	b.note("RSS with %d notes of 1 KiB stored: VmRSS %s = RssAnon %s + RssFile %s (the database is mapped: its pages are RssFile)", large, mib(m.rss), mib(m.anon), mib(m.file))

	// GET /notes/{name} against GET /, the same daemon, alternating.
	var notes, greeting []float64
	for round := range 3 {
		for _, path := range rotate([]string{"/notes/n42", "/"}, round) {
			r, err := b.wrk(p, url+path, b.opts.duration)
			if err != nil {
				return err
			}
			if path == "/" {
				greeting = append(greeting, r.rps)
			} else {
				notes = append(notes, r.rps)
			}
		}
	}
	b.rows = append(b.rows, row{
		measure: "GET /notes/{name} (1 KiB) throughput against GET /, req/s (median of 3)",
		daemon:  fmt.Sprintf("%.0f", medianF(notes)), a: fmt.Sprintf("%.0f", medianF(greeting)),
		ratio: fmt.Sprintf("%.2f×", medianF(notes)/medianF(greeting)),
	})
	b.note("GET /notes/{name}: the daemon column is GET /notes/n42 with %d notes stored, the bare (a) column GET / of the same daemon", large)
	return p.stop()
}
