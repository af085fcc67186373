package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrStoreRefusing is returned at once, without trying, while the store is
// refusing writes (one real attempt per retryInterval finds out when it
// accepts them again).
var ErrStoreRefusing = errors.New("the message store is refusing writes")

// ErrOutcomeUnknown marks a publish that reached the store and got no
// answer (a timeout, or the store failing while it waited): the message may
// have been stored, and may still be delivered. A publish refused without
// trying, or refused by the store, does not carry it.
var ErrOutcomeUnknown = errors.New("no answer from the store: the message may have been stored")

const retryInterval = 250 * time.Millisecond

// degradedTimeout caps publishes while the store is refusing writes, so a
// backlog is refused quickly (its senders told) rather than one stalled
// publish at a time. A healthy publish takes well under a millisecond
// (a few with fsync).
const degradedTimeout = 500 * time.Millisecond

// health is the bus's view of whether its embedded store takes writes. Two
// kinds of evidence feed it: publishes the store failed (an error from the
// server, or no answer within the bus's own bound — never a caller giving
// up; a breaker: refused at once, with one real attempt per retryInterval,
// until one succeeds or the watcher's probe of the store does), and write
// errors the server itself reports for a stream (sticky: nats-server keeps
// them until it restarts, so only a restart clears them). The store
// watcher reads it to decide when to probe the store and when to restart
// the server.
type health struct {
	log *slog.Logger

	mu sync.Mutex
	// The breaker: set by a failed publish, cleared by a successful one
	// or a successful probe.
	failingSince  time.Time
	lastFailure   error
	lastFailureAt time.Time
	lastTry       time.Time // last real publish while failing
	// Since when each subject's publishes (or each faulted stream, as
	// "stream NAME") have failed without a success in between. A disk fault
	// breaks each stream's store separately, so one can keep failing while
	// another recovers. A subject's mark also clears when the watcher's
	// probe of the store succeeds: a quiet subject would keep it for good.
	failing map[string]time.Time
	// Streams that hit a write error, which every later write to them
	// (publishes, and the removals that acknowledgements of work-queue
	// messages make) repeats until the server restarts.
	faults map[string]error
	// faulted ends when a fault is recorded (publishes waiting on the store
	// then give up: it will not answer them); renewed when faults clear.
	faulted    context.Context
	endFaulted context.CancelFunc
}

func newHealth(log *slog.Logger) *health {
	h := &health{log: log, failing: map[string]time.Time{}, faults: map[string]error{}}
	h.faulted, h.endFaulted = context.WithCancel(context.Background())
	return h
}

// shortCircuit reports whether a publish should fail without trying.
func (h *health) shortCircuit() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.faults) > 0 {
		// Only a restart of the server clears it: no use trying.
		return fmt.Errorf("%w since %s: %v", ErrStoreRefusing, h.failingSince.UTC().Format(time.RFC3339), h.faultLocked())
	}
	if h.failingSince.IsZero() || time.Since(h.lastTry) >= retryInterval {
		h.lastTry = time.Now()
		return nil
	}
	return fmt.Errorf("%w since %s: %v", ErrStoreRefusing, h.failingSince.UTC().Format(time.RFC3339), h.lastFailure)
}

// degraded: publishes are failing; they get degradedTimeout.
func (h *health) degraded() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.failingSince.IsZero()
}

// faultedContext ends when a store fault is recorded.
func (h *health) faultedContext() context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.faulted
}

func (h *health) recordPublish(subject string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.failing, subject)
	} else if _, ok := h.failing[subject]; !ok {
		h.failing[subject] = time.Now()
	}
	if err != nil {
		h.lastFailureAt = time.Now()
	}
	switch {
	case err == nil:
		if !h.failingSince.IsZero() {
			h.log.Info("the bus stores messages again", "after", time.Since(h.failingSince).Round(time.Millisecond))
		}
		h.failingSince, h.lastFailure = time.Time{}, nil
	case h.failingSince.IsZero():
		h.failingSince, h.lastFailure, h.lastTry = time.Now(), err, time.Now()
		h.log.Error("the bus refuses to store messages; senders are told to retry later", "err", err)
	default:
		h.lastFailure = err
	}
}

// markFault records a write error the server reported for stream:
// publishes are refused at once, waiting ones give up, and the watcher
// restarts the server once the data directory takes writes again.
func (h *health) markFault(stream string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.faults[stream]; ok {
		return
	}
	first := len(h.faults) == 0
	h.faults[stream] = err
	h.endFaulted()
	now := time.Now()
	if _, ok := h.failing["stream "+stream]; !ok {
		h.failing["stream "+stream] = now
	}
	if h.failingSince.IsZero() {
		h.failingSince, h.lastFailure, h.lastTry = now, err, now
	}
	h.lastFailureAt = now
	if first {
		h.log.Error("the message store cannot write; refusing new work and holding deliveries until it can", "stream", stream, "err", err)
	}
}

// fault is the first (by stream name) recorded store fault, or nil.
func (h *health) fault() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.faultLocked()
}

func (h *health) faultLocked() error {
	if len(h.faults) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(h.faults))
	return fmt.Errorf("stream %s: %w", names[0], h.faults[names[0]])
}

// ready is nil when the store takes writes as far as the bus knows.
func (h *health) ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.faultLocked(); err != nil {
		return fmt.Errorf("the message store cannot write: %v", err)
	}
	if !h.failingSince.IsZero() {
		return fmt.Errorf("refusing to store messages since %s: %v", h.failingSince.UTC().Format(time.RFC3339), h.lastFailure)
	}
	return nil
}

// stuck reports since when something has kept failing (zero: nothing) and
// the last failure, for the watcher.
func (h *health) stuck() (since time.Time, last error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.failing {
		if since.IsZero() || t.Before(since) {
			since = t
		}
	}
	return since, h.lastFailure
}

// probed records that a write to the store, begun at began, succeeded:
// publish failures marked before then are forgotten, and the breaker
// closes unless a publish failed since. Faults stay: only a restart
// clears them.
func (h *health) probed(began time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for subject, since := range h.failing {
		if !strings.HasPrefix(subject, "stream ") && since.Before(began) {
			delete(h.failing, subject)
		}
	}
	if len(h.faults) == 0 && !h.failingSince.IsZero() && h.lastFailureAt.Before(began) {
		h.log.Info("the store takes writes again (probed)", "after", time.Since(h.failingSince).Round(time.Millisecond))
		h.failingSince, h.lastFailure = time.Time{}, nil
	}
}

// restarted forgets what the previous server's store kept: its faults and
// failing subjects; the next publish goes through at once.
func (h *health) restarted() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastTry = time.Time{}
	clear(h.failing)
	clear(h.faults)
	h.faulted, h.endFaulted = context.WithCancel(context.Background())
}
