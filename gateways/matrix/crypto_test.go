//go:build goolm

package matrix_test

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/matrix"
	"github.com/xmppgw/xmppgw/internal/dendritetest"
)

// waitGatewayKeys waits until the homeserver has the keys of the
// gateway's device for gtalice (uploaded when its session opened them).
func (w *world) waitGatewayKeys(t *testing.T) {
	t.Helper()
	w.bob.WaitDeviceKeys(t, "@gtalice:localhost", wait)
}

// startEncrypted starts a (bob must have encryption), waits for its
// device's keys and opens the encrypted direct chat bob starts.
func (w *world) startEncrypted(t *testing.T, a *matrix.Adapter) (*gatewaytest.Host, id.RoomID) {
	t.Helper()
	h := w.start(t, a)
	w.waitGatewayKeys(t)
	return h, encryptedDM(t, w)
}

// wireType is the type of an event as the homeserver stores it.
func wireType(t *testing.T, u *dendritetest.User, room id.RoomID, ev id.EventID) event.Type {
	t.Helper()
	e, err := u.GetEvent(ctxT(t), room, ev)
	if err != nil {
		t.Fatalf("GetEvent %s: %v", ev, err)
	}
	return e.Type
}

// encryptedDM: bob, with encryption, opens a direct chat with the user the
// way Element does (encrypted from its creation); the adapter joins.
func encryptedDM(t *testing.T, w *world) id.RoomID {
	t.Helper()
	room, err := w.bob.CreateRoom(ctxT(t), &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{"@gtalice:localhost"}, InitialState: dendritetest.EncryptedState()})
	if err != nil {
		t.Fatal(err)
	}
	w.bob.Wait(t, wait, "gtalice joining", func(e *event.Event) bool {
		return e.RoomID == room.RoomID && e.Type == event.StateMember && e.GetStateKey() == "@gtalice:localhost" && e.Content.AsMember().Membership == event.MembershipJoin
	})
	return room.RoomID
}

