package gateways_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
)

// A send that takes longer than the consumer's ack wait is kept alive with
// progress acks: it is not delivered a second time.
func TestRunnerKeepsSlowSendsAlive(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{send: func(ctx context.Context, n int, _ gateways.Outbound) error {
		select {
		case <-time.After(1500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	h := startRunner(t, a, func(o *gateways.RunnerOptions) { o.AckWait = 300 * time.Millisecond })
	h.publish(sender, contact, &bus.Message{ID: "slow", Body: "takes a while"})
	h.waitSettled()
	if calls := a.Calls(); len(calls) != 1 {
		t.Fatalf("slow message sent %d times, want once: %+v", len(calls), calls)
	}
}

// One slow conversation with a deep backlog: every message the runner has
// fetched is kept alive while the slow send lasts, including those beyond
// what a worker's queue used to hold, so none is redelivered and handed
// to the adapter a second time.
func TestRunnerKeepsAFetchedBacklogAlive(t *testing.T) {
	t.Parallel()
	release := make(chan time.Time)
	a := &scriptAdapter{send: func(ctx context.Context, n int, _ gateways.Outbound) error {
		wait := time.After(5 * time.Millisecond) // a network's pace
		if n == 1 {
			wait = release // the first send outlasts several ack waits
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}}
	h := startRunner(t, a, func(o *gateways.RunnerOptions) {
		o.Workers = 4 // MaxAckPending 256, more than a worker queued before
		o.AckWait = time.Second
		o.SendTimeout = 30 * time.Second
	})
	startedHost(t, a)
	const n = 200 // one conversation: one worker
	for i := range n {
		h.publish(sender, contact, &bus.Message{ID: fmt.Sprintf("b%03d", i), Body: "hi"})
	}
	waitCalls(t, a, 1)
	// Three ack waits pass while the first send hangs: a message outside
	// the kept-alive set would be redelivered meanwhile.
	time.Sleep(3 * time.Second) // the ack waits must elapse: the test is that nothing happens
	close(release)
	h.waitSettled()
	seen := map[string]int{}
	for _, c := range a.Calls() {
		seen[c.ID]++
		if c.Attempt != 1 {
			t.Errorf("%s handed over as attempt %d: it was redelivered", c.ID, c.Attempt)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages sent, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k > 1 {
			t.Errorf("%s sent %d times", id, k)
		}
	}
}
