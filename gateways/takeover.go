package gateways

import (
	"context"
	"errors"
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
// delivered before it are unsettled holds back the new ones — those
// JetStream delivers for the first time — until each old one has either
// come to this runner (redelivered: it then goes first, in its
// conversation's queue) or left the stream (a live peer settled it). The
// old ones are those between the consumer's ack floor and the last
// sequence it delivered that the stream still holds: the consumer's own
// count of pending messages is not used, because after a store failure it
// can name messages that are gone. A peer that keeps its messages longer
// (a conversation retrying a failing send) does not stall the new runner
// for good: the hold ends after takeoverMax at the latest.

// takeoverMax bounds the hold: the dead runner's messages come back after
// AckWait.
func takeoverMax(ackWait time.Duration) time.Duration { return 2*ackWait + 5*time.Second }

// maxTakeoverScan bounds the sequences looked at when starting: beyond
// it, no hold (the order across the takeover is then not kept).
const maxTakeoverScan = 20000

// takeover holds back first deliveries until the messages delivered before
// this runner started are with it or gone.
type takeover struct {
	cons   jetstream.Consumer
	stream jetstream.Stream
	log    *slog.Logger

	mu     sync.Mutex
	open   bool
	top    uint64              // the last stream sequence delivered before this runner started
	old    map[uint64]struct{} // those still in the stream, not yet come here
	parked []*job
	push   func(*job)
}

// newTakeover looks at the consumer and its stream: nothing unsettled,
// nothing to hold.
func newTakeover(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, log *slog.Logger, push func(*job)) *takeover {
	t := &takeover{cons: cons, log: log, open: true, push: push}
	info, err := cons.Info(ctx)
	if err != nil || info.NumAckPending == 0 || info.AckFloor.Stream >= info.Delivered.Stream {
		return t
	}
	stream, err := js.Stream(ctx, info.Stream)
	if err != nil {
		log.Warn("could not look at the outbound stream; messages taken by a runner before this one are not kept in order against newer ones", "err", err)
		return t
	}
	from, to := info.AckFloor.Stream+1, info.Delivered.Stream
	if to-from >= maxTakeoverScan {
		log.Warn("too many messages taken before this runner started to keep their order against newer ones", "from", from, "to", to)
		return t
	}
	old := map[uint64]struct{}{}
	for seq := from; seq <= to; seq++ {
		if _, err := stream.GetMsg(ctx, seq); err == nil {
			old[seq] = struct{}{}
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			log.Warn("could not look at the messages taken before this runner started; newer ones are not held back", "err", err)
			return t
		}
	}
	if len(old) == 0 {
		return t
	}
	t.stream, t.open, t.top, t.old = stream, false, to, old
	return t
}

// take passes j on, or parks it while the hold lasts.
func (t *takeover) take(j *job) {
	t.mu.Lock()
	if !t.open && j.msg != nil {
		if md, err := j.msg.Metadata(); err == nil {
			seq := md.Sequence.Stream
			switch {
			case seq <= t.top:
				delete(t.old, seq) // an old one, come back: it goes first
			case md.NumDelivered == 1:
				t.parked = append(t.parked, j)
				t.mu.Unlock()
				return
			}
		}
	}
	t.mu.Unlock()
	t.push(j)
}

// wait ends the hold when the old messages are here or gone, at the latest
// after max, or when ctx ends; then the parked jobs go on, in order.
func (t *takeover) wait(ctx context.Context, max time.Duration) {
	t.mu.Lock()
	held, n := !t.open, len(t.old)
	t.mu.Unlock()
	if !held {
		return
	}
	t.log.Info("messages taken before this runner started are not settled yet (a runner that died, or one still sending): newer messages wait until those are here or settled, so each conversation keeps its order",
		"messages", n, "up_to_sequence", t.top, "at_most", max)
	began := time.Now()
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Shutdown: the parked jobs go to the workers, whose
			// shutdown finishes or hands back what they hold.
			t.release()
			return
		case <-deadline.C:
			t.log.Warn("messages taken before this runner started are still not settled; sending newer ones, whose order against those may not be kept",
				"up_to_sequence", t.top, "after", max)
			t.release()
			return
		case <-tick.C:
		}
		// Settled below the ack floor; above it, looked up one by one.
		var floor uint64
		if info, err := t.cons.Info(ctx); err == nil {
			floor = info.AckFloor.Stream
		}
		t.mu.Lock()
		left := make([]uint64, 0, len(t.old))
		for seq := range t.old {
			if seq <= floor {
				delete(t.old, seq)
			} else {
				left = append(left, seq)
			}
		}
		t.mu.Unlock()
		for _, seq := range left {
			if _, err := t.stream.GetMsg(ctx, seq); errors.Is(err, jetstream.ErrMsgNotFound) {
				t.mu.Lock()
				delete(t.old, seq) // settled elsewhere
				t.mu.Unlock()
			}
		}
		t.mu.Lock()
		done := len(t.old) == 0
		t.mu.Unlock()
		if done {
			t.log.Info("messages taken before this runner started are here or settled; newer ones go on", "after", time.Since(began).Round(time.Millisecond))
			t.release()
			return
		}
	}
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
