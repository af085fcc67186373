package matrix_test

import (
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/matrix"
	"github.com/xmppgw/xmppgw/internal/dendritetest"
)

// TestTwoProcesses: two adapter processes share the bus (role adapters
// twice). Both send for the user; one syncs them, so what bob says is
// delivered once; when that one stops, the other takes over from where it
// stopped.
func TestTwoProcesses(t *testing.T) {
	w := newWorld(t)
	a1 := w.adapter(t)
	h1 := w.start(t, a1)
	a2 := w.adapter(t)
	h2 := w.start(t, a2)
	ctx := ctxT(t)
	for i, a := range []*matrix.Adapter{a1, a2} {
		body := []string{"from the first", "from the second"}[i]
		if _, err := a.Send(ctx, gateways.Outbound{ID: body, Key: body, From: aliceFull, To: "bob%localhost", Body: body}); err != nil {
			t.Fatalf("Send by process %d: %v", i+1, err)
		}
		w.bob.Wait(t, wait, body, func(e *event.Event) bool { return dendritetest.Body(e) == body })
	}
	seen := w.bob.Seen()
	room := seen[len(seen)-1].RoomID
	for _, body := range []string{"one", "two"} {
		if _, err := w.bob.SendText(ctx, room, body); err != nil {
			t.Fatal(err)
		}
	}
	total := func(body string) int { return count(h1.Delivered(), body) + count(h2.Delivered(), body) }
	waitFor(t, "two", func() bool { return total("two") > 0 })
	holder, otherHost := a1, h2
	if count(h2.Delivered(), "one") > 0 {
		holder, otherHost = a2, h1
	}
	if err := holder.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.bob.SendText(ctx, room, "three"); err != nil {
		t.Fatal(err)
	}
	in := otherHost.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "three" })
	if in.Delay.IsZero() {
		t.Errorf("the first message after the takeover has no delay stamp")
	}
	for _, body := range []string{"one", "two", "three"} {
		if n := total(body); n != 1 {
			t.Errorf("%q was delivered %d times by the two processes, want once", body, n)
		}
	}
}
