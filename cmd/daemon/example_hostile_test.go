package main

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/daemon/internal/systemd/systemdtest"
)

// TestEveryAcknowledgedWriteSurvivesSIGKILL: writers store notes as fast as
// the daemon acknowledges them, and the daemon is killed (SIGKILL, no
// drain) in the middle of that, fifteen times; each next daemon opens the
// database and has every note that got a 204.
func TestEveryAcknowledgedWriteSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	acknowledged := map[string]string{}
	for round := range 16 {
		ln := systemdtest.ListenTCP(t)
		cmd := commandWithState(t, dir, ln)
		p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
		p.WaitReady(t)
		url := "http://" + ln.Addr().String()

		// Every note the killed daemons acknowledged is there.
		for name, value := range acknowledged {
			if code, got := systemdtest.Get(t, url+"/notes/"+name); code != 200 || got != value {
				t.Fatalf("round %d: acknowledged note %s: %d, %d bytes; want it whole", round, name, code, len(got))
			}
		}
		if round == 15 {
			t.Logf("%d acknowledged notes, all there after 15 kills", len(acknowledged))
			p.Signal(t, syscall.SIGTERM)
			p.ExitCode(t)
			return
		}

		// Write notes as fast as the daemon acknowledges them, and kill it
		// in the middle of that. The client times out: after the kill, the
		// test's own copy of the socket still accepts and nobody answers.
		client := &http.Client{Timeout: time.Second}
		stop := make(chan struct{})
		var mu sync.Mutex
		var wg sync.WaitGroup
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
					name := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					value := strings.Repeat(name, 50)
					req, _ := http.NewRequest("PUT", url+"/notes/"+name, strings.NewReader(value))
					req.Header.Set("Authorization", "Bearer "+token)
					resp, err := client.Do(req)
					if err != nil {
						return // the daemon is gone
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusNoContent {
						mu.Lock()
						acknowledged[name] = value
						mu.Unlock()
					}
				}
			}()
		}
		// Kill once a few writes of this round were acknowledged.
		for {
			mu.Lock()
			n := len(acknowledged)
			mu.Unlock()
			if n >= (round+1)*5 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		close(stop)
		p.Signal(t, syscall.SIGKILL)
		p.ExitCode(t)
		wg.Wait()

	}
}

// commandWithState returns a daemon command that keeps its state in dir and serves ln.
func commandWithState(t *testing.T, dir string, ln *net.TCPListener) *exec.Cmd {
	cmd := command(t, "")
	for i, a := range cmd.Args {
		if a == "-state-dir" {
			cmd.Args[i+1] = dir
		}
	}
	systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
	return cmd
}

// TestASecondDaemonOnTheSameStateFailsAtOnce: a second daemon given the
// state directory a running one holds exits at once, saying which
// directory and why, in STATUS= as on stderr; the first serves on.
func TestASecondDaemonOnTheSameStateFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	ln := systemdtest.ListenTCP(t)
	first := systemdtest.Spawn(t, commandWithState(t, dir, ln), systemdtest.Listen(t, false))
	first.WaitReady(t)
	second := systemdtest.Spawn(t, commandWithState(t, dir, systemdtest.ListenTCP(t)), systemdtest.Listen(t, false))
	if code := second.ExitCode(t); code != 1 {
		t.Errorf("the second daemon's exit status: %d, want 1", code)
	}
	status := systemdtest.Fields(second.Notify.NextExcept(t, systemdtest.Wait, "STATUS=Starting"))["STATUS"]
	if !strings.Contains(status, dir) || !strings.Contains(status, "in use by another process") {
		t.Errorf("the second daemon's STATUS=%q; want the directory and why", status)
	}
	if code, _ := systemdtest.Get(t, "http://"+ln.Addr().String()+"/"); code != 200 {
		t.Errorf("the first daemon after the second failed: GET / = %d", code)
	}
	first.Signal(t, syscall.SIGTERM)
	first.ExitCode(t)
}
