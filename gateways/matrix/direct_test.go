package matrix_test

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/dendritetest"
)

// TestDirectFromMatrix: bob opens a direct chat with the user the way
// Element does; the adapter accepts it, and everything bob does there
// reaches the user: messages, an edit, a reply, a reaction and its
// removal, a redaction, typing, a read receipt of the user's message.
func TestDirectFromMatrix(t *testing.T) {
	w := newWorld(t)
	a := w.adapter(t)
	h := w.start(t, a)
	ctx := ctxT(t)
	room, err := w.bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{"@gtalice:localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	// The adapter joins; then bob's message comes through.
	w.bob.Wait(t, wait, "gtalice joining", func(e *event.Event) bool {
		return e.Type == event.StateMember && e.GetStateKey() == "@gtalice:localhost" && e.Content.AsMember().Membership == event.MembershipJoin
	})
	hi, err := w.bob.SendText(ctx, room.RoomID, "hi from matrix")
	if err != nil {
		t.Fatal(err)
	}
	in := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "hi from matrix" })
	if in.From != "bob%localhost" || in.To != alice || in.ProviderID != string(hi.EventID) {
		t.Errorf("delivered %+v, want from bob%%localhost to %s with the event id %s", in, alice, hi.EventID)
	}

	// The user answers in the same room.
	sent, err := a.Send(ctx, gateways.Outbound{ID: "x1", Key: "k1", From: aliceFull, To: "bob%localhost", Body: "hello bob"})
	if err != nil {
		t.Fatal(err)
	}
	mine := w.bob.Wait(t, wait, "the user's answer", func(e *event.Event) bool { return dendritetest.Body(e) == "hello bob" })
	if mine.RoomID != room.RoomID || !slices.Equal(sent.IDs, []string{string(mine.ID)}) {
		t.Errorf("the answer went to %s as %s, Send said %v; want room %s", mine.RoomID, mine.ID, sent.IDs, room.RoomID)
	}

	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "hi (edited)"}
	edit.SetEdit(hi.EventID)
	if _, err := w.bob.SendMessageEvent(ctx, room.RoomID, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	got := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Replace != "" })
	if got.Replace != string(hi.EventID) || got.Body != "hi (edited)" {
		t.Errorf("edit delivered as %+v", got)
	}

	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "a reply"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(mine.ID)
	if _, err := w.bob.SendMessageEvent(ctx, room.RoomID, event.EventMessage, reply); err != nil {
		t.Fatal(err)
	}
	got = h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "a reply" })
	if got.ReplyTo != string(mine.ID) {
		t.Errorf("reply delivered as %+v, want ReplyTo %s", got, mine.ID)
	}

	react, err := w.bob.SendReaction(ctx, room.RoomID, mine.ID, "👍")
	if err != nil {
		t.Fatal(err)
	}
	r := h.WaitReaction(t, wait, func(r gateways.InboundReaction) bool { return r.Add == "👍" })
	if r.Target != string(mine.ID) || r.Contact != "bob%localhost" {
		t.Errorf("reaction delivered as %+v", r)
	}
	if _, err := w.bob.RedactEvent(ctx, room.RoomID, react.EventID); err != nil {
		t.Fatal(err)
	}
	r = h.WaitReaction(t, wait, func(r gateways.InboundReaction) bool { return r.Remove == "👍" })
	if r.Target != string(mine.ID) {
		t.Errorf("reaction removal delivered as %+v", r)
	}

	if _, err := w.bob.RedactEvent(ctx, room.RoomID, hi.EventID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retraction", func() bool {
		return slices.ContainsFunc(h.Retractions(), func(r gateways.InboundRetraction) bool { return r.Target == string(hi.EventID) })
	})

	if _, err := w.bob.UserTyping(ctx, room.RoomID, true, 10e9); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "composing", func() bool {
		return slices.ContainsFunc(h.Typing(), func(x gateways.InboundTyping) bool {
			return x.State == bus.TypingComposing && x.Contact == "bob%localhost"
		})
	})
	if err := w.bob.SendReceipt(ctx, room.RoomID, mine.ID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the read marker", func() bool {
		return slices.ContainsFunc(h.Markers(), func(x gateways.InboundMarker) bool {
			return x.Target == string(mine.ID) && x.State == bus.MarkerDisplayed
		})
	})
	if n := count(h.Delivered(), "hi from matrix"); n != 1 {
		t.Errorf("bob's message was delivered %d times", n)
	}
}

