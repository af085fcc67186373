package gateways_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

// A runner that starts while another runner's messages are unsettled (that
// one was killed holding them) sends them before the newer ones: JetStream
// hands the dead runner's messages out again only after AckWait, and the
// new runner would otherwise send a conversation's later messages first.
func TestRunnerTakeoverKeepsOrder(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	b := bustest.Open(t)
	o := defaultOptions(b, a)
	o.AckWait = 500 * time.Millisecond
	o.Workers = 4
	h := &harness{t: t, b: b}

	// The dead runner: it took the first 20 messages of the conversation
	// and never settled them.
	cc := gateways.OutboundConsumer(gw, o.Workers)
	cc.AckWait = o.AckWait
	cons, err := b.Consumer(t.Context(), cc)
	if err != nil {
		t.Fatal(err)
	}
	const old, n = 20, 60
	for i := range old {
		h.publish(sender, contact, &bus.Message{ID: fmt.Sprintf("m%02d", i), Body: fmt.Sprint(i)})
	}
	batch, err := cons.Fetch(old, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	taken := 0
	for range batch.Messages() {
		taken++
	}
	if taken != old {
		t.Fatalf("the dead runner took %d messages, want %d", taken, old)
	}
	for i := old; i < n; i++ {
		h.publish(sender, contact, &bus.Message{ID: fmt.Sprintf("m%02d", i), Body: fmt.Sprint(i)})
	}

	r, err := gateways.NewRunner(o)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	h = runRunner(t, b, a, o, r)
	calls := waitCalls(t, a, n)
	h.waitSettled()
	took := time.Since(began)
	var ids []string
	for _, c := range calls {
		ids = append(ids, c.ID)
	}
	if len(ids) != n || !slices.IsSorted(ids) {
		t.Fatalf("sent %d messages in this order, want %d in order: %v", len(ids), n, ids)
	}
	if max := 2*o.AckWait + 5*time.Second; took >= max {
		t.Errorf("took %v: the hold ran to its limit (%v) instead of ending when the old messages were settled", took, max)
	}
}
