//go:build systemd

package systemd_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgroupV2 reports whether /sys/fs/cgroup is the unified hierarchy alone
// (the VM), rather than cgroup v1 controllers (the containers, on a hybrid
// host).
func cgroupV2(t testing.TB) bool {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
}

// runtimeLimits returns the journal entry of the daemon's "runtime limits"
// line at start: GOMAXPROCS and the Go memory limit it chose.
func runtimeLimits(t testing.TB, cursor string, pid int) map[string]any {
	t.Helper()
	var e map[string]any
	eventually(t, 10*time.Second, "the runtime limits line in the journal", func() (bool, string) {
		entries := journal(t, cursor, "_PID="+strconv.Itoa(pid), "MESSAGE=runtime limits")
		if len(entries) == 0 {
			return false, "none yet"
		}
		e = entries[0]
		return true, ""
	})
	return e
}

// unitBytes is a memory setting of the unit in bytes; 0 for infinity.
func unitBytes(t testing.TB, property string) int64 {
	t.Helper()
	v := prop(t, unit, property)
	if v == "infinity" || v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", property, v, err)
	}
	return n
}

// TestTheGoMemoryLimitFollowsTheUnitsMemoryHigh: under the shipped unit's
// MemoryHigh= and MemoryMax=, the daemon sets the Go memory limit to 90% of
// the lower of the two (cgroup v2), or of MemoryMax= (cgroup v1, which has
// no memory.high), and says so at start, with GOMAXPROCS.
func TestTheGoMemoryLimitFollowsTheUnitsMemoryHigh(t *testing.T) {
	cursor := journalCursor(t)
	pid := freshStart(t, baseConfig)
	e := runtimeLimits(t, cursor, pid)
	high, max := unitBytes(t, "MemoryHigh"), unitBytes(t, "MemoryMax")
	limit := max
	if cgroupV2(t) && high != 0 && high < max {
		limit = high
	}
	if e["GOMEMLIMIT_BYTES"] == "none" && !cgroupV2(t) {
		t.Skipf("systemd %d sets no memory.limit_in_bytes for the unit here (cgroup v1 in a container); the daemon says GOMEMLIMIT=none", systemdVersion(t))
	}
	want := strconv.FormatInt(int64(float64(limit)*0.9), 10)
	if e["GOMEMLIMIT_BYTES"] != want {
		t.Errorf("GOMEMLIMIT_BYTES=%v (from %v, cgroup limit %v), want %s: 90%% of %d (MemoryHigh=%d MemoryMax=%d)",
			e["GOMEMLIMIT_BYTES"], e["GOMEMLIMIT_FROM"], e["GOMEMLIMIT_CGROUP_LIMIT"], want, limit, high, max)
	}
	if e["GOMAXPROCS"] != strconv.Itoa(runtime.NumCPU()) {
		t.Errorf("GOMAXPROCS=%v, want %d, the CPUs here (no CPUQuota=)", e["GOMAXPROCS"], runtime.NumCPU())
	}
	t.Logf("systemd %d, cgroup v2 %v: GOMEMLIMIT=%v from %v; GOMAXPROCS=%v", systemdVersion(t), cgroupV2(t), e["GOMEMLIMIT_BYTES"], e["GOMEMLIMIT_FROM"], e["GOMAXPROCS"])
}

// TestGOMAXPROCSFollowsCPUQuota: Go ≥ 1.25 sets GOMAXPROCS from the cgroup's
// CPU limit by itself, rounded up and never below 2: CPUQuota=200% gives
// min(CPUs, 2).
func TestGOMAXPROCSFollowsCPUQuota(t *testing.T) {
	runtimeDropIn(t, unit, "zz-cpu.conf", "[Service]\nCPUQuota=200%\n")
	cursor := journalCursor(t)
	pid := freshStart(t, baseConfig)
	e := runtimeLimits(t, cursor, pid)
	want := min(runtime.NumCPU(), 2)
	if e["GOMAXPROCS"] != strconv.Itoa(want) {
		t.Errorf("under CPUQuota=200%% on %d CPUs: GOMAXPROCS=%v, want %d", runtime.NumCPU(), e["GOMAXPROCS"], want)
	}
	if runtime.NumCPU() <= 2 {
		t.Logf("on %d CPUs no quota lowers GOMAXPROCS, which is never below 2: this shows the rule, not the drop", runtime.NumCPU())
	}
}

