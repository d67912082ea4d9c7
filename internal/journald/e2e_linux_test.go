package journald

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"example.com/daemon/internal/journald/journaldtest"
)

// nobody is the user and group the unprivileged sender runs as.
const nobody = 65534

// senderEnv, set in a child process's environment, makes the test that
// started it play the sender, with this value as SYSLOG_IDENTIFIER.
const senderEnv = "JOURNALD_TEST_UNPRIVILEGED_SENDER"

// A daemon that runs as its own user, in a sandbox where /dev/shm is
// read-only (systemd.exec(5): ProtectSystem=strict with PrivateDevices=, or
// a minimal container), still gets a 20 MiB entry into the journal: too
// big for any datagram, so it goes as a sealed memfd, which needs no file
// system.
func TestUnprivilegedSenderWithoutDevShmStoresLargeEntry(t *testing.T) {
	const size = 20 << 20
	if id := os.Getenv(senderEnv); id != "" {
		sendLargeEntryAsNobody(t, id, size)
		return
	}
	journaldtest.Need(t)
	id := uniqueIdentifier()

	// The test binary again, running only this test, as the sender. It
	// starts as root in a mount namespace of its own (Unshareflags also
	// makes its mounts private, so what it mounts stays in it), which
	// is what it needs to mount over /dev/shm before it drops to nobody.
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), senderEnv+"="+id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sender: %v\n%.4000s", err, out)
	}

	entries := journaldtest.Read(t, "SYSLOG_IDENTIFIER="+id)
	if len(entries) != 1 {
		t.Fatalf("journal has %d entries with SYSLOG_IDENTIFIER=%s, want 1; sender said:\n%.4000s", len(entries), id, out)
	}
	if got := entries[0]["_UID"]; len(got) != 1 || got[0] != strconv.Itoa(nobody) {
		t.Errorf("_UID = %q, want %d: the sender was not unprivileged", got, nobody)
	}
	if got := entries[0]["BIG"]; len(got) != 1 || len(got[0]) != size || got[0] != bigValue(size) {
		t.Errorf("BIG did not arrive whole: want %d bytes", size)
	}
}

// bigValue is a value of size bytes, in lines, as a stack dump might be.
func bigValue(size int) string {
	return strings.Repeat("0123456789abcde\n", size/16+1)[:size]
}

// sendLargeEntryAsNobody is the sender's side: it makes /dev/shm
// unwritable, becomes nobody, and logs one entry of about size bytes.
func sendLargeEntryAsNobody(t *testing.T, id string, size int) {
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k"); err != nil {
		t.Fatalf("mount a read-only /dev/shm: %v", err)
	}
	// Go sets the IDs of every thread of the process (syscall.Setuid),
	// so no thread keeps root. Groups first: after setuid there is no
	// permission left to change them.
	for _, err := range []error{syscall.Setgroups(nil), syscall.Setgid(nobody), syscall.Setuid(nobody)} {
		if err != nil {
			t.Fatalf("become nobody: %v", err)
		}
	}
	if f, err := os.CreateTemp("/dev/shm", "probe"); !errors.Is(err, syscall.EROFS) {
		f.Close()
		t.Fatalf("creating a file in /dev/shm: got error %v, want EROFS", err)
	}

	var fallback bytes.Buffer
	logger := slog.New(NewHandler(&Socket{}, Options{Identifier: id, Fallback: &fallback}))
	logger.Info("big", "big", bigValue(size))
	if fallback.Len() > 0 {
		t.Fatalf("the journal refused the record:\n%.1000s", &fallback)
	}
}