// TestEncryptedDirect: an encrypted direct chat both ways, everything on
// the wire m.room.encrypted: messages, an edit, a reply, reactions; an
// event whose key never comes is told to the user, not dropped.
func TestEncryptedDirect(t *testing.T) {
	matrix.SetKeyWait(t, 3*time.Second)
	w := newWorld(t)
	w.bob.EnableCrypto(t)
	a := w.adapter(t)
	h, room := w.startEncrypted(t, a)
	ctx := ctxT(t)

	start := time.Now()
	hi, err := w.bob.SendText(ctx, room, "secret hi")
	if err != nil {
		t.Fatal(err)
	}
	in := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "secret hi" })
	t.Logf("bob's first encrypted message reached the user decrypted %v after it was sent", time.Since(start).Round(time.Millisecond))
	if got := wireType(t, w.bob, room, hi.EventID); got != event.EventEncrypted {
		t.Errorf("bob's message is %s on the homeserver, want m.room.encrypted", got.Type)
	}
	if in.From != "bob%localhost" || in.ProviderID != string(hi.EventID) {
		t.Errorf("delivered %+v, want from bob%%localhost with the event id %s", in, hi.EventID)
	}

	sent, err := a.Send(ctx, gateways.Outbound{ID: "x1", Key: "k1", From: aliceFull, To: "bob%localhost", Body: "secret hello"})
	if err != nil {
		t.Fatal(err)
	}
	mine := w.bob.Wait(t, wait, "the user's encrypted answer", func(e *event.Event) bool { return dendritetest.Body(e) == "secret hello" })
	if !mine.Mautrix.WasEncrypted || wireType(t, w.bob, room, mine.ID) != event.EventEncrypted {
		t.Errorf("the user's answer was not encrypted on the wire")
	}
	if mine.RoomID != room || !slices.Equal(sent.IDs, []string{string(mine.ID)}) {
		t.Errorf("the answer went to %s as %s, Send said %v; want room %s", mine.RoomID, mine.ID, sent.IDs, room)
	}

	// Relations inside encrypted events, both ways.
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "secret hi (edited)"}
	edit.SetEdit(hi.EventID)
	if _, err := w.bob.SendMessageEvent(ctx, room, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	got := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Replace != "" })
	if got.Replace != string(hi.EventID) || got.Body != "secret hi (edited)" {
		t.Errorf("the encrypted edit was delivered as %+v", got)
	}
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "a secret reply"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(mine.ID)
	if _, err := w.bob.SendMessageEvent(ctx, room, event.EventMessage, reply); err != nil {
		t.Fatal(err)
	}
	got = h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "a secret reply" })
	if got.ReplyTo != string(mine.ID) {
		t.Errorf("the encrypted reply was delivered as %+v, want ReplyTo %s", got, mine.ID)
	}
	react, err := w.bob.SendEncrypted(ctx, room, event.EventReaction, &event.ReactionEventContent{
		RelatesTo: event.RelatesTo{Type: event.RelAnnotation, EventID: mine.ID, Key: "🔒"}})
	if err != nil {
		t.Fatal(err)
	}
	r := h.WaitReaction(t, wait, func(r gateways.InboundReaction) bool { return r.Add == "🔒" })
	if r.Target != string(mine.ID) || wireType(t, w.bob, room, react.EventID) != event.EventEncrypted {
		t.Errorf("the encrypted reaction was delivered as %+v", r)
	}
	ref := gateways.Ref{ID: "x1", NetworkIDs: sent.IDs}
	if _, err := a.Edit(ctx, gateways.Edit{Outbound: gateways.Outbound{ID: "x2", Key: "k2", From: aliceFull, To: "bob%localhost", Body: "secret hello, edited"}, Target: ref}); err != nil {
		t.Fatal(err)
	}
	ed := w.bob.Wait(t, wait, "the user's encrypted edit", func(e *event.Event) bool { return dendritetest.Body(e) == "secret hello, edited" })
	if !ed.Mautrix.WasEncrypted || ed.Content.AsMessage().RelatesTo.GetReplaceID() != mine.ID {
		t.Errorf("the user's edit: encrypted %v, replaces %v; want an encrypted edit of %s", ed.Mautrix.WasEncrypted, ed.Content.AsMessage().RelatesTo, mine.ID)
	}
	if err := a.React(ctx, gateways.Reaction{From: aliceFull, To: "bob%localhost", Target: gateways.Ref{ID: "b", NetworkIDs: []string{string(hi.EventID)}}, Emoji: []string{"🎉"}, Added: []string{"🎉"}, Key: "k3"}); err != nil {
		t.Fatal(err)
	}
	tada := w.bob.Wait(t, wait, "the user's reaction", func(e *event.Event) bool {
		return e.Type == event.EventReaction && e.Content.AsReaction().RelatesTo.Key == "🎉"
	})
	if !tada.Mautrix.WasEncrypted {
		t.Errorf("the user's reaction was not encrypted")
	}

	// An event whose key never comes: the user is told, in the chat.
	bogus := &event.EncryptedEventContent{Algorithm: id.AlgorithmMegolmV1, SenderKey: id.SenderKey(randomB64(32)),
		DeviceID: "NOSUCHDEVICE", SessionID: id.SessionID(randomB64(32)), MegolmCiphertext: []byte(randomB64(120))}
	lost, err := w.bob.SendMessageEvent(ctx, room, event.EventEncrypted, bogus, mautrix.ReqSendEvent{DontEncrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	told := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.ProviderID == string(lost.EventID) })
	if !strings.Contains(told.Body, "could not decrypt") || told.From != "bob%localhost" {
		t.Errorf("the undecryptable event reached the user as %+v, want a notice that it could not be decrypted", told)
	}
	for _, body := range []string{"secret hi", "a secret reply"} {
		if n := count(h.Delivered(), body); n != 1 {
			t.Errorf("%q was delivered %d times", body, n)
		}
	}
	files, _ := filepath.Glob(filepath.Join(w.cfg.CryptoDir, "*"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			t.Logf("the device's crypto store: %s, %d bytes", filepath.Ext(f), fi.Size())
		}
	}
}

// randomB64 is n random bytes in unpadded base64, as Olm writes keys and
// ciphertexts.
func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

