package lifecycle

import (
	"os"
	"os/signal"
	"syscall"
)

// Signals are how the outside world asks a running daemon to stop or to
// reload: the signals main caught (CatchSignals), or, in a test, channels
// of its own. Stops and reloads wait in channels of their own, so that a
// SIGHUP waiting its turn does not crowd out the SIGTERM behind it. A nil
// channel never asks.
type Signals struct {
	// Stop asks for a stop: SIGTERM (`systemctl stop`) or SIGINT (Ctrl-C).
	// A second one during the drain cuts it short.
	Stop <-chan os.Signal
	// Reload asks for the configuration to be read again: SIGHUP
	// (`systemctl reload`).
	Reload <-chan os.Signal
}

// CatchSignals starts catching SIGTERM, SIGINT and SIGHUP, and returns them
// as Signals, each channel holding one signal until Run takes it. main
// calls it before anything else; docs/lifecycle.md, step 1, says why.
func CatchSignals() Signals {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	return Signals{Stop: stop, Reload: reload}
}
