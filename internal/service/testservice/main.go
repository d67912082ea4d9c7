// Command testservice is the service the kit's own process tests run
// (internal/service): a greeting that tells one process from another, a
// slow endpoint and a health check that a reload can fail, with no state.
// It belongs to the kit's tests; a new service starts from internal/app.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/service"
	"example.com/daemon/internal/systemd"
)

// settings are the service's keys in the configuration file.
type settings struct {
	Greeting  string `toml:"greeting"`
	FailCheck bool   `toml:"fail_check"` // to see the watchdog starve
}

type app struct{ cfg atomic.Pointer[settings] }

func (a *app) Start(context.Context, lifecycle.Progress) error { return nil }
func (a *app) Apply(s settings)                                { a.cfg.Store(&s) }
func (a *app) Close() error                                    { return nil }

func (a *app) Check(context.Context) error {
	if a.cfg.Load().FailCheck {
		return errors.New("fail_check is set")
	}
	return nil
}

func (a *app) Routes(handle func(string, http.Handler)) {
	handle("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, a.cfg.Load().Greeting+"\n")
	}))
	handle("GET /sleep", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprintf(w, "slept %s\n", d)
	}))
}

func main() {
	signals := lifecycle.CatchSignals() // before anything else, as cmd/daemon does
	passed, err := systemd.Take()
	if err == nil {
		err = service.Run(context.Background(), service.AppSpec[settings]{
			AppDefaults: func() settings { return settings{Greeting: "Hello!"} },
			New: func(d service.Deps[settings]) (service.App[settings], error) {
				a := &app{}
				a.Apply(d.Config)
				return a, nil
			},
		}, os.Args, os.Getenv, signals, passed, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(service.ExitCode(err))
	}
}
