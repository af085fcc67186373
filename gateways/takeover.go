package gateways

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Taking over from a runner that died.
//
// A runner holds the messages it took until it settles them (keeping them
// alive with progress acks). If its process is killed, JetStream hands
// them out again only after the consumer's AckWait; a runner starting
// meanwhile would take the newer messages first and send a conversation's
// later messages before its earlier ones (up to MaxAckPending of them:
// with the component's reader keeping up, issue #16, a backlog is the
// normal state under load). So a runner that starts while messages
// delivered before it are still unsettled holds back the new ones — those
// JetStream delivers for the first time — until the old ones are settled
// (the consumer's ack floor reaches the last of them: acknowledged by a
// live peer, or redelivered to this runner after AckWait and sent), and
// sends the redelivered old ones meanwhile. A peer that keeps its messages
// longer (a conversation retrying a failing send) does not stall the new
// runner for good: the hold ends after takeoverMax at the latest.

// takeoverMax bounds the hold: the dead runner's messages come back after
// AckWait, and sending them takes a moment more.
func takeoverMax(ackWait time.Duration) time.Duration { return 2*ackWait + 5*time.Second }

// takeover holds back first deliveries until the messages delivered before
// this runner started are settled.
type takeover struct {
	mu     sync.Mutex
	open   bool
	top    uint64 // the last stream sequence delivered before this runner started
	parked []*job
	push   func(*job)
}

// newTakeover looks at the consumer: nothing unsettled, nothing to hold.
func newTakeover(ctx context.Context, cons jetstream.Consumer, push func(*job)) *takeover {
	t := &takeover{open: true, push: push}
	info, err := cons.Info(ctx)
	if err != nil || info.NumAckPending == 0 || info.AckFloor.Stream >= info.Delivered.Stream {
		return t
	}
	t.open, t.top = false, info.Delivered.Stream
	return t
}

// take passes j on, or parks it while the hold lasts.
func (t *takeover) take(j *job) {
	t.mu.Lock()
	if !t.open && j.msg != nil {
		if md, err := j.msg.Metadata(); err == nil && md.NumDelivered == 1 && md.Sequence.Stream > t.top {
			t.parked = append(t.parked, j)
			t.mu.Unlock()
			return
		}
	}
	t.mu.Unlock()
	t.push(j)
}

// wait ends the hold when the old messages are settled, at the latest
// after max, or when ctx ends; then the parked jobs go on, in order.
func (t *takeover) wait(ctx context.Context, cons jetstream.Consumer, max time.Duration, log *slog.Logger) {
	t.mu.Lock()
	held := !t.open
	t.mu.Unlock()
	if !held {
		return
	}
	log.Info("messages taken before this runner started are not settled yet (a runner that died, or one still sending): newer messages wait until they are, so each conversation keeps its order",
		"up_to_sequence", t.top, "at_most", max)
	began := time.Now()
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	settled := false
	for !settled {
		select {
		case <-ctx.Done():
			// Shutdown: the parked jobs go to the workers, whose
			// shutdown finishes or hands back what they hold.
			settled = true
		case <-deadline.C:
			log.Warn("messages taken before this runner started are still not settled; sending newer ones, whose order against those may not be kept",
				"up_to_sequence", t.top, "after", max)
			settled = true
		case <-tick.C:
			if info, err := cons.Info(ctx); err == nil && info.AckFloor.Stream >= t.top {
				log.Info("messages taken before this runner started are settled; newer ones go on", "after", time.Since(began).Round(time.Millisecond))
				settled = true
			}
		}
	}
	t.release()
}

// release ends the hold: the parked jobs go on, in the order they came.
func (t *takeover) release() {
	t.mu.Lock()
	parked := t.parked
	t.parked, t.open = nil, true
	// Pushed under the lock: a job taken meanwhile must not pass them.
	for _, j := range parked {
		t.push(j)
	}
	t.mu.Unlock()
}
