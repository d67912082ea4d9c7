package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	requests int64
	cpu      time.Duration // the server's CPU time during the run
	busy     float64       // the share of the run that other tasks waited for a CPU
}

// wrk runs one wrk load against p at url: one thread (it has one CPU),
// the configured connections, with its latency distribution. It also
// reads the CPU time p spent meanwhile.
func (b *bench) wrk(p *process, url string, d time.Duration, extra ...string) (wrkResult, error) {
	cpu0, err := p.cpuTime()
	if err != nil {
		return wrkResult{}, err
	}
	stall0, t0 := cpuPressure(), time.Now()
	args := append([]string{"-t1", "-c" + strconv.Itoa(b.opts.conns),
		"-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency"}, extra...)
	out, err := exec.Command(b.opts.wrk, append(args, url)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	stall1, t1 := cpuPressure(), time.Now()
	cpu1, err := p.cpuTime()
	if err != nil {
		return wrkResult{}, err
	}
	r, err := parseWrk(out)
	r.cpu = cpu1 - cpu0
	r.busy = float64(stall1-stall0) / float64(t1.Sub(t0))
	return r, err
}

// parseWrk reads what wrk --latency prints:
//
//	  Latency Distribution
//	     50%  412.00us
//	     ...
//	     99%    1.94ms
//	  385123 requests in 5.00s, 49.21MB read
//	Requests/sec:  77011.87
func parseWrk(out []byte) (wrkResult, error) {
	var r wrkResult
	var err error
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, err = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50, err = wrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99, err = wrkDuration(f[1])
		case len(f) > 2 && f[1] == "requests" && f[2] == "in":
			r.requests, err = strconv.ParseInt(f[0], 10, 64)
		case strings.Contains(line, "Non-2xx") || strings.Contains(line, "Socket errors"):
			err = fmt.Errorf("%s", strings.TrimSpace(line))
		}
		if err != nil {
			return r, fmt.Errorf("wrk: %w\n%s", err, out)
		}
	}
	if r.rps == 0 || r.p50 == 0 || r.p99 == 0 || r.requests == 0 {
		return r, fmt.Errorf("wrk: no result in its output:\n%s", out)
	}
	return r, nil
}

// wrkDuration parses wrk's 412.00us, 1.94ms, 1.02s.
func wrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   float64
	}{{"us", 1e3}, {"ms", 1e6}, {"s", 1e9}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			x, err := strconv.ParseFloat(v, 64)
			return time.Duration(x * u.unit), err
		}
	}
	return 0, fmt.Errorf("duration %q", s)
}

// load sends exactly n GET requests to url over conns keep-alive
// connections, and checks every answer.
func load(url string, n, conns int) error {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Go(func() {
			var body bytes.Buffer
			for next.Add(1) <= int64(n) {
				resp, err := client.Get(url)
				if err != nil {
					errs <- err
					return
				}
				body.Reset()
				_, err = io.Copy(&body, resp.Body)
				resp.Body.Close()
				if err != nil {
					errs <- fmt.Errorf("GET %s: %w", url, err)
					return
				}
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("GET %s: %s", url, resp.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// cpuPressure is the total time, since boot, during which some task was
// ready to run but waited for a CPU (the "some" line of /proc/pressure/cpu,
// PSI). The server and wrk each have a CPU of their own, so while they run
// it grows only when other processes want the same CPUs: a shared machine
// that is busy. It is 0 where the kernel has no PSI.
func cpuPressure() time.Duration {
	data, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0
	}
	some, _, _ := strings.Cut(string(data), "\n")
	_, total, ok := strings.Cut(some, "total=")
	if !ok {
		return 0
	}
	us, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	if err != nil {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}
