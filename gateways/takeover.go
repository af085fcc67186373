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
	top    uint64              // the last stream sequence delivered before the hold began
	old    map[uint64]struct{} // those still in the stream, not yet come here
	parked []*job
	push   func(*job)
	// unknown: the connection dropped and the hold's old messages are
	// not known yet (rearm): every first delivery is parked meanwhile.
	unknown bool
	seen    map[uint64]struct{} // taken while unknown: not waited for
	// until ends the hold at the latest; waiting: a wait loop runs.
	until   time.Time
	waiting bool
	// busy counts the goroutines of holds begun after a reconnect (rearm
	// and its wait loop): the runner waits for them before it closes its
	// queues, since they push the parked jobs at shutdown.
	busy sync.WaitGroup
}

// newTakeover looks at the consumer and its stream: nothing unsettled,
// nothing to hold.
func newTakeover(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, log *slog.Logger, push func(*job)) *takeover {
	t := &takeover{cons: cons, log: log, open: true, push: push}
	info, err := cons.Info(ctx)
	if err != nil {
		return t
	}
	if t.stream, err = js.Stream(ctx, info.Stream); err != nil {
		log.Warn("could not look at the outbound stream; messages taken by a runner before this one are not kept in order against newer ones", "err", err)
		return t
	}
	if info.NumAckPending == 0 || info.AckFloor.Stream >= info.Delivered.Stream {
		return t
	}
	old, top, ok := unsettled(ctx, cons, t.stream, func(uint64) bool { return false })
	switch {
	case !ok:
		log.Warn("could not look at the messages taken before this runner started (or too many of them); newer ones are not held back",
			"from", info.AckFloor.Stream+1, "to", info.Delivered.Stream)
	case len(old) > 0:
		t.open, t.top, t.old = false, top, old
	}
	return t
}

// unsettled returns the stream sequences the consumer delivered and has
// not seen settled (above its ack floor), still in the stream, that mine
// does not claim, and the last sequence delivered. ok is false when they
// cannot be told (no hold can be based on them).
func unsettled(ctx context.Context, cons jetstream.Consumer, stream jetstream.Stream, mine func(uint64) bool) (old map[uint64]struct{}, top uint64, ok bool) {
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, 0, false
	}
	from, to := info.AckFloor.Stream+1, info.Delivered.Stream
	old = map[uint64]struct{}{}
	if from > to {
		return old, to, true
	}
	if to-from >= maxTakeoverScan {
		return nil, 0, false
	}
	for seq := from; seq <= to; seq++ {
		if mine(seq) {
			continue
		}
		if _, err := stream.GetMsg(ctx, seq); err == nil {
			old[seq] = struct{}{}
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, 0, false
		}
	}
	return old, to, true
}

// suspend begins a hold after the connection dropped: a fetch that was on
// its way to this runner was lost with it, and JetStream hands those
// messages out again only after AckWait; newer ones, taken first, would
// pass them in their conversations. First deliveries are parked from now
// on, until rearm knows which messages to wait for. The runner calls it
// for the first message it takes after a reconnect, before taking that
// one. (The fault suite's external NATS restart: 4-9 of 2,000 outbound
// messages out of order in each of 8 runs before, sent 15 s after newer
// ones; 0 in 6 runs since. Begun from the disconnect callback instead,
// which runs asynchronously, 1 in 2 runs of 9.)
func (t *takeover) suspend() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open, t.unknown = false, true
	if t.seen == nil {
		t.seen = map[uint64]struct{}{}
	}
}