// memoryPeak is the most memory the unit's cgroup has used, from
// memory.peak (v2) or memory.max_usage_in_bytes (v1); "?" if neither is
// there.
func memoryPeak(t testing.TB) string {
	t.Helper()
	cg := prop(t, unit, "ControlGroup")
	for _, f := range []string{filepath.Join("/sys/fs/cgroup", cg, "memory.peak"), filepath.Join("/sys/fs/cgroup/memory", cg, "memory.max_usage_in_bytes")} {
		if b, err := os.ReadFile(f); err == nil {
			n, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
			return fmt.Sprintf("%.0f MiB", n/(1<<20))
		}
	}
	return "?"
}

// TestTheGoMemoryLimitSparesTheDaemonTheOOMKiller: under MemoryMax=160M a
// request (the test instrument GET /debug/alloc) holds 100 MiB while it
// allocates 1000 MiB more. With the limit the
// daemon chose, the garbage collector keeps the heap under it and the
// daemon answers; with GOMEMLIMIT=off the heap grows towards twice the live
// 100 MiB and the kernel's OOM killer ends the daemon. Both are measured.
func TestTheGoMemoryLimitSparesTheDaemonTheOOMKiller(t *testing.T) {
	runtimeDropIn(t, unit, "zz-memory.conf", "[Service]\nMemoryHigh=infinity\nMemoryMax=160M\n")
	cursor := journalCursor(t)
	pid := freshStart(t, baseConfig)
	if e := runtimeLimits(t, cursor, pid); e["GOMEMLIMIT_BYTES"] == "none" {
		t.Skipf("systemd %d sets no memory limit for the unit here; the daemon says GOMEMLIMIT=none", systemdVersion(t))
	}
	url := baseURL(t) + "/debug/alloc?live=100&garbage=1000"
	auth := "Bearer " + apiToken(t)
	restarts := propInt(t, unit, "NRestarts")
	start := time.Now()
	code, body := doAuth(t, http.MethodGet, url, "", auth)
	took := time.Since(start)
	if code != 200 || propInt(t, unit, "MainPID") != pid || propInt(t, unit, "NRestarts") != restarts {
		t.Fatalf("with the Go memory limit: GET = %d %q, MainPID %d (was %d), NRestarts %d (was %d); want 200 from the same daemon",
			code, body, propInt(t, unit, "MainPID"), pid, propInt(t, unit, "NRestarts"), restarts)
	}
	t.Logf("with GOMEMLIMIT from MemoryMax=160M: %s in %s, peak %s", strings.TrimSpace(body), took.Round(time.Millisecond), memoryPeak(t))

	// The same load without the limit.
	runtimeDropIn(t, unit, "zz-memory-off.conf", "[Service]\nEnvironment=GOMEMLIMIT=off\n")
	cursor = journalCursor(t)
	pid = freshStart(t, baseConfig)
	if e := runtimeLimits(t, cursor, pid); e["GOMEMLIMIT_FROM"] != "GOMEMLIMIT" {
		t.Fatalf("with GOMEMLIMIT=off in the environment the daemon took %v", e["GOMEMLIMIT_FROM"])
	}
	restarts = propInt(t, unit, "NRestarts")
	start = time.Now()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", auth)
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	killed := err != nil || resp.StatusCode != 200
	t.Logf("with GOMEMLIMIT=off: killed %v after %s (%v)", killed, time.Since(start).Round(time.Millisecond), err)
	if !killed {
		t.Errorf("without the Go memory limit the load passed MemoryMax= and the daemon survived: the load does not show what the limit is for")
	}
	waitRestarted(t, unit, restarts, pid, 30*time.Second)
	if cgroupV2(t) {
		oom := journal(t, cursor, "_PID=1", "UNIT="+unit)
		said := false
		for _, m := range messages(oom) {
			said = said || strings.Contains(m, "OOM killer")
			if strings.Contains(m, "memory peak") {
				t.Logf("systemd: %s", m)
			}
		}
		if !said {
			t.Errorf("systemd did not log the OOM kill:\n%s", strings.Join(messages(oom), "\n"))
		}
	}
}

