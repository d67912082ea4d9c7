package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/daemon/internal/systemd/systemdtest"
)

func TestStateFileIsNeverTornBySIGKILL(t *testing.T) {
	dir := t.TempDir()
	stateFile := filepath.Join(dir, "notes.json")
	acknowledged := map[string]string{}
	for round := range 15 {
		ln := systemdtest.ListenTCP(t)
		cmd := commandWithState(t, dir, ln)
		p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
		p.WaitReady(t)
		url := "http://" + ln.Addr().String()

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

		// The file is whole JSON, and holds every note the daemon said it
		// had stored.
		data, err := os.ReadFile(stateFile)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var notes map[string]string
		if err := json.Unmarshal(data, &notes); err != nil {
			t.Fatalf("round %d: state file torn: %v (%d bytes)", round, err, len(data))
		}
		for name, value := range acknowledged {
			if notes[name] != value {
				t.Fatalf("round %d: acknowledged note %s lost", round, name)
			}
		}
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
