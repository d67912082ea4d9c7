package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// benchToken is the API token the daemon gets in its credentials
// directory, as LoadCredential= would give it.
const benchToken = "bench-token"

// serveWithState starts the daemon with a state directory and a
// credentials directory of its own, both fresh, as serve starts a server.
func (b *bench) serveWithState() (*process, string, error) {
	state, err := os.MkdirTemp(b.dir, "state-")
	if err != nil {
		return nil, "", err
	}
	creds := filepath.Join(state, "credentials")
	if err := os.Mkdir(creds, 0o700); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(filepath.Join(creds, "api-token"), []byte(benchToken), 0o600); err != nil {
		return nil, "", err
	}
	return b.serve(&server{
		name: "daemon", path: b.daemon.path,
		args: []string{"-state-dir", state},
		env:  []string{"CREDENTIALS_DIRECTORY=" + creds},
	})
}

// measureSlowloris: a normal client's latency, one request every 20 ms on
// a new connection, without and then under slowhttptest's slowloris (3 ×
// max_connections connections, headers a line every 10 s, 500 new a
// second, for -slowloris-for).
func (b *bench) measureSlowloris() error {
	tool, err := exec.LookPath("slowhttptest")
	if err != nil {
		b.note("slowloris: slowhttptest is not installed (apt-get install slowhttptest); not measured")
		return nil
	}
	p, url, err := b.serveWithState()
	if err != nil {
		return err
	}
	defer p.kill()
	normal := func(d time.Duration) ([]time.Duration, error) {
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		var ds []time.Duration
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			t0 := time.Now()
			resp, err := client.Get(url + b.opts.path)
			if err != nil {
				return ds, err
			}
			resp.Body.Close()
			ds = append(ds, time.Since(t0))
		}
		return ds, nil
	}
	quiet, err := normal(10 * time.Second)
	if err != nil {
		return err
	}
	conns := 3 * 1024 // the default max_connections, 1024
	secs := strconv.Itoa(int(b.opts.slowlorisFor.Seconds()))
	var out bytes.Buffer
	attack := exec.Command(tool, "-c", strconv.Itoa(conns), "-H", "-i", "10", "-r", "500", "-l", secs, "-u", url+b.opts.path)
	attack.Stdout, attack.Stderr = &out, &out
	if err := attack.Start(); err != nil {
		return err
	}
	// The attack's first seconds open its connections; measure once they
	// are there, until it ends.
	time.Sleep(time.Duration(conns/500+1) * time.Second)
	under, err := normal(b.opts.slowlorisFor - time.Duration(conns/500+2)*time.Second)
	attackErr := attack.Wait()
	if err != nil {
		return fmt.Errorf("a normal client under the slowloris: %w\n%s", err, out.String())
	}
	if attackErr != nil {
		b.note("slowloris: slowhttptest: %v\n%s", attackErr, out.String())
	}
	worst := slices.Max(under)
	for _, q := range []struct {
		name string
		f    func([]time.Duration) time.Duration
	}{
		{"p50", median},
		{"p99", func(ds []time.Duration) time.Duration { return pct(ds, 99) }},
		{"max", slices.Max[[]time.Duration]},
	} {
		r := row{
			measure: fmt.Sprintf("normal client under slowhttptest -c %d, %s (%d requests, against %d without)", conns, q.name, len(under), len(quiet)),
			daemon:  ms(q.f(under)), a: ms(q.f(quiet)), ratio: fmt.Sprintf("%.2f×", float64(q.f(under))/float64(q.f(quiet))),
		}
		if q.name == "max" {
			r.goal, r.state = "< 100 ms", metIf(worst < 100*time.Millisecond)
		}
		b.rows = append(b.rows, r)
	}
	b.note("slowloris: the daemon column is a normal client under the attack, the bare (a) column the same client without it; max_connections 1024, connections shed: %s", scrape(url+"/metrics", "daemon_http_connections_shed_total"))
	return p.stop()
}

// scrape returns one metric's value from a /metrics page, or "?".
func scrape(url, name string) string {
	resp, err := http.Get(url)
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range bytes.Split(body, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			return string(v)
		}
	}
	return "?"
}