// TestMemoryPressureMakesTheDaemonGiveMemoryBack: systemd ≥ 254 on cgroup
// v2 points $MEMORY_PRESSURE_WATCH at the unit's memory.pressure. Held
// above MemoryHigh= (the kernel throttles and reclaims: a real memory
// stall), the daemon sees the PSI trigger fire, gives memory back, counts
// it and logs it at debug; and the shipped alert DaemonMemoryPressure fires.
func TestMemoryPressureMakesTheDaemonGiveMemoryBack(t *testing.T) {
	pid := freshStart(t, baseConfig)
	env := environ(t, pid)
	watch := env["MEMORY_PRESSURE_WATCH"]
	if watch == "" {
		t.Skipf("systemd %d sets no $MEMORY_PRESSURE_WATCH here: it needs systemd ≥ 254 and cgroup v2 (v2: %v)", systemdVersion(t), cgroupV2(t))
	}
	if want := filepath.Join("/sys/fs/cgroup", prop(t, unit, "ControlGroup"), "memory.pressure"); watch != want || env["MEMORY_PRESSURE_WRITE"] == "" {
		t.Errorf("MEMORY_PRESSURE_WATCH=%q MEMORY_PRESSURE_WRITE=%q, want %s and a trigger", watch, env["MEMORY_PRESSURE_WRITE"], want)
	}
	// A low MemoryHigh=, no Go limit to keep the heap under it, and a
	// trigger of 20 ms of stall in systemd's 2 s window. No watchdog: the
	// kernel's throttling above MemoryHigh= can hold every thread of the
	// daemon past WatchdogSec= where CPUs are scarce (the VM leg, under
	// qemu's TCG, with Prometheus beside it), and a watchdog restart
	// would start a process that never saw the pressure.
	runtimeDropIn(t, unit, "zz-pressure.conf", "[Service]\nMemoryHigh=48M\nMemoryMax=infinity\nMemoryPressureThresholdSec=20ms\nEnvironment=GOMEMLIMIT=off\nWatchdogSec=0\n")
	cursor := journalCursor(t)
	pid = freshStart(t, baseConfig)
	// The shipped alert DaemonMemoryPressure, in a real Prometheus that
	// scrapes from before the pressure: an increase needs a sample from
	// before it.
	p := startPrometheus(t)
	metricsURL := "http://" + listenAddr(t, name+"-metrics.socket") + "/metrics"
	// A scrape may time out while the kernel throttles the daemon (the
	// VM leg): that is NaN, and the poll goes on.
	events := func() float64 {
		resp, err := client.Get(metricsURL)
		if err != nil {
			return math.NaN()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, name+"_memory_pressure_events_total "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return math.NaN()
	}
	if n := events(); n != 0 {
		t.Fatalf("%s_memory_pressure_events_total = %v before any pressure, want 0", name, n)
	}
	start := time.Now()
	// The request (the test instrument GET /debug/alloc) is throttled
	// above MemoryHigh= for as long as it holds the memory; the test does
	// not wait for it (the next freshStart ends it), only for the daemon's
	// answer to the pressure.
	req, _ := http.NewRequest(http.MethodGet, baseURL(t)+"/debug/alloc?live=64&hold=10s", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken(t))
	go func() {
		if resp, err := (&http.Client{Timeout: time.Minute}).Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 2*time.Minute, "a memory pressure event counted", func() (bool, string) {
		n := events()
		return n >= 1, fmt.Sprintf("%s_memory_pressure_events_total = %v", name, n)
	})
	took := time.Since(start)
	eventually(t, 10*time.Second, "the debug line", func() (bool, string) {
		n := len(journal(t, cursor, "_PID="+strconv.Itoa(pid), "MESSAGE=memory pressure: memory given back to the kernel"))
		return n >= 1, fmt.Sprintf("%d lines", n)
	})
	firing, _ := p.waitAlert(t, "DaemonMemoryPressure", "firing", start, time.Minute)
	t.Logf("the first event counted %s after the load began; %v in all; DaemonMemoryPressure firing %s after the load began",
		took.Round(time.Millisecond), events(), firing.Round(time.Millisecond))
}