// TestDirectToMatrix: the user writes to bob first; the adapter creates
// the direct chat and records it in m.direct, and the user's edit,
// reply, reactions (added, then removed), read marker, typing and
// retraction reach bob as Matrix events.
func TestDirectToMatrix(t *testing.T) {
	w := newWorld(t)
	a := w.adapter(t)
	w.start(t, a)
	ctx := ctxT(t)
	sent, err := a.Send(ctx, gateways.Outbound{ID: "x1", Key: "k1", From: aliceFull, To: "bob%localhost", Body: "first"})
	if err != nil {
		t.Fatal(err)
	}
	first := w.bob.Wait(t, wait, "the first message", func(e *event.Event) bool { return dendritetest.Body(e) == "first" })
	// A retry of the same bus message is the same transaction: one event.
	again, err := a.Send(ctx, gateways.Outbound{ID: "x1", Key: "k1", From: aliceFull, To: "bob%localhost", Body: "first", Attempt: 2})
	if err != nil || !slices.Equal(again.IDs, sent.IDs) {
		t.Errorf("retried Send = %v, %v; want the same event %v", again.IDs, err, sent.IDs)
	}
	var d event.DirectChatsEventContent
	if err := w.srv.Client(t, "gtalice", "password").GetAccountData(ctx, event.AccountDataDirectChats.Type, &d); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d["@bob:localhost"], first.RoomID) {
		t.Errorf("m.direct = %v, want bob's room %s", d, first.RoomID)
	}
	ref := gateways.Ref{ID: "x1", NetworkIDs: sent.IDs}
	if _, err := a.Edit(ctx, gateways.Edit{Outbound: gateways.Outbound{ID: "x2", Key: "k2", From: aliceFull, To: "bob%localhost", Body: "first, edited"}, Target: ref}); err != nil {
		t.Fatal(err)
	}
	ed := w.bob.Wait(t, wait, "the edit", func(e *event.Event) bool { return dendritetest.Body(e) == "first, edited" })
	if ed.Content.AsMessage().RelatesTo.GetReplaceID() != first.ID {
		t.Errorf("the edit does not replace %s: %+v", first.ID, ed.Content.AsMessage().RelatesTo)
	}
	if _, err := a.SendReply(ctx, gateways.Outbound{ID: "x3", Key: "k3", From: aliceFull, To: "bob%localhost", Body: "replying", ReplyTo: &ref}); err != nil {
		t.Fatal(err)
	}
	rp := w.bob.Wait(t, wait, "the reply", func(e *event.Event) bool { return dendritetest.Body(e) == "replying" })
	if rp.Content.AsMessage().RelatesTo.GetReplyTo() != first.ID {
		t.Errorf("the reply is not in reply to %s", first.ID)
	}
	if err := a.React(ctx, gateways.Reaction{From: aliceFull, To: "bob%localhost", Target: ref, Emoji: []string{"🎉", "👍"}, Added: []string{"🎉", "👍"}, Key: "k4"}); err != nil {
		t.Fatal(err)
	}
	tada := w.bob.Wait(t, wait, "the 🎉 reaction", func(e *event.Event) bool {
		return e.Type == event.EventReaction && e.Content.AsReaction().RelatesTo.Key == "🎉" && e.Content.AsReaction().RelatesTo.EventID == first.ID
	})
	if err := a.React(ctx, gateways.Reaction{From: aliceFull, To: "bob%localhost", Target: ref, Emoji: []string{"👍"}, Removed: []string{"🎉"}, Key: "k5"}); err != nil {
		t.Fatal(err)
	}
	w.bob.Wait(t, wait, "the 🎉 reaction's redaction", func(e *event.Event) bool { return e.Type == event.EventRedaction && e.Redacts == tada.ID })
	if err := a.Type(ctx, gateways.Typing{From: aliceFull, To: "bob%localhost", State: bus.TypingComposing}); err != nil {
		t.Fatal(err)
	}
	w.bob.Wait(t, wait, "typing", func(e *event.Event) bool {
		return e.Type == event.EphemeralEventTyping && slices.Contains(e.Content.AsTyping().UserIDs, "@gtalice:localhost")
	})
	bobs, err := w.bob.SendText(ctx, first.RoomID, "bob's")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Mark(ctx, gateways.Marker{From: aliceFull, To: "bob%localhost", State: bus.MarkerDisplayed, Target: gateways.Ref{ID: "b", NetworkIDs: []string{string(bobs.EventID)}}}); err != nil {
		t.Fatal(err)
	}
	w.bob.Wait(t, wait, "the read receipt", func(e *event.Event) bool {
		if e.Type != event.EphemeralEventReceipt {
			return false
		}
		_, ok := (*e.Content.AsReceipt())[bobs.EventID][event.ReceiptTypeRead]["@gtalice:localhost"]
		return ok
	})
	if err := a.Retract(ctx, gateways.Retraction{From: aliceFull, To: "bob%localhost", Target: ref, Key: "k6"}); err != nil {
		t.Fatal(err)
	}
	w.bob.Wait(t, wait, "the retraction", func(e *event.Event) bool { return e.Type == event.EventRedaction && e.Redacts == first.ID })
}

