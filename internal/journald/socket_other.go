//go:build !linux

package journald

import "errors"

// SystemSocket is where the system's journald reads native entries.
const SystemSocket = "/run/systemd/journal/socket"

// Socket is the Transport to a journald. journald runs on Linux only:
// elsewhere every write fails, and a Handler with a Fallback logs there.
type Socket struct {
	// Path of journald's socket; empty means SystemSocket.
	Path string
}

// WriteMsg fails: there is no journald to send to.
func (*Socket) WriteMsg([]byte) error { return errors.New("journald runs on Linux only") }

// Close does nothing.
func (*Socket) Close() error { return nil }
