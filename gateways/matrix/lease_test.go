package matrix_test

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

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
	holder, other, holderHost, otherHost := a1, a2, h1, h2
	if count(h2.Delivered(), "one") > 0 {
		holder, other, holderHost, otherHost = a2, a1, h2, h1
	}

	// carol opens a direct chat, which the holder accepts; the other
	// process writes to her in that room, not in a new one.
	carol := w.srv.User(t, "carol")
	dm, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{"@gtalice:localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	carol.Wait(t, wait, "gtalice joining", func(e *event.Event) bool {
		return e.Type == event.StateMember && e.GetStateKey() == "@gtalice:localhost" && e.Content.AsMember().Membership == event.MembershipJoin
	})
	waitFor(t, "m.direct listing carol's room", func() bool {
		var d event.DirectChatsEventContent
		_ = w.srv.Client(t, "gtalice", "password").GetAccountData(ctx, event.AccountDataDirectChats.Type, &d)
		return slices.Contains(d["@carol:localhost"], dm.RoomID)
	})
	if _, err := other.Send(ctx, gateways.Outbound{ID: "c1", Key: "kc1", From: aliceFull, To: "carol%localhost", Body: "hi carol"}); err != nil {
		t.Fatal(err)
	}
	got := carol.Wait(t, wait, "alice's message", func(e *event.Event) bool { return dendritetest.Body(e) == "hi carol" })
	if got.RoomID != dm.RoomID {
		t.Errorf("the other process wrote to carol in %s, not in her direct chat %s", got.RoomID, dm.RoomID)
	}

	// A room joined through the other process reaches the user through
	// the holder's sync.
	lounge, err := w.bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "lounge"})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Join(ctx, gateways.Join{User: aliceFull, Room: "#lounge%localhost", Nick: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.bob.SendText(ctx, lounge.RoomID, "in the lounge"); err != nil {
		t.Fatal(err)
	}
	in := holderHost.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "in the lounge" })
	if !in.Groupchat || in.From != "#lounge%localhost" || in.To != aliceFull {
		t.Errorf("delivered as %+v", in)
	}
	if err := holder.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.bob.SendText(ctx, room, "three"); err != nil {
		t.Fatal(err)
	}
	in = otherHost.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "three" })
	if in.Delay.IsZero() {
		t.Errorf("the first message after the takeover has no delay stamp")
	}
	for _, body := range []string{"one", "two", "three", "in the lounge"} {
		if n := total(body); n != 1 {
			t.Errorf("%q was delivered %d times by the two processes, want once", body, n)
		}
	}
}
