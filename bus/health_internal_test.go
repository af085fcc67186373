package bus

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

// The breaker: after a failed publish, publishes are refused without trying,
// except one real attempt per retryInterval; a success closes it.
func TestHealthBreaker(t *testing.T) {
	h := newHealth(slog.New(slog.DiscardHandler))
	if err := h.shortCircuit(); err != nil || h.degraded() || h.ready() != nil {
		t.Fatalf("fresh: %v, degraded %v, ready %v", err, h.degraded(), h.ready())
	}
	h.recordPublish("s", errors.New("timeout"))
	if err := h.shortCircuit(); !errors.Is(err, ErrStoreRefusing) {
		t.Fatalf("right after a failure: %v, want a refusal", err)
	}
	if !h.degraded() || h.ready() == nil {
		t.Error("not degraded or still ready after a failure")
	}
	h.mu.Lock()
	h.lastTry = time.Now().Add(-retryInterval) // the interval has passed
	h.mu.Unlock()
	if err := h.shortCircuit(); err != nil {
		t.Fatalf("after the retry interval: %v, want one real attempt", err)
	}
	if err := h.shortCircuit(); err == nil {
		t.Fatal("a second attempt in the same interval went through")
	}
	if since, _ := h.stuck(); since.IsZero() {
		t.Error("the failing subject is not reported to the watcher")
	}
	h.recordPublish("s", nil)
	if err := h.shortCircuit(); err != nil || h.degraded() || h.ready() != nil {
		t.Fatalf("after a success: %v, degraded %v, ready %v", err, h.degraded(), h.ready())
	}
	if since, _ := h.stuck(); !since.IsZero() {
		t.Error("a subject that succeeded is still failing for the watcher")
	}
}

// A store fault is sticky: successes do not clear it, a restart does; it
// ends the faulted context, and the restart renews it.
func TestHealthFault(t *testing.T) {
	h := newHealth(slog.New(slog.DiscardHandler))
	faulted := h.faultedContext()
	h.markFault("XMPPGW_OUT", errors.New("write: read-only file system"))
	h.markFault("KV_b", errors.New("sync: input/output error"))
	if faulted.Err() == nil {
		t.Fatal("the faulted context did not end")
	}
	if err := h.fault(); err == nil || err.Error() != "stream KV_b: sync: input/output error" {
		t.Fatalf("fault: %v, want the first stream by name", err)
	}
	h.recordPublish("s", nil)
	if h.fault() == nil || h.shortCircuit() == nil || h.ready() == nil {
		t.Fatal("a successful publish cleared a store fault")
	}
	if since, _ := h.stuck(); since.IsZero() {
		t.Error("the faulted stream is not reported to the watcher")
	}
	h.restarted()
	if h.fault() != nil || h.shortCircuit() != nil {
		t.Fatal("a restart did not clear the fault")
	}
	if h.faultedContext().Err() != nil {
		t.Fatal("the faulted context was not renewed")
	}
}

// A successful probe of the store forgets the publish failures marked
// before it began, and closes the breaker, unless a publish failed since;
// faults stay until a restart.
func TestHealthProbed(t *testing.T) {
	h := newHealth(slog.New(slog.DiscardHandler))
	h.recordPublish("quiet", errors.New("timeout"))
	h.probed(time.Now())
	if since, _ := h.stuck(); !since.IsZero() || h.degraded() || h.ready() != nil {
		t.Fatalf("after a probe: failing since %v, degraded %v, ready %v", since, h.degraded(), h.ready())
	}

	began := time.Now()
	h.recordPublish("later", errors.New("timeout")) // during the probe
	h.probed(began)
	if since, _ := h.stuck(); since.IsZero() || !h.degraded() {
		t.Fatal("a probe cleared a failure recorded after it began")
	}

	h.markFault("XMPPGW_OUT", errors.New("write: read-only file system"))
	h.probed(time.Now().Add(time.Second))
	if h.fault() == nil || h.ready() == nil {
		t.Fatal("a probe cleared a store fault")
	}
	if since, _ := h.stuck(); since.IsZero() {
		t.Fatal("a probe cleared a faulted stream's mark")
	}
}
