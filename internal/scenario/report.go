package scenario

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Progress is what Settle watches of a scenario; C is the suite's snapshot
// of its counts.
type Progress[C comparable] struct {
	// Refresh folds in what arrived since the last call and returns the
	// counts, and whether every generator is done.
	Refresh func() (counts C, done bool)
	// Pending is what the gateway's bus still holds (waiting or
	// unacknowledged), as its processes report; known is false when none
	// could tell.
	Pending func() (n float64, known bool)
	// Clean reports whether a full accounting finds nothing lost.
	Clean func() bool
	// Event records a step of the scenario's timeline.
	Event func(format string, args ...any)
}

// Settle waits until the generators are done, the bus holds nothing and
// the counts have been still for a while: 2 s when every message is
// accounted for, 10 s when some are not (late redeliveries get their
// chance). It gives up at the deadline; it reports whether it settled.
func Settle[C comparable](timeout time.Duration, p Progress[C]) bool {
	deadline := time.Now().Add(timeout)
	var last C
	lastChange := time.Now()
	for {
		c, done := p.Refresh()
		if c != last {
			last, lastChange = c, time.Now()
		}
		pending, known := p.Pending()
		quiet := time.Since(lastChange)
		if done && known && pending == 0 && quiet >= 2*time.Second {
			if p.Clean() || quiet >= 10*time.Second {
				p.Event("settled (bus empty, counts still for %v)", quiet.Round(time.Second))
				return true
			}
		}
		if time.Now().After(deadline) {
			p.Event("deadline: not settled after %v (bus pending %v, known %v; %+v)", timeout, pending, known, c)
			return false
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
}

// OutOfOrder counts arrivals that came after a higher-numbered one.
func OutOfOrder(arrivals []int) int {
	n, high := 0, 0
	for _, k := range arrivals {
		if k < high {
			n++
		}
		high = max(high, k)
	}
	return n
}

// OutOfOrderPerConversation is OutOfOrder within each conversation of the
// Out series (OutboundTo): order is kept per conversation, not across them.
func OutOfOrderPerConversation(arrivals []int) int {
	return OutOfOrderOver(arrivals, Conversations)
}

// OutOfOrderOver is OutOfOrderPerConversation over n conversations.
func OutOfOrderOver(arrivals []int, n int) int {
	by := make([][]int, n)
	for _, k := range arrivals {
		by[k%n] = append(by[k%n], k)
	}
	total := 0
	for _, a := range by {
		total += OutOfOrder(a)
	}
	return total
}

// Short shows message numbers, the first 12 of a longer list.
func Short(ids []int) string {
	if len(ids) <= 12 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v… (%d in all)", ids[:12], len(ids))
}

// Tally shows counts by name, sorted by name: "429 ×3, 500 ×1".
func Tally(counts map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}
