package proctest

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Poll calls cond every interval until it is true or timeout passes; it
// reports whether cond became true (asking once more at the deadline).
func Poll(timeout, interval time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
}

var digits = regexp.MustCompile(`[0-9]+`)

// FoldLog shows each distinct log line once (timestamp aside) with its
// first time and how often it came, at most max of them.
func FoldLog(lines []string, max int) string {
	type seen struct {
		first string
		n     int
	}
	var order []string
	by := map[string]*seen{}
	for _, l := range lines {
		key := l
		if strings.HasPrefix(l, "time=") {
			if _, rest, ok := strings.Cut(l, " "); ok {
				key = rest
			}
		}
		// Lines that differ only in numbers (ids, times) are one line.
		key = digits.ReplaceAllString(key, "#")
		if s, ok := by[key]; ok {
			s.n++
			continue
		}
		by[key] = &seen{first: l, n: 1}
		order = append(order, key)
	}
	var b strings.Builder
	for i, k := range order {
		if i == max {
			fmt.Fprintf(&b, "… %d more distinct lines\n", len(order)-max)
			break
		}
		if n := by[k].n; n > 1 {
			fmt.Fprintf(&b, "%s  [×%d]\n", by[k].first, n)
		} else {
			b.WriteString(by[k].first + "\n")
		}
	}
	return b.String()
}

// SyncBuffer collects a process' output; safe for concurrent use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
