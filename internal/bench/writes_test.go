//go:build bench

package bench_test

import (
	"bufio"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Writes per message (issue #16): how many writes and fsyncs the gateway
// makes to its data directory (the embedded JetStream store) for each
// outbound and each inbound SMS. strace follows every thread of the
// gateway during a flood of -writes messages in each direction, after the
// timed phases (strace slows the process: no timing is taken meanwhile),
// and counts the write and sync system calls on files under the data
// directory (-y names each descriptor's file). Socket writes (XMPP, HTTP)
// are not counted.

var flagWrites = flag.Int("writes", 300, "messages each way traced for writes and fsyncs per message (0: not measured; needs strace)")

// storeCalls are the system calls counted: writes, and what makes them
// durable.
const storeCalls = "write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,sync_file_range,msync"

var straceLine = regexp.MustCompile(`^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\((\d+)<([^>]*)>`)

// traced are the counts over one traced flood, per message.
type traced struct {
	writes, syncs float64
}

// traceWrites runs flood (n messages) with strace attached to the gateway
// and returns the data-directory writes and syncs per message.
func (r *rig) traceWrites(n int, flood func()) (*traced, error) {
	if r.dataDir == "" {
		return &traced{}, nil // the baseline keeps nothing
	}
	bin, err := exec.LookPath("strace")
	if err != nil {
		return nil, fmt.Errorf("strace is needed to count writes (apt-get install strace): %w", err)
	}
	out := filepath.Join(r.t.TempDir(), "strace.out")
	cmd := exec.Command(bin, "-f", "-qq", "-y", "-e", "trace="+storeCalls, "-o", out, "-p", fmt.Sprint(r.gw.pid()))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := waitTraced(r.gw.pid(), 10*time.Second, done); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	flood()
	// The work after the last arrival (records, acknowledgements) is
	// traced too: wait until the trace has been quiet for a while.
	if err := waitQuiet(out, 500*time.Millisecond, 30*time.Second); err != nil {
		r.t.Logf("%s: %v", r.name, err)
	}
	_ = cmd.Process.Signal(syscall.SIGINT) // detaches
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("strace did not detach")
	}
	writes, syncs, by, err := countStoreCalls(out, r.dataDir)
	if err != nil {
		return nil, err
	}
	r.t.Logf("%s: %d messages traced: %d writes, %d syncs on the data directory; writes by stream: %s", r.name, n, writes, syncs, by)
	return &traced{writes: float64(writes) / float64(n), syncs: float64(syncs) / float64(n)}, nil
}

var tracedTask = regexp.MustCompile(`(?m)^TracerPid:\s+[1-9]`)

// waitTraced waits until every thread of pid has a tracer.
func waitTraced(pid int, timeout time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(timeout)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		all := len(tasks) > 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil || !tracedTask.Match(b) {
				all = false
				break
			}
		}
		if all {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("strace exited before attaching: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("strace did not attach to every thread within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// waitQuiet waits until file has not grown for quiet.
func waitQuiet(file string, quiet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last, since := int64(-1), time.Now()
	for time.Now().Before(deadline) {
		fi, err := os.Stat(file)
		if err != nil {
			return err
		}
		if fi.Size() != last {
			last, since = fi.Size(), time.Now()
		} else if time.Since(since) >= quiet {
			return nil
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	return fmt.Errorf("the gateway kept writing for %v after the traced flood", timeout)
}

// countStoreCalls counts, in an strace -y output, the writes and the
// syncs on files under dir.
func countStoreCalls(file, dir string) (writes, syncs int, byStream string, err error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, "", err
	}
	defer f.Close()
	per := map[string]int{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		m := straceLine.FindStringSubmatch(s.Text())
		if m == nil || !strings.HasPrefix(m[3], dir) {
			continue
		}
		switch m[1] {
		case "fsync", "fdatasync", "sync_file_range", "msync":
			syncs++
		default:
			writes++
			stream := "other"
			if sm := streamDir.FindStringSubmatch(m[3]); sm != nil {
				stream = sm[1]
			}
			per[stream]++
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(per)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, per[k]))
	}
	return writes, syncs, strings.Join(parts, ", "), s.Err()
}

// streamDir finds the stream a store file belongs to.
var streamDir = regexp.MustCompile(`/streams/([^/]+)/`)
