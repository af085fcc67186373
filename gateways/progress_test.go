package gateways_test

import (
	"context"
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
