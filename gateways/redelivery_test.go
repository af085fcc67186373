package gateways_test

import (
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/metrics"
)

// A message the adapter accepted whose acknowledgement was lost (the store
// failed or restarted in between) comes back from JetStream: the runner
// recognises it and acknowledges it without handing it to the adapter
// again — a second IRC line or sandbox message otherwise, since those
// adapters keep no attempt records.
func TestRunnerRedeliveryAfterLostAckIsNotSentAgain(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	b := bustest.Open(t)
	o := defaultOptions(b, a)
	o.AckWait = 300 * time.Millisecond // the lost ack's message comes back soon
	r, err := gateways.NewRunner(o)
	if err != nil {
		t.Fatal(err)
	}
	gateways.LoseAcks(r, 1)
	h := runRunner(t, b, a, o, r)

	h.publish(sender, contact, &bus.Message{ID: "once", Body: "hi"})
	waitCalls(t, a, 1)
	// Settled only once the redelivered copy has been acknowledged.
	h.waitSettled()
	if calls := a.Calls(); len(calls) != 1 {
		t.Fatalf("the adapter was handed the message %d times (attempts %v), want once", len(calls), attempts(calls))
	}
	if got := h.counter(metrics.Out, metrics.Duplicate); got != 1 {
		t.Errorf("out/duplicate = %v, want 1 (the redelivery)", got)
	}
	if in := h.inbound(); len(in) != 0 {
		t.Errorf("the runner reported %d envelopes for the sender, want none: %+v", len(in), in[0])
	}
}

func attempts(calls []gateways.Outbound) []int {
	var n []int
	for _, c := range calls {
		n = append(n, c.Attempt)
	}
	return n
}
