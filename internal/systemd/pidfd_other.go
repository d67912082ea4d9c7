//go:build !linux

package systemd

// Only Linux has pidfds: elsewhere LISTEN_PIDFDID has nothing to be
// compared with, and LISTEN_PID alone decides.
func ownPidfdID() (uint64, bool) { return 0, false }
