package service

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// memoryLimit is the Go memory limit the daemon chose at start, and why.
type memoryLimit struct {
	Limit  int64  // what debug.SetMemoryLimit was given; math.MaxInt64 for none
	Cgroup int64  // the cgroup's limit it was taken from; 0 for none
	From   string // the file it was read from, or "GOMEMLIMIT"
}

// attr is the limit for the log line at start.
func (l memoryLimit) attr() slog.Attr {
	attrs := []any{"bytes", l.Limit}
	if l.Limit == math.MaxInt64 {
		attrs = []any{"bytes", "none"}
	}
	if l.From != "" {
		attrs = append(attrs, "from", l.From)
	}
	if l.Cgroup != 0 {
		attrs = append(attrs, "cgroup_limit", l.Cgroup)
	}
	return slog.Group("GOMEMLIMIT", attrs...)
}

// memoryLimitShare is the part of the cgroup's limit the Go heap may use;
// the rest is for what the cgroup counts beside it (docs/resources.md).
const memoryLimitShare = 0.9

// setMemoryLimit sets the Go runtime's soft memory limit from the cgroup
// the daemon runs in, unless GOMEMLIMIT is set, which the runtime has read
// already and which is then left as it is. The garbage collector then
// works harder as the heap nears the limit (runtime/debug.SetMemoryLimit),
// rather than letting it grow to twice the live heap (GOGC=100) and the
// kernel throttle the daemon at MemoryHigh= or kill it at MemoryMax=
// (docs/resources.md measures both).
//
// The limit is the lowest of memory.high and memory.max on cgroup v2, or
// memory.limit_in_bytes on v1, in the daemon's cgroup and every cgroup
// above it. root is "/" but in tests. Why this is the daemon's own code and
// not a library's: docs/resources.md.
func setMemoryLimit(root string, getenv func(string) string) (memoryLimit, error) {
	if getenv("GOMEMLIMIT") != "" {
		return memoryLimit{Limit: debug.SetMemoryLimit(-1), From: "GOMEMLIMIT"}, nil
	}
	limit, from, err := cgroupMemoryLimit(root)
	if err != nil || limit == 0 {
		return memoryLimit{Limit: debug.SetMemoryLimit(-1)}, err
	}
	l := memoryLimit{Limit: int64(float64(limit) * memoryLimitShare), Cgroup: limit, From: from}
	debug.SetMemoryLimit(l.Limit)
	return l, nil
}

// cgroupMemoryLimit returns the lowest memory limit of the process's cgroup
// and its ancestors, and the file that set it; 0 when there is none.
func cgroupMemoryLimit(root string) (int64, string, error) {
	f, err := os.Open(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	// Lines are ID:CONTROLLERS:PATH. cgroup v2's is 0::PATH; on v1, or on a
	// hybrid system, the memory controller has a line of its own.
	var v1, v2 string
	s := bufio.NewScanner(f)
	for s.Scan() {
		id, rest, _ := strings.Cut(s.Text(), ":")
		controllers, path, _ := strings.Cut(rest, ":")
		switch {
		case id == "0" && controllers == "":
			v2 = path
		case strings.Contains(","+controllers+",", ",memory,"):
			v1 = path
		}
	}
	if err := s.Err(); err != nil {
		return 0, "", err
	}
	switch {
	case v1 != "":
		return lowestLimit(filepath.Join(root, "sys/fs/cgroup/memory"), v1, "memory.limit_in_bytes")
	case v2 != "":
		return lowestLimit(filepath.Join(root, "sys/fs/cgroup"), v2, "memory.high", "memory.max")
	}
	return 0, "", nil
}

// lowestLimit walks from mount/path up to mount and returns the lowest
// value in the files named, which may be missing (the root cgroup has
// none) or say "max" (v2) or a number past 2^62 (v1) for no limit.
func lowestLimit(mount, path string, files ...string) (lowest int64, from string, err error) {
	for dir := filepath.Join(mount, path); ; dir = filepath.Dir(dir) {
		for _, name := range files {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return 0, "", err
			}
			v := string(bytes.TrimSpace(b))
			if v == "max" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, "", fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
			}
			if n < math.MaxInt64/2 && (lowest == 0 || n < lowest) {
				lowest, from = n, filepath.Join(dir, name)
			}
		}
		if dir == mount || len(dir) < len(mount) {
			return lowest, from, nil
		}
	}
}

// openFilesNeeded is what the daemon needs beside its connections: the
// listeners, the notify and journal sockets, the state and the Go
// runtime's own (epoll, its wake-up pipe).
const openFilesNeeded = 64

// checkOpenFiles says when max_connections cannot all be open at once
// under the process's limit on open files (LimitNOFILE= in the unit; Go
// raises the soft limit to the hard one at start). Past the limit accept
// fails with EMFILE: net/http logs "Accept error" and retries with a
// growing pause, while new clients wait in the backlog.
func checkOpenFiles(maxConnections int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if need := uint64(maxConnections) + openFilesNeeded; uint64(l.Cur) < need { // int64 on FreeBSD
		return fmt.Errorf("max_connections = %d needs %d open files, more than the limit (%d): raise LimitNOFILE= in the unit, or lower max_connections", maxConnections, need, l.Cur)
	}
	return nil
}
