package systemd

import (
	"fmt"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// Passed is what systemd hands a service as it starts it, in the
// environment and in file descriptors 3, 4, …: where to send sd_notify
// messages, the listening sockets, and the watchdog interval. Each is empty
// when the process does not run under systemd.
type Passed struct {
	Notifier  *Notifier
	Listeners Listeners
	// Unusable are the descriptors passed in that are not listening
	// stream sockets (a datagram socket, a connection, a file), by name,
	// each with what it is instead. They are closed; the daemon says so.
	Unusable map[string]error
	// Watchdog is the interval WatchdogSec= set; 0 when there is none, or
	// when WATCHDOG_PID names another process.
	Watchdog time.Duration
	// Credentials are the unit's credentials (LoadCredential= and the
	// like): the directory $CREDENTIALS_DIRECTORY names.
	Credentials Credentials
	// MemoryPressure is where systemd ≥ 254 says to watch for memory
	// pressure ($MEMORY_PRESSURE_WATCH, $MEMORY_PRESSURE_WRITE).
	MemoryPressure MemoryPressure
}

// Take takes what systemd passed to this process, once, at start. It
// removes from the environment what is meant for this process alone:
// NOTIFY_SOCKET, LISTEN_PID, LISTEN_PIDFDID, LISTEN_FDS, LISTEN_FDNAMES,
// WATCHDOG_USEC and WATCHDOG_PID. A child that inherited them could send
// messages systemd ignores (NotifyAccess=main) or take sockets that are not
// its own. (The credentials and the memory pressure watch are the unit's,
// shared by every process in it, and stay.) The sockets are this process's
// file descriptors, which is why Take reads the process itself rather than
// an environment passed in; everything after it gets the values.
func Take() (Passed, error) {
	watchdog, err := WatchdogInterval(os.Getenv, os.Getpid())
	if err != nil {
		return Passed{}, err
	}
	p := Passed{
		Notifier:    NewNotifier(os.Getenv("NOTIFY_SOCKET")),
		Watchdog:    watchdog,
		Credentials: Credentials{Dir: os.Getenv("CREDENTIALS_DIRECTORY")},
		MemoryPressure: MemoryPressure{
			Watch: os.Getenv("MEMORY_PRESSURE_WATCH"),
			Write: os.Getenv("MEMORY_PRESSURE_WRITE"),
		},
	}
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(k)
	}
	// The descriptors are ours if LISTEN_PID is our PID (go-systemd checks
	// it) and LISTEN_PIDFDID, where systemd set it, our pidfd's ID. If
	// not, they are left alone, as sd_listen_fds(3) leaves them: the
	// daemon opens its own socket.
	ours, err := pidfdIDMatches(os.Getenv, ownPidfdID)
	var files []*os.File
	if ours {
		// go-systemd names the files from LISTEN_FDNAMES and unsets the
		// LISTEN_ variables it knows.
		files = activation.Files(true)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(k)
	}
	if err != nil {
		return Passed{}, fmt.Errorf("socket activation: %w", err)
	}
	p.Listeners, p.Unusable = listeners(files)
	return p, nil
}
