package proctest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Ports for servers that tests start as other processes (Prosody, ejabberd,
// ngircd, nats-server, xmppgw) cannot be "bind to port 0 and read it back":
// the process chooses its own listener, and the fault and cluster suites
// restart processes on the same address. Asking the kernel for a free port
// and handing the number on is a race: the suites make thousands of
// loopback connections whose source ports come from the same ephemeral
// range, and one of them can take the port before the server binds it
// (CI saw "bind: address already in use" for a nats-server node).
//
// So a reserved port is chosen outside the kernel's ephemeral range, where
// no connect() takes a source port, and locked with flock(2) on a file per
// port, so that no other test process on the machine (go test runs
// packages in parallel) hands out the same one. The lock is held until the
// test's cleanup, and the kernel drops it if the test process dies.
// In-process listeners (fakes, relays) bind 127.0.0.1:0 themselves and keep
// the listener instead.

// lowestPort is the bottom of the range reserved ports come from: above
// the registered ports servers on a developer's machine commonly use.
const lowestPort = 10000

var (
	rangesOnce sync.Once
	ranges     [][2]int // inclusive, outside the ephemeral range
	rangesErr  error
)

// reservableRanges returns the port ranges outside the kernel's ephemeral
// range (net.ipv4.ip_local_port_range) and its reserved ports.
func reservableRanges() ([][2]int, error) {
	rangesOnce.Do(func() {
		lo, hi := 32768, 60999 // Linux's default, if /proc cannot say
		if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
			f := strings.Fields(string(b))
			if len(f) == 2 {
				l, err1 := strconv.Atoi(f[0])
				h, err2 := strconv.Atoi(f[1])
				if err1 == nil && err2 == nil && l <= h {
					lo, hi = l, h
				}
			}
		}
		if lo-1 >= lowestPort {
			ranges = append(ranges, [2]int{lowestPort, lo - 1})
		}
		if hi+1 <= 65535 {
			ranges = append(ranges, [2]int{max(hi+1, lowestPort), 65535})
		}
		if len(ranges) == 0 {
			rangesErr = fmt.Errorf("no ports outside the ephemeral range %d-%d", lo, hi)
		}
	})
	return ranges, rangesErr
}

// lockDir holds one lock file per reserved port, shared by every test
// process on the machine.
func lockDir() (string, error) {
	dir := filepath.Join(os.TempDir(), "xmppgw-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", err
	}
	return dir, nil
}

// reservation is a port held by this process until release.
type reservation struct {
	port int
	lock *os.File
}

func (r *reservation) release() { r.lock.Close() } // closing drops the flock

// reserve finds a port outside the ephemeral range that no other test
// holds and that nothing listens on now, and locks it.
func reserve() (*reservation, error) {
	rs, err := reservableRanges()
	if err != nil {
		return nil, err
	}
	dir, err := lockDir()
	if err != nil {
		return nil, fmt.Errorf("port lock directory: %w", err)
	}
	total := 0
	for _, r := range rs {
		total += r[1] - r[0] + 1
	}
	// Start at a random place, so that concurrent test processes seldom
	// contend for the same locks, and walk the whole range once.
	start := rand.IntN(total)
	for i := range total {
		port := nth(rs, (start+i)%total)
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return nil, fmt.Errorf("port lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // another test holds it
			}
			return nil, fmt.Errorf("port lock %d: %w", port, err)
		}
		// Something outside the tests (a service on this machine) may use
		// the port: it must be bindable now. Nothing takes it afterwards:
		// no source port comes from here and the other tests see the lock.
		if !bindable(port) {
			f.Close()
			continue
		}
		return &reservation{port: port, lock: f}, nil
	}
	return nil, errors.New("every port outside the ephemeral range is reserved or in use")
}

func nth(rs [][2]int, i int) int {
	for _, r := range rs {
		if n := r[1] - r[0] + 1; i >= n {
			i -= n
			continue
		}
		return r[0] + i
	}
	panic("proctest: port index out of range")
}

func bindable(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// FreePorts reserves n distinct TCP ports on 127.0.0.1 for servers the test
// starts, held until the test's cleanup: chosen outside the kernel's
// ephemeral range and locked against other test processes, so nothing can
// take one before the server binds it, or between a kill and a restart.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		r, err := reserve()
		if err != nil {
			t.Fatalf("proctest: reserve a port: %v", err)
		}
		t.Cleanup(r.release)
		ports = append(ports, r.port)
	}
	return ports
}

// FreeAddr reserves a loopback address as FreePorts does.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePorts(t, 1)[0]))
}