// storeSize is the size of the files in the crypto directory.
func storeSize(t *testing.T, dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestEncryptedRoom: an encrypted room joined from XMPP, groupchat both
// ways.
func TestEncryptedRoom(t *testing.T) {
	w := newWorld(t)
	w.bob.EnableCrypto(t)
	a := w.adapter(t)
	h := w.start(t, a)
	w.waitGatewayKeys(t)
	ctx := ctxT(t)
	created, err := w.bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "vault", Topic: "secrets", InitialState: dendritetest.EncryptedState()})
	if err != nil {
		t.Fatal(err)
	}
	const roomAddr = "#vault%localhost"
	if err := a.Join(ctx, gateways.Join{User: aliceFull, Room: roomAddr, Nick: "alice"}); err != nil {
		t.Fatal(err)
	}
	w.bob.Wait(t, wait, "gtalice joining", func(e *event.Event) bool {
		return e.RoomID == created.RoomID && e.Type == event.StateMember && e.GetStateKey() == "@gtalice:localhost"
	})
	sent, err := a.Send(ctx, gateways.Outbound{ID: "g1", Key: "kg1", From: aliceFull, To: roomAddr, Groupchat: true, Body: "hello vault"})
	if err != nil {
		t.Fatal(err)
	}
	e := w.bob.Wait(t, wait, "the user's groupchat", func(e *event.Event) bool { return dendritetest.Body(e) == "hello vault" })
	if !e.Mautrix.WasEncrypted || wireType(t, w.bob, created.RoomID, e.ID) != event.EventEncrypted || !slices.Equal(sent.IDs, []string{string(e.ID)}) {
		t.Errorf("the user's groupchat: encrypted %v, event %s, Send said %v", e.Mautrix.WasEncrypted, e.ID, sent.IDs)
	}
	b, err := w.bob.SendText(ctx, created.RoomID, "hi from the vault")
	if err != nil {
		t.Fatal(err)
	}
	in := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "hi from the vault" })
	if !in.Groupchat || in.From != roomAddr || in.Nick != "bob" || wireType(t, w.bob, created.RoomID, b.EventID) != event.EventEncrypted {
		t.Errorf("bob's encrypted groupchat was delivered as %+v", in)
	}
}

// TestEncryptedResume: the adapter stops mid-conversation in an encrypted
// chat; bob goes on writing; a new adapter (a new process: the same
// bucket and crypto_dir) delivers what he wrote, decrypted, once, in
// order, and the user's answer is encrypted and readable. Logging out
// then deletes the device's crypto store.
func TestEncryptedResume(t *testing.T) {
	w := newWorld(t)
	w.bob.EnableCrypto(t)
	a := w.adapter(t)
	h, room := w.startEncrypted(t, a)
	ctx := ctxT(t)
	if _, err := w.bob.SendText(ctx, room, "before"); err != nil {
		t.Fatal(err)
	}
	h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == "before" })
	if _, err := a.Send(ctx, gateways.Outbound{ID: "x1", Key: "k1", From: aliceFull, To: "bob%localhost", Body: "answer before"}); err != nil {
		t.Fatal(err)
	}
	w.bob.Wait(t, wait, "the answer before", func(e *event.Event) bool { return dendritetest.Body(e) == "answer before" })
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"while down 1", "while down 2", "while down 3"}
	for _, body := range want {
		if _, err := w.bob.SendText(ctx, room, body); err != nil {
			t.Fatal(err)
		}
	}
	b := w.adapter(t)
	h2 := w.start(t, b)
	h2.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.Body == want[len(want)-1] })
	if got := bodies(h2); !slices.Equal(got, want) {
		t.Errorf("after the restart the adapter delivered %q, want %q (decrypted, in order, once)", got, want)
	}
	if _, err := b.Send(ctx, gateways.Outbound{ID: "x2", Key: "k2", From: aliceFull, To: "bob%localhost", Body: "answer after"}); err != nil {
		t.Fatal(err)
	}
	e := w.bob.Wait(t, wait, "the answer after the restart", func(e *event.Event) bool { return dendritetest.Body(e) == "answer after" })
	if !e.Mautrix.WasEncrypted {
		t.Errorf("the answer after the restart was not encrypted")
	}
	if storeSize(t, w.cfg.CryptoDir) == 0 {
		t.Fatalf("no crypto store in %s", w.cfg.CryptoDir)
	}
	if _, err := b.Logout(ctx, alice); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crypto store's deletion", func() bool { return storeSize(t, w.cfg.CryptoDir) == 0 })
}

func bodies(h *gatewaytest.Host) []string {
	var got []string
	for _, m := range h.Delivered() {
		got = append(got, m.Body)
	}
	return got
}

// TestConformanceEncrypted runs the adapter contract's suite with bob
// encrypting (so the direct chat the adapter creates is encrypted) and the
// suite's room encrypted.
func TestConformanceEncrypted(t *testing.T) {
	bob := conformance(t, func(u *dendritetest.User) { u.EnableCrypto(t) }, dendritetest.EncryptedState())
	n := 0
	for _, e := range bob.Seen() {
		if e.Sender == "@gtalice:localhost" && (e.Type == event.EventMessage || e.Type == event.EventEncrypted) && e.Unsigned.RedactedBecause == nil {
			n++
			if !e.Mautrix.WasEncrypted {
				t.Errorf("the adapter sent %s (%q) unencrypted", e.ID, dendritetest.Body(e))
			}
		}
	}
	if n == 0 {
		t.Error("bob saw no message of the adapter's")
	}
	t.Logf("bob decrypted %d messages of the adapter's", n)
}
