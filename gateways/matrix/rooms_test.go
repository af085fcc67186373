package matrix_test

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/dendritetest"
)

// TestRoom: a Matrix room as a XEP-0045 room: joined by alias, its
// members as occupants by display name, the user, then the topic;
// groupchat both ways (the user's reflected with their id); members
// joining, renamed and leaving; a new topic; leaving.
func TestRoom(t *testing.T) {
	w := newWorld(t)
	a := w.adapter(t)
	h := w.start(t, a)
	ctx := ctxT(t)
	room, err := w.bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "lounge", Topic: "welcome"})
	if err != nil {
		t.Fatal(err)
	}
	const addr = "#lounge%localhost"
	if err := a.Join(ctx, gateways.Join{User: aliceFull, Room: addr, Nick: "alice"}); err != nil {
		t.Fatal(err)
	}
	subject := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Subject != nil })
	if *subject.Subject != "welcome" || subject.From != addr || subject.To != aliceFull || !subject.Groupchat {
		t.Errorf("subject %+v, want welcome from %s", subject, addr)
	}
	var order []string
	for _, o := range h.Occupants() {
		order = append(order, o.Nick)
	}
	if len(order) != 2 || order[0] != "bob" || order[1] != "alice" || !h.Occupants()[1].Self {
		t.Errorf("occupants %q, want bob, then alice (self)", order)
	}

	if _, err := w.bob.SendText(ctx, room.RoomID, "hi room"); err != nil {
		t.Fatal(err)
	}
	in := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "hi room" })
	if in.Nick != "bob" || in.From != addr || in.To != aliceFull || !in.Groupchat {
		t.Errorf("groupchat delivered as %+v", in)
	}
	sent, err := a.Send(ctx, gateways.Outbound{ID: "g1", Key: "kg1", From: aliceFull, To: addr, Body: "hello all", Groupchat: true})
	if err != nil {
		t.Fatal(err)
	}
	w.bob.Wait(t, wait, "alice's groupchat", func(e *event.Event) bool { return dendritetest.Body(e) == "hello all" && e.RoomID == room.RoomID })
	refl := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "hello all" })
	if refl.OriginID != "g1" || refl.Nick != "alice" || refl.ProviderID != sent.IDs[0] {
		t.Errorf("reflection %+v, want origin id g1 from alice", refl)
	}

	carol := w.srv.User(t, "carol")
	if _, err := carol.JoinRoom(ctx, "#lounge:localhost", nil); err != nil {
		t.Fatal(err)
	}
	h.WaitOccupant(t, wait, func(o gateways.Occupant) bool { return o.Nick == "carol" && !o.Left })
	if err := w.bob.SetDisplayName(ctx, "Bobby"); err != nil {
		t.Fatal(err)
	}
	h.WaitOccupant(t, wait, func(o gateways.Occupant) bool { return o.Nick == "bob" && o.Left && o.NewNick == "Bobby" })
	h.WaitOccupant(t, wait, func(o gateways.Occupant) bool { return o.Nick == "Bobby" && !o.Left })
	if _, err := carol.LeaveRoom(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	h.WaitOccupant(t, wait, func(o gateways.Occupant) bool { return o.Nick == "carol" && o.Left })
	if _, err := w.bob.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", &event.TopicEventContent{Topic: "new topic"}); err != nil {
		t.Fatal(err)
	}
	nt := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Subject != nil && *m.Subject == "new topic" })
	if nt.Nick != "Bobby" {
		t.Errorf("topic set by %q, want Bobby", nt.Nick)
	}

	// A restart of the adapter keeps the room: what is said meanwhile
	// and afterwards arrives.
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.bob.SendText(ctx, room.RoomID, "while away"); err != nil {
		t.Fatal(err)
	}
	a = w.adapter(t)
	h = w.start(t, a)
	got := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "while away" })
	if got.Nick != "Bobby" || got.From != addr || got.To != aliceFull || !got.Groupchat {
		t.Errorf("after the restart: %+v", got)
	}
	if _, err := a.Send(ctx, gateways.Outbound{ID: "g2", Key: "kg2", From: aliceFull, To: addr, Body: "still here", Groupchat: true}); err != nil {
		t.Fatal(err)
	}
	w.bob.Wait(t, wait, "alice's groupchat after the restart", func(e *event.Event) bool { return dendritetest.Body(e) == "still here" })

	if err := a.Leave(ctx, gateways.Leave{User: aliceFull, Room: addr, Nick: "alice"}); err != nil {
		t.Fatal(err)
	}
	h.WaitOccupant(t, wait, func(o gateways.Occupant) bool { return o.Self && o.Left })
	w.bob.Wait(t, wait, "alice leaving", func(e *event.Event) bool {
		return e.Type == event.StateMember && e.GetStateKey() == "@gtalice:localhost" && e.Content.AsMember().Membership == event.MembershipLeave
	})
}

// TestInvite: an invitation to a room (not a direct chat) becomes a
// XEP-0249 invitation from the inviter, to the room's alias; joining it
// works like any room.
func TestInvite(t *testing.T) {
	w := newWorld(t)
	a := w.adapter(t)
	h := w.start(t, a)
	ctx := ctxT(t)
	if _, err := w.bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "party", Name: "Party",
		Invite: []id.UserID{"@gtalice:localhost"}}); err != nil {
		t.Fatal(err)
	}
	in := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Invite != "" })
	if in.Invite != "#party%localhost" || in.From != "bob%localhost" || in.To != alice || in.Body == "" {
		t.Errorf("invitation delivered as %+v", in)
	}
	if err := a.Join(ctx, gateways.Join{User: aliceFull, Room: in.Invite, Nick: "alice"}); err != nil {
		t.Fatal(err)
	}
	h.WaitOccupant(t, wait, func(o gateways.Occupant) bool { return o.Self && o.Room == "#party%localhost" })
}
