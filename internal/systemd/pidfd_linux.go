package systemd

// The pidfd inode ID that LISTEN_PIDFDID is compared with: pidfds and pidfs
// are Linux's. pidfd_other.go has nothing to compare elsewhere.

import (
	"encoding/binary"
	"math/bits"
	"os"

	"golang.org/x/sys/unix"
)

// ownPidfdID returns the inode ID of a pidfd for this process: on pidfs
// (Linux ≥ 6.9) a 64-bit number that names the process for as long as the
// kernel runs, never reused as PIDs are. It reports false where there is no
// such number: pidfd_open(2) unsupported or refused, or pidfds not on pidfs
// (older kernels put every pidfd on one anonymous inode). sd_listen_fds(3)
// then skips the comparison, and so does the caller.
//
// It reads the ID as systemd does (pidfd_get_inode_id_impl() in
// src/basic/pidfd-util.c): from the pidfd's file handle, else, on a 64-bit
// system, from fstat(2)'s st_ino. A 32-bit st_ino cannot hold it, and there
// the PID alone decides.
func ownPidfdID() (uint64, bool) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type != unix.PID_FS_MAGIC {
		return 0, false
	}
	if h, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH); err == nil && len(h.Bytes()) == 8 {
		return binary.NativeEndian.Uint64(h.Bytes()), true
	}
	var st unix.Stat_t
	if bits.UintSize != 64 || unix.Fstat(fd, &st) != nil {
		return 0, false
	}
	return st.Ino, true
}
