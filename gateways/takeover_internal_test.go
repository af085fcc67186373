package gateways

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

// After the bus connection drops, the messages JetStream delivered on it
// that never reached the runner (a fetch on its way) come back only after
// AckWait; the runner keeps them ahead of the newer ones (suspend, then
// rearm once the connection is back), and does not wait for what it holds
// or settled itself.
func TestTakeoverAfterAConnectionDrop(t *testing.T) {
	b := bustest.Open(t)
	ctx := t.Context()
	cc := OutboundConsumer("g", 4)
	cc.AckWait = 500 * time.Millisecond
	cons, err := b.Consumer(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("m%02d", i)
			e := &bus.Envelope{Kind: bus.KindMessage, ID: id, Gateway: "g", User: "a@example.com", Contact: "+15550001", Message: &bus.Message{ID: id, Body: id}}
			if _, err := b.Publish(ctx, bus.OutSubject("g"), e, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	fetch := func(n int) []jetstream.Msg {
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var got []jetstream.Msg
		for m := range batch.Messages() {
			got = append(got, m)
		}
		return got
	}
	var (
		mu     sync.Mutex
		pushed []string
	)
	tk := newTakeover(ctx, b.JetStream(), cons, slog.New(slog.DiscardHandler), func(j *job) {
		mu.Lock()
		pushed = append(pushed, j.env.ID)
		mu.Unlock()
		_ = j.msg.Ack()
	})
	if !tk.open {
		t.Fatal("a hold with nothing delivered before")
	}
	// What the runner holds (heldSet): every message it took, parked or not.
	var taken sync.Map
	take := func(ms []jetstream.Msg) {
		for _, m := range ms {
			taken.Store(mustSeq(t, m), true)
			e, err := bus.Decode(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			tk.take(&job{msg: m, env: e})
		}
	}

	// m00-m03: taken by this runner and settled; m04: taken and still
	// held (in a worker); m05-m09: delivered on the connection that
	// drops, never received.
	publish(0, 10)
	settled := fetch(4)
	take(settled)
	heldMsg := fetch(1)[0]
	lost := fetch(5)
	if len(settled) != 4 || len(lost) != 5 {
		t.Fatalf("fetched %d and %d", len(settled), len(lost))
	}
	taken.Store(mustSeq(t, heldMsg), true)
	mine := func(seq uint64) bool {
		_, ok := taken.Load(seq)
		return ok
	}

	tk.suspend()
	publish(10, 20)
	// First deliveries that come before rearm are parked too.
	take(fetch(3))
	tk.rearm(ctx, mine, 10*time.Second)
	tk.mu.Lock()
	old := len(tk.old)
	tk.mu.Unlock()
	if old != 5 {
		t.Fatalf("waiting for %d messages, want the 5 lost ones (not the held or settled ones)", old)
	}
	take(fetch(7))
	mu.Lock()
	if n := len(pushed); n != 4 {
		t.Errorf("pushed %v during the hold, want only m00-m03", pushed)
	}
	mu.Unlock()

	// After AckWait JetStream hands the lost ones out again; they go
	// first, then the parked ones, in order.
	// (The parked ones come back too, being held past AckWait here with
	// no progress acks as the runner's keepAlive sends: not taken again.)
	lostSeqs := map[uint64]bool{}
	for _, m := range lost {
		lostSeqs[mustSeq(t, m)] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var again []jetstream.Msg
		for _, m := range fetch(5) {
			if lostSeqs[mustSeq(t, m)] {
				again = append(again, m)
			}
		}
		take(again)
		mu.Lock()
		n := len(pushed)
		mu.Unlock()
		if n == 19 {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("pushed %v within 10s, want all 20 but m04 (held aside)", pushed)
		}
	}
	_ = heldMsg.Ack()
	var want []string
	for i := range 20 {
		if i != 4 {
			want = append(want, fmt.Sprintf("m%02d", i))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(pushed, want) {
		t.Errorf("pushed %v, want %v", pushed, want)
	}
}

func mustSeq(t *testing.T, m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	return md.Sequence.Stream
}
