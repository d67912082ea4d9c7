//go:build systemd

package systemd_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDaemonReexecAndReloadKeepTheProtocol: systemctl daemon-reexec and
// daemon-reload while the daemon serves under load refuse no request, and
// afterwards systemd still hears the daemon: the watchdog is fed, a reload
// is answered (the new config, test instruments off, in force) and its
// STATUS= shown.
func TestDaemonReexecAndReloadKeepTheProtocol(t *testing.T) {
	pid := freshStart(t, baseConfig)
	l := startLoad(t, baseURL(t), 4)
	l.served(t, 50, "the start")
	systemctl(t, "daemon-reexec")
	systemctl(t, "daemon-reload")
	l.served(t, 50, "the re-exec and the reload")
	// WatchdogTimestamp moves with each WATCHDOG=1 systemd takes.
	since := propInt(t, unit, "WatchdogTimestampMonotonic")
	eventually(t, 15*time.Second, "a watchdog ping after the re-exec", func() (bool, string) {
		n := propInt(t, unit, "WatchdogTimestampMonotonic")
		return n > since, fmt.Sprintf("WatchdogTimestampMonotonic=%d (was %d)", n, since)
	})
	writeConfig(t, instrumentsConfig(false))
	systemctl(t, "reload", unit)
	eventually(t, 10*time.Second, "the reloaded config, instruments off, in force", func() (bool, string) {
		code := instrumentsAnswer(t)
		return code == http.StatusNotFound, fmt.Sprintf("GET /debug/sleep?d=0s = %d, want 404", code)
	})
	eventually(t, 10*time.Second, "STATUS= after the reload", func() (bool, string) {
		s := prop(t, unit, "StatusText")
		return strings.HasPrefix(s, "Serving on "), s
	})
	l.served(t, 50, "the reload")
	l.halt()
	if got := propInt(t, unit, "MainPID"); got != pid {
		t.Errorf("MainPID %d, was %d: restarted", got, pid)
	}
	if l.refused.Load()+l.failed.Load() != 0 {
		t.Errorf("%d requests refused, %d failed:\n%s", l.refused.Load(), l.failed.Load(), l.errorList())
	}
	t.Logf("%d requests served through daemon-reexec, daemon-reload and a reload, none failed", l.ok.Load())
}

// TestJournaldRestartLosesNoLogRecord: the daemon logs a numbered line per
// request (the test instrument POST /debug/log?seq=N) while
// systemd-journald restarts. Every line reaches the journal:
// as its own entry, through the socket systemd holds for journald while it
// restarts, or, if the journal refused one, as a text line on stderr (the
// handler's fallback), which journald stores too.
func TestJournaldRestartLosesNoLogRecord(t *testing.T) {
	pid := freshStart(t, baseConfig)
	cursor := journalCursor(t)
	url := baseURL(t)
	auth := "Bearer " + apiToken(t)
	var (
		mu   sync.Mutex
		sent int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := 1; ; seq++ {
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/debug/log?seq=%d", url, seq), nil)
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("POST /debug/log?seq=%d: %v", seq, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("POST /debug/log?seq=%d = %d, want 204", seq, resp.StatusCode)
				return
			}
			mu.Lock()
			sent = seq
			stop := sent >= 3000
			mu.Unlock()
			if stop {
				return
			}
		}
	}()
	eventually(t, 10*time.Second, "lines logged", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return sent >= 500, fmt.Sprint(sent)
	})
	systemctl(t, "restart", "systemd-journald.service")
	<-done
	command(t, "journalctl", "--sync")
	seen := map[int]string{}
	for _, e := range journal(t, cursor, "_PID="+strconv.Itoa(pid)) {
		if v, ok := e["SEQ"].(string); ok {
			n, _ := strconv.Atoi(v)
			seen[n] = "native"
		} else if m, _ := e["MESSAGE"].(string); strings.Contains(m, "instrument log line") {
			if _, rest, ok := strings.Cut(m, "seq="); ok {
				n, _ := strconv.Atoi(strings.Fields(rest)[0])
				seen[n] = "fallback"
			}
		}
	}
	var missing []int
	fallback := 0
	for seq := 1; seq <= sent; seq++ {
		switch seen[seq] {
		case "":
			missing = append(missing, seq)
		case "fallback":
			fallback++
		}
	}
	t.Logf("%d lines logged across the journald restart: %d as entries, %d through the fallback, %d missing", sent, sent-fallback-len(missing), fallback, len(missing))
	if len(missing) > 0 {
		t.Errorf("%d log lines lost, the first %v", len(missing), missing[:min(len(missing), 10)])
	}
}
