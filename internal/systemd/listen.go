package systemd

import (
	"fmt"
	"net"
	"strings"
)

// Listeners are the listening sockets systemd passed in, by name: the name
// FileDescriptorName= gave a socket in its .socket unit (socket
// activation), or the FDNAME= a socket was stored under in the FD store.
type Listeners map[string][]net.Listener

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
