package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/systemd"
	"example.com/daemon/internal/systemd/systemdtest"
)

// These tests are the example service's, run as a process (built once in
// TestMain) and in this process through run. What every service on the kit
// does is tested with the kit, in internal/service and internal/lifecycle;
// these go when the example goes.

var binary string // path of the built daemon; set once by TestMain

func TestMain(m *testing.M) {
	systemdtest.Main(m, ".", "daemon", &binary)
}

// token is the api-token credential command gives the daemon.
const token = "process-test-token"

// command returns an exec.Cmd for the daemon, with a fresh state directory,
// a config file holding config and a credentials directory, as systemd's
// LoadCredential= makes it, holding the api-token.
func command(t *testing.T, config string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := systemdtest.Command(t, binary, config, args...)
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "api-token"), []byte(token+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, "CREDENTIALS_DIRECTORY="+creds)
	return cmd
}

func TestTheExampleNeedsAStateDirectory(t *testing.T) {
	cmd := command(t, "", "-listen", "127.0.0.1:0")
	cmd.Args = slices.Delete(cmd.Args, 3, 5) // -state-dir DIR
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("without a state directory: %v, want exit status 2", err)
	}
	if want := "no state directory: pass -state-dir, or run under systemd with StateDirectory="; !strings.Contains(out.String(), want) {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

// TestReloadAppliesTheNewConfig: a reload of the daemon's file applies
// what it now says, to the example app (the greeting at once) and to the
// lifecycle (drain_timeout at the next stop, where EXTEND_TIMEOUT_USEC asks
// for it), and keeps all of it when the new file is invalid.
func TestReloadAppliesTheNewConfig(t *testing.T) {
	notify := systemdtest.Listen(t, false)
	reloads := make(chan os.Signal, 1)
	path, stop := runInProcess(t, `greeting = "one"`, nil, lifecycle.Signals{Reload: reloads}, systemd.Passed{Notifier: systemd.NewNotifier(notify.Addr)})
	notify.Next(t, systemdtest.Wait) // STATUS=Starting
	ready := systemdtest.Fields(notify.Next(t, systemdtest.Wait))
	addr, _, ok := strings.Cut(strings.TrimPrefix(ready["STATUS"], "Serving on "), " ")
	if !ok {
		t.Fatalf("READY=1 with STATUS=%q: no address", ready["STATUS"])
	}
	greeting := func() string {
		t.Helper()
		resp, err := (&http.Client{Timeout: systemdtest.Wait}).Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	reload := func(config string) map[string]string {
		t.Helper()
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		reloads <- syscall.SIGHUP
		notify.Next(t, systemdtest.Wait) // RELOADING=1
		return systemdtest.Fields(notify.Next(t, systemdtest.Wait))
	}
	if got := greeting(); got != "one\n" {
		t.Fatalf("GET / = %q, want one", got)
	}
	reload("greeting = \"two\"\ndrain_timeout = \"3s\"")
	if got := greeting(); got != "two\n" {
		t.Errorf("after the reload, GET / = %q, want two", got)
	}
	failed := reload("greeting = \"three\"\ndrain_timeout = \"forever\"")
	if !strings.Contains(failed["STATUS"], "reload failed") || !strings.Contains(failed["STATUS"], path) {
		t.Errorf("after an invalid reload, STATUS=%q, want the failure and the file", failed["STATUS"])
	}
	if got := greeting(); got != "two\n" {
		t.Errorf("after an invalid reload, GET / = %q, want the old two", got)
	}
	go stop()
	stopping := systemdtest.Fields(notify.Next(t, systemdtest.Wait))
	if got := stopping["EXTEND_TIMEOUT_USEC"]; got != "8000000" {
		t.Errorf("stopping with drain_timeout 3s from the reload: EXTEND_TIMEOUT_USEC=%q, want 8000000 (3 s + 5 s)", got)
	}
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
}

// runInProcess calls run with env as its whole environment, signals as
// the signals main caught, what systemd passed as passed, and a listener of
// its own. It returns the config file's path, and a function that stops run
// and returns its error.
func runInProcess(t *testing.T, config string, env map[string]string, signals lifecycle.Signals, passed systemd.Passed) (string, func() error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"daemon", "-config", path, "-state-dir", dir, "-listen", "127.0.0.1:0"},
			func(k string) string { return env[k] }, signals, passed, io.Discard, io.Discard)
	}()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { stop() })
	return path, stop
}