// TestResume: messages sent while the adapter is stopped are delivered
// when it starts again (from the stored sync token), in order, once.
func TestResume(t *testing.T) {
	w := newWorld(t)
	a := w.adapter(t)
	h := w.start(t, a)
	ctx := ctxT(t)
	if _, err := a.Send(ctx, gateways.Outbound{ID: "x1", Key: "k1", From: aliceFull, To: "bob%localhost", Body: "hello"}); err != nil {
		t.Fatal(err)
	}
	first := w.bob.Wait(t, wait, "the first message", func(e *event.Event) bool { return dendritetest.Body(e) == "hello" })
	if _, err := w.bob.SendText(ctx, first.RoomID, "before"); err != nil {
		t.Fatal(err)
	}
	h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "before" })
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"while down 1", "while down 2", "while down 3"}
	for _, body := range want {
		if _, err := w.bob.SendText(ctx, first.RoomID, body); err != nil {
			t.Fatal(err)
		}
	}
	b := w.adapter(t) // a new process
	h2 := w.start(t, b)
	h2.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == want[len(want)-1] })
	var got []string
	for _, m := range h2.Delivered() {
		got = append(got, m.Body)
	}
	if !slices.Equal(got, want) {
		t.Errorf("after the restart the adapter delivered %q, want %q (in order, once, nothing from before)", got, want)
	}
	for _, m := range h2.Delivered() {
		if m.Delay.IsZero() {
			t.Errorf("%q, which arrived while the adapter was stopped, has no delay stamp", m.Body)
		}
	}
	for _, m := range h.Delivered() {
		if m.Body == "before" && !m.Delay.IsZero() {
			t.Errorf("%q, delivered at once, has a delay stamp %v", m.Body, m.Delay)
		}
	}
}

func count(ms []gateways.Inbound, body string) int {
	n := 0
	for _, m := range ms {
		if m.Body == body {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !pollUntil(wait, cond) {
		t.Fatalf("%s did not arrive within %v", what, wait)
	}
}

// TestHomeserverRestart: the homeserver restarts mid-conversation; the
// adapter's sync resumes from its token: what is said afterwards arrives
// once, in order, and the user's messages go out again.
func TestHomeserverRestart(t *testing.T) {
	w := newWorld(t)
	a := w.adapter(t)
	h := w.start(t, a)
	ctx := ctxT(t)
	if _, err := a.Send(ctx, gateways.Outbound{ID: "x1", Key: "k1", From: aliceFull, To: "bob%localhost", Body: "hello"}); err != nil {
		t.Fatal(err)
	}
	first := w.bob.Wait(t, wait, "the first message", func(e *event.Event) bool { return dendritetest.Body(e) == "hello" })
	if _, err := w.bob.SendText(ctx, first.RoomID, "before"); err != nil {
		t.Fatal(err)
	}
	h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "before" })
	w.srv.Stop(t)
	w.srv.Start(t)
	want := []string{"before", "after 1", "after 2"}
	for _, body := range want[1:] {
		if _, err := w.bob.SendText(ctx, first.RoomID, body); err != nil {
			t.Fatal(err)
		}
	}
	h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "after 2" })
	var got []string
	for _, m := range h.Delivered() {
		got = append(got, m.Body)
	}
	if !slices.Equal(got, want) {
		t.Errorf("delivered %q, want %q (once each, in order)", got, want)
	}
	// The user's next message goes out (retried as the runner would
	// while the adapter's connections recover).
	m := gateways.Outbound{ID: "x2", Key: "k2", From: aliceFull, To: "bob%localhost", Body: "back"}
	var err error
	if !pollUntil(wait, func() bool { _, err = a.Send(ctx, m); return err == nil }) {
		t.Fatalf("Send after the restart: %v", err)
	}
	w.bob.Wait(t, wait, "the message after the restart", func(e *event.Event) bool { return dendritetest.Body(e) == "back" })
}
