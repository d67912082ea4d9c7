//go:build systemd

package systemd_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestAFullDiskAnswers507AndLosesNothing: with the state directory on a
// 1 MiB tmpfs, PUTs fill it until the disk refuses one. That one gets 507
// saying the disk is full, the daemon stays healthy and serves reads, and
// after a restart every note that got a 204 is there.
func TestAFullDiskAnswers507AndLosesNothing(t *testing.T) {
	freshStart(t, baseConfig)
	stateDir := filepath.Join("/var/lib/private", prop(t, unit, "StateDirectory"))
	systemctl(t, "stop", unit)
	if out, err := tryCommand("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", stateDir); err != nil {
		t.Skipf("cannot mount a small tmpfs on %s here: %v: %s", stateDir, err, out)
	}
	t.Cleanup(func() {
		systemctl(t, "stop", unit)
		command(t, "umount", stateDir)
		systemctl(t, "reset-failed", unit)
		systemctl(t, "start", unit)
	})
	systemctl(t, "start", unit)
	pid := activeMainPID(t, unit, "start")
	url := baseURL(t)
	stored := map[string]string{}
	var refusal string
	for i := 0; refusal == "" && i < 500; i++ {
		name, note := fmt.Sprintf("full%d", i), strings.Repeat(strconv.Itoa(i%10), 8<<10)
		switch code, body := do(t, http.MethodPut, url+"/notes/"+name, note); code {
		case http.StatusNoContent:
			stored[name] = note
		case http.StatusInsufficientStorage:
			refusal = body
		default:
			t.Fatalf("PUT %s = %d %q, want 204 or 507", name, code, body)
		}
	}
	if !strings.Contains(refusal, "disk") {
		t.Fatalf("after %d notes of 8 KiB on 1 MiB: no 507 saying the disk is full (%q)", len(stored), refusal)
	}
	t.Logf("%d notes of 8 KiB stored, then: %s", len(stored), strings.TrimSpace(refusal))
	if code, body := get(t, url+"/healthz"); code != 200 {
		t.Errorf("/healthz on a full disk = %d %q", code, body)
	}
	check := func(when string) {
		t.Helper()
		for name, want := range stored {
			if code, got := get(t, url+"/notes/"+name); code != 200 || got != want {
				t.Fatalf("%s: GET %s = %d, %d bytes; want the note whole", when, name, code, len(got))
			}
		}
	}
	check("on the full disk")
	if got := propInt(t, unit, "MainPID"); got != pid {
		t.Errorf("MainPID %d, was %d: the daemon did not survive the full disk", got, pid)
	}
	systemctl(t, "restart", unit)
	activeMainPID(t, unit, "restart")
	check("after a restart")
}

// TestDaemonReexecAndReloadKeepTheProtocol: systemctl daemon-reexec and
// daemon-reload while the daemon serves under load refuse no request, and
// afterwards systemd still hears the daemon: the watchdog is fed, a reload
// is answered and its STATUS= shown.
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
	writeConfig(t, strings.Replace(baseConfig, "hello from the scenarios", "hello after the re-exec", 1))
	systemctl(t, "reload", unit)
	eventually(t, 10*time.Second, "the reloaded greeting", func() (bool, string) {
		_, body := get(t, baseURL(t)+"/")
		return strings.Contains(body, "after the re-exec"), body
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
// request while systemd-journald restarts. Every line reaches the journal:
// as its own entry, through the socket systemd holds for journald while it
// restarts, or, if the journal refused one, as a text line on stderr (the
// handler's fallback), which journald stores too.
func TestJournaldRestartLosesNoLogRecord(t *testing.T) {
	pid := freshStart(t, baseConfig)
	cursor := journalCursor(t)
	url := baseURL(t)
	var (
		mu   sync.Mutex
		sent int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := 1; ; seq++ {
			resp, err := client.Get(fmt.Sprintf("%s/debug/log?seq=%d", url, seq))
			if err != nil {
				t.Errorf("GET /debug/log?seq=%d: %v", seq, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("GET /debug/log?seq=%d = %d", seq, resp.StatusCode)
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
		} else if m, _ := e["MESSAGE"].(string); strings.Contains(m, "debug log line") {
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

// TestSIGKILLMidWritesLosesNoAcknowledgedWrite: writers store notes as
// fast as the daemon acknowledges them; the daemon is killed with SIGKILL
// in the middle of that and systemd restarts it. The database opens and
// every note that got a 204, before the kill or after, is there.
func TestSIGKILLMidWritesLosesNoAcknowledgedWrite(t *testing.T) {
	pid := freshStart(t, baseConfig)
	url := baseURL(t)
	token := apiToken(t)
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("kill-w%d-%d", w, i)
				req, _ := http.NewRequest(http.MethodPut, url+"/notes/"+name, strings.NewReader(strings.Repeat(name, 20)))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err != nil {
					continue // in flight when the daemon died
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusNoContent {
					mu.Lock()
					acked[name] = strings.Repeat(name, 20)
					mu.Unlock()
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, 15*time.Second, "writes acknowledged", func() (bool, string) { return count() >= 100, fmt.Sprint(count()) })
	restarts := propInt(t, unit, "NRestarts")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, unit, restarts, pid, 30*time.Second)
	before := count()
	eventually(t, 15*time.Second, "writes acknowledged after the restart", func() (bool, string) { return count() >= before+100, fmt.Sprint(count()) })
	close(stop)
	wg.Wait()
	for name, want := range acked {
		if code, got := get(t, url+"/notes/"+name); code != 200 || got != want {
			t.Fatalf("acknowledged note %s after the kill: %d %q", name, code, got)
		}
	}
	t.Logf("%d notes acknowledged across a SIGKILL and the restart, all there", len(acked))
}
