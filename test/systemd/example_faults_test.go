//go:build systemd

// The example app's scenarios under systemd: its notes on a full disk and
// through a SIGKILL in the middle of writes. They are the example's, and
// leave with it (make drop-example); the kit's scenarios use nothing of
// them.

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
	freshStart(t, exampleConfig)
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

// TestSIGKILLMidWritesLosesNoAcknowledgedWrite: writers store notes as
// fast as the daemon acknowledges them; the daemon is killed with SIGKILL
// in the middle of that and systemd restarts it. The database opens and
// every note that got a 204, before the kill or after, is there.
func TestSIGKILLMidWritesLosesNoAcknowledgedWrite(t *testing.T) {
	pid := freshStart(t, exampleConfig)
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
