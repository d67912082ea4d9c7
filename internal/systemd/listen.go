package systemd

import (
	"fmt"
	"net"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
)

// Listeners are the listening sockets systemd passed in (socket activation),
// by the names that FileDescriptorName= gave them in the .socket units.
type Listeners map[string][]net.Listener

// ActivatedListeners takes the sockets passed with LISTEN_FDS, LISTEN_PID and
// LISTEN_FDNAMES (sd_listen_fds_with_names(3)) and removes those variables from
// the environment, so that a child process does not take them for its own.
// The sockets are file descriptors 3, 4, … of this process, which is why they
// come from the process itself rather than from an injected environment.
// Without socket activation it returns an empty map.
func ActivatedListeners() (Listeners, error) {
	ls, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	return Listeners(ls), nil
}

// Take returns the listener passed under name, or nil when there is none, and
// removes it from l.
func (l Listeners) Take(name string) (net.Listener, error) {
	ls, ok := l[name]
	if !ok {
		return nil, nil
	}
	delete(l, name)
	if len(ls) != 1 {
		l.closeAll(ls)
		return nil, fmt.Errorf("socket activation: %d sockets named %q, want one", len(ls), name)
	}
	return ls[0], nil
}

// TakeMain returns the main listener: the one named name, or else a single
// socket passed without a name of its own (a .socket unit without
// FileDescriptorName= passes its unit name, systemd-socket-activate without
// --fdname passes none, which go-systemd turns into LISTEN_FD_<n>).
func (l Listeners) TakeMain(name string) (net.Listener, error) {
	if _, ok := l[name]; ok || len(l) != 1 {
		return l.Take(name)
	}
	for other := range l {
		if strings.HasPrefix(other, "LISTEN_FD_") || strings.HasSuffix(other, ".socket") {
			return l.Take(other)
		}
	}
	return nil, nil
}

// Close closes every listener still in l: sockets passed in that the daemon
// has no use for. It returns their names, to be reported.
func (l Listeners) Close() []string {
	var names []string
	for name, ls := range l {
		names = append(names, name)
		l.closeAll(ls)
		delete(l, name)
	}
	return names
}

func (Listeners) closeAll(ls []net.Listener) {
	for _, x := range ls {
		x.Close()
	}
}
