// Package recent is a bounded set of the ids most recently seen, which the
// component (envelopes written to the XMPP stream) and the runner
// (envelopes an adapter accepted) keep, so that one the bus delivers again
// because its acknowledgement was lost is acknowledged, not handled twice.
package recent

import "sync"

// IDs is a bounded set of ids: when full, the oldest is forgotten first.
// It is safe for concurrent use.
type IDs struct {
	mu    sync.Mutex
	set   map[string]struct{}
	order []string // ring buffer of the ids in set
	next  int
}

// New returns a set that holds the last n ids added (n > 0).
func New(n int) *IDs {
	return &IDs{set: make(map[string]struct{}, n), order: make([]string, n)}
}

// Has reports whether id is among the last ids added.
func (r *IDs) Has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.set[id]
	return ok
}

// Add adds id, forgetting the oldest if the set is full.
func (r *IDs) Add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set[id]; ok {
		return
	}
	if old := r.order[r.next]; old != "" {
		delete(r.set, old)
	}
	r.order[r.next] = id
	r.set[id] = struct{}{}
	r.next = (r.next + 1) % len(r.order)
}
