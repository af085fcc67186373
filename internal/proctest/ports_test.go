package proctest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestFreePortsOutsideEphemeralRange(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ephemeral range to compare with: %v", err)
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		t.Fatal(err)
	}
	ports := FreePorts(t, 20)
	seen := map[int]bool{}
	for _, p := range ports {
		if p >= lo && p <= hi {
			t.Errorf("port %d is in the ephemeral range %d-%d", p, lo, hi)
		}
		if p < lowestPort {
			t.Errorf("port %d is below %d", p, lowestPort)
		}
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
		// The server can bind it.
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("bind reserved port %d: %v", p, err)
			continue
		}
		l.Close()
	}
}

// A reserved port is locked against every other opener of its lock file,
// as another test process would be, until the test's cleanup.
func TestFreePortsLocked(t *testing.T) {
	var port int
	t.Run("holder", func(t *testing.T) {
		port = FreePorts(t, 1)[0]
		if lockable(t, port) {
			t.Errorf("port %d can be locked by another opener while reserved", port)
		}
	})
	if !lockable(t, port) {
		t.Errorf("port %d still locked after the reserving test ended", port)
	}
}

func lockable(t *testing.T, port int) bool {
	t.Helper()
	dir, err := lockDir()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