// rearm looks at the consumer once the connection is back: the messages
// delivered and unsettled that mine does not claim (this runner holds
// them, or settled them and its acknowledgement may have been lost) are
// the ones to wait for, as at the start. With none, or when they cannot
// be told, the parked jobs go on at once.
func (t *takeover) rearm(ctx context.Context, mine func(uint64) bool, bound time.Duration) {
	var (
		old map[uint64]struct{}
		top uint64
		ok  bool
	)
	if t.stream != nil { // nil: the stream could not be looked at when the runner started
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		old, top, ok = unsettled(lctx, t.cons, t.stream, mine)
		cancel()
	}
	t.mu.Lock()
	if !t.unknown {
		t.mu.Unlock()
		return // released meanwhile (shutdown)
	}
	if ctx.Err() != nil {
		t.mu.Unlock()
		t.releaseAll()
		return
	}
	t.unknown = false
	for seq := range t.seen {
		// Taken since mine was looked at: with this runner, not lost.
		delete(old, seq)
	}
	t.seen = nil
	if !ok {
		t.mu.Unlock()
		t.log.Warn("could not look at the messages delivered before the connection dropped; newer messages are not held back, so their order against those may not be kept")
		t.release()
		return
	}
	if t.old == nil {
		t.old = map[uint64]struct{}{}
	}
	for seq := range old {
		t.old[seq] = struct{}{}
	}
	t.top = max(t.top, top)
	n := len(t.old)
	start := !t.waiting && n > 0
	if start {
		t.waiting = true
	}
	t.until = time.Now().Add(bound)
	t.mu.Unlock()
	switch {
	case n == 0:
		t.release()
	case start:
		t.log.Info("the bus connection dropped with messages on their way to this runner: newer messages wait until those are delivered again or settled, so each conversation keeps its order",
			"messages", n, "up_to_sequence", top, "at_most", bound)
		t.busy.Go(func() { t.hold(ctx) })
	}
}

// take passes j on, or parks it while the hold lasts.
func (t *takeover) take(j *job) {
	t.mu.Lock()
	if !t.open && j.msg != nil {
		if md, err := j.msg.Metadata(); err == nil {
			seq := md.Sequence.Stream
			if t.unknown {
				t.seen[seq] = struct{}{}
			}
			switch {
			case t.unknown && md.NumDelivered == 1:
				// What to wait for is not known yet (suspend).
				t.parked = append(t.parked, j)
				t.mu.Unlock()
				return
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
	if held {
		t.waiting, t.until = true, time.Now().Add(max)
	}
	t.mu.Unlock()
	if !held {
		return
	}
	t.log.Info("messages taken before this runner started are not settled yet (a runner that died, or one still sending): newer messages wait until those are here or settled, so each conversation keeps its order",
		"messages", n, "up_to_sequence", t.top, "at_most", max)
	t.hold(ctx)
}

// hold polls until the old messages are here or gone, until t.until (which
// rearm may push back), or until ctx ends; then the parked jobs go on.
func (t *takeover) hold(ctx context.Context) {
	began := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Shutdown: the parked jobs go to the workers, whose
			// shutdown finishes or hands back what they hold.
			t.releaseAll()
			return
		case <-tick.C:
		}
		t.mu.Lock()
		expired, top := time.Now().After(t.until), t.top
		t.mu.Unlock()
		if expired {
			t.log.Warn("messages delivered before are still not settled; sending newer ones, whose order against those may not be kept",
				"up_to_sequence", top, "after", time.Since(began).Round(time.Millisecond))
			t.release()
			return
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
			t.log.Info("messages delivered before are here or settled; newer ones go on", "after", time.Since(began).Round(time.Millisecond))
			t.release()
			return
		}
	}
}

// release ends the hold: the parked jobs go on, in the order they came.
func (t *takeover) release() { t.end(false) }

// releaseAll ends the hold at shutdown, one that a dropped connection
// began (suspend) too.
func (t *takeover) releaseAll() { t.end(true) }

func (t *takeover) end(all bool) {
	t.mu.Lock()
	if t.unknown && !all {
		// The connection dropped since this hold began: rearm ends the
		// hold it began, this one's old messages with it.
		t.waiting = false
		t.mu.Unlock()
		return
	}
	t.unknown, t.seen = false, nil
	parked := t.parked
	t.parked, t.open, t.waiting = nil, true, false
	t.old = nil
	// Pushed under the lock: a job taken meanwhile must not pass them.
	for _, j := range parked {
		t.push(j)
	}
	t.mu.Unlock()
}
