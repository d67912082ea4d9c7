package service

import (
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
)

// cgroupTree writes files under a directory laid out as / is: paths are
// relative to it, each with its content.
func cgroupTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for path, body := range files {
		path = filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestTheMemoryLimitFollowsTheCgroup(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	const unit = "sys/fs/cgroup/system.slice/app.service/"
	const v1unit = "sys/fs/cgroup/memory/system.slice/app.service/"
	for _, tc := range []struct {
		name   string
		files  map[string]string
		cgroup int64
		from   string
	}{
		{"v2, memory.high below memory.max", map[string]string{
			"proc/self/cgroup":   "0::/system.slice/app.service",
			unit + "memory.high": "201326592", unit + "memory.max": "268435456",
		}, 201326592, unit + "memory.high"},
		{"v2, memory.max alone", map[string]string{
			"proc/self/cgroup":   "0::/system.slice/app.service",
			unit + "memory.high": "max", unit + "memory.max": "268435456",
		}, 268435456, unit + "memory.max"},
		{"v2, a slice's limit below the unit's", map[string]string{
			"proc/self/cgroup":                      "0::/system.slice/app.service",
			unit + "memory.max":                     "268435456",
			"sys/fs/cgroup/system.slice/memory.max": "134217728",
		}, 134217728, "sys/fs/cgroup/system.slice/memory.max"},
		{"v2, no limit", map[string]string{
			"proc/self/cgroup":   "0::/system.slice/app.service",
			unit + "memory.high": "max", unit + "memory.max": "max",
		}, 0, ""},
		{"v1", map[string]string{
			"proc/self/cgroup":               "5:memory:/system.slice/app.service\n1:name=systemd:/system.slice/app.service",
			v1unit + "memory.limit_in_bytes": "268435456",
		}, 268435456, v1unit + "memory.limit_in_bytes"},
		{"hybrid: the memory controller on v1", map[string]string{
			"proc/self/cgroup":               "7:cpu,memory:/system.slice/app.service\n0::/system.slice/app.service",
			v1unit + "memory.limit_in_bytes": "268435456",
			unit + "memory.max":              "134217728",
		}, 268435456, v1unit + "memory.limit_in_bytes"},
		{"v1, no limit", map[string]string{
			"proc/self/cgroup":               "5:memory:/system.slice/app.service",
			v1unit + "memory.limit_in_bytes": "9223372036854771712",
		}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			root := cgroupTree(t, tc.files)
			got, err := setMemoryLimit(root, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			want := memoryLimit{Limit: math.MaxInt64}
			if tc.cgroup != 0 {
				want = memoryLimit{Limit: tc.cgroup * 9 / 10, Cgroup: tc.cgroup, From: filepath.Join(root, tc.from)}
			}
			if got != want {
				t.Errorf("setMemoryLimit = %+v, want %+v", got, want)
			}
			if runtime := debug.SetMemoryLimit(-1); runtime != want.Limit {
				t.Errorf("the runtime's limit is %d, want %d", runtime, want.Limit)
			}
		})
	}
}

func TestGOMEMLIMITIsLeftAlone(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(100 << 20) // as the runtime does with GOMEMLIMIT=100MiB
	root := cgroupTree(t, map[string]string{
		"proc/self/cgroup":                     "0::/app.service",
		"sys/fs/cgroup/app.service/memory.max": "268435456",
	})
	got, err := setMemoryLimit(root, func(k string) string {
		if k == "GOMEMLIMIT" {
			return "100MiB"
		}
		return ""
	})
	if err != nil || got != (memoryLimit{Limit: 100 << 20, From: "GOMEMLIMIT"}) || debug.SetMemoryLimit(-1) != 100<<20 {
		t.Errorf("with GOMEMLIMIT set: %+v, %v; the runtime's limit %d, want it left at 100 MiB", got, err, debug.SetMemoryLimit(-1))
	}
}

func TestAnUnreadableLimitIsAnError(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	root := cgroupTree(t, map[string]string{
		"proc/self/cgroup":                     "0::/app.service",
		"sys/fs/cgroup/app.service/memory.max": "lots",
	})
	if _, err := setMemoryLimit(root, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "memory.max") {
		t.Errorf("a memory.max of %q: %v, want an error naming the file", "lots", err)
	}
}

func TestCheckOpenFiles(t *testing.T) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	fits := int(l.Cur) - openFilesNeeded
	if err := checkOpenFiles(fits); err != nil {
		t.Errorf("max_connections = %d under a limit of %d: %v", fits, l.Cur, err)
	}
	if err := checkOpenFiles(fits + 1); err == nil || !strings.Contains(err.Error(), "LimitNOFILE=") {
		t.Errorf("max_connections = %d under a limit of %d: %v, want an error saying LimitNOFILE=", fits+1, l.Cur, err)
	}
}

// TestTheLimitLineSaysWhereTheLimitCameFrom: the start's log line has the
// limit, its source and the cgroup's limit, or says there is none.
func TestTheLimitLineSaysWhereTheLimitCameFrom(t *testing.T) {
	for _, tc := range []struct {
		l    memoryLimit
		want string
	}{
		{memoryLimit{Limit: math.MaxInt64}, "GOMEMLIMIT.bytes=none"},
		{memoryLimit{Limit: 90, Cgroup: 100, From: "/sys/fs/cgroup/x/memory.high"}, "GOMEMLIMIT.bytes=90 GOMEMLIMIT.from=/sys/fs/cgroup/x/memory.high GOMEMLIMIT.cgroup_limit=100"},
		{memoryLimit{Limit: 50, From: "GOMEMLIMIT"}, "GOMEMLIMIT.bytes=50 GOMEMLIMIT.from=GOMEMLIMIT"},
	} {
		var b strings.Builder
		slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey {
				return slog.Attr{}
			}
			return a
		}})).Info("", tc.l.attr())
		if got := strings.TrimSpace(b.String()); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.l, got, tc.want)
		}
	}
}
