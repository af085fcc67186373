//go:build goolm

package e2e_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/internal/dendritetest"
	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// TestMatrixEncrypted: end-to-end encryption through the real binary, a
// real Prosody and a real Dendrite. carol, a Matrix user with encryption
// (mautrix's Olm, as Element has), opens an encrypted direct chat with
// alice the way Element does; messages both ways are m.room.encrypted on
// the homeserver and arrive readable; an encrypted room, groupchat both
// ways; the gateway killed (-9) in the middle of the conversation: what
// carol wrote meanwhile arrives decrypted, once, in order, and alice's
// answers are still readable; unregistering deletes the device's keys.
func TestMatrixEncrypted(t *testing.T) {
	t.Parallel()
	env := startMatrix(t)
	alice := env.alice
	carol := env.hs.User(t, "carol")
	carol.EnableCrypto(t)
	const carolJID = "carol%localhost@" + matrixDomain
	top := t

	// Plain XEP-0077 fields (no form) cannot name the homeserver.
	alice.SendRaw(t, `<iq to='`+matrixDomain+`' type='set' id='reg-plain'><query xmlns='jabber:iq:register'>`+
		`<username>@alice:localhost</username><password>matrixpass</password></query></iq>`)
	if s := alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == "reg-plain" }); s.Type != "error" ||
		s.ErrorCondition != "not-acceptable" || !strings.Contains(s.Raw, "registration form") {
		t.Errorf("a registration without the form: %s, want not-acceptable asking for the form", s.Raw)
	}

	if s := env.register(t, "reg", "matrixpass"); s.Type != "result" {
		t.Fatalf("registering: %s", s.Raw)
	}
	// The gateway's device uploads its keys once its session opened them.
	carol.WaitDeviceKeys(t, "@alice:localhost", matrixWait)
	encrypted := dendritetest.EncryptedState()
	dm, err := carol.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{"@alice:localhost"}, InitialState: encrypted})
	if err != nil {
		t.Fatal(err)
	}
	room := dm.RoomID
	carol.Wait(t, matrixWait, "alice joining", func(e *event.Event) bool {
		return e.RoomID == room && e.Type == event.StateMember && e.GetStateKey() == "@alice:localhost" && e.Content.AsMember().Membership == event.MembershipJoin
	})
	onWire := func(ev id.EventID) event.Type {
		t.Helper()
		e, err := carol.GetEvent(ctxFor(t), room, ev)
		if err != nil {
			t.Fatalf("GetEvent %s: %v", ev, err)
		}
		return e.Type
	}

	start := time.Now()
	c1, err := carol.SendText(ctxFor(t), room, "psst, alice")
	if err != nil {
		t.Fatal(err)
	}
	waitConv(t, alice, carolJID, func(m conv) bool { return m.Body == "psst, alice" })
	t.Logf("carol's first encrypted message reached alice's XMPP client decrypted %v after it was sent", time.Since(start).Round(time.Millisecond))
	if typ := onWire(c1.EventID); typ != event.EventEncrypted {
		t.Errorf("carol's message is %s on the homeserver, want m.room.encrypted", typ.Type)
	}
	alice.SendRaw(t, `<message to='`+carolJID+`' type='chat' id='e1'><body>psst, carol</body></message>`)
	a1 := carol.Wait(t, matrixWait, "alice's encrypted answer", func(e *event.Event) bool { return dendritetest.Body(e) == "psst, carol" })
	if !a1.Mautrix.WasEncrypted || onWire(a1.ID) != event.EventEncrypted {
		t.Errorf("alice's answer was not encrypted on the wire")
	}

	t.Run("an encrypted room, groupchat both ways", func(t *testing.T) {
		vault, err := carol.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "vault", Topic: "secrets", InitialState: encrypted})
		if err != nil {
			t.Fatal(err)
		}
		roomJID := "#vault%localhost@" + matrixDomain
		alice.SendRaw(t, `<presence to='`+roomJID+`/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
		alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && s.From == roomJID && strings.Contains(s.Raw, "<subject>secrets</subject>")
		})
		v1, err := carol.SendText(ctxFor(t), vault.RoomID, "hi vault")
		if err != nil {
			t.Fatal(err)
		}
		alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && s.Type == "groupchat" && s.From == roomJID+"/carol" && s.Body == "hi vault"
		})
		if e, err := carol.GetEvent(ctxFor(t), vault.RoomID, v1.EventID); err != nil || e.Type != event.EventEncrypted {
			t.Errorf("carol's groupchat on the homeserver: %v, %v; want m.room.encrypted", e, err)
		}
		alice.SendRaw(t, `<message to='`+roomJID+`' type='groupchat' id='g1'><body>hello vault</body></message>`)
		e := carol.Wait(t, matrixWait, "alice's encrypted groupchat", func(e *event.Event) bool {
			return dendritetest.Body(e) == "hello vault" && e.RoomID == vault.RoomID
		})
		if !e.Mautrix.WasEncrypted {
			t.Errorf("alice's groupchat was not encrypted")
		}
	})

	t.Run("kill -9 of the gateway mid-conversation", func(t *testing.T) {
		want := []string{"while down 1", "while down 2", "while down 3"}
		env.killAndRestart(top, func() {
			for _, body := range want {
				if _, err := carol.SendText(ctxFor(t), room, body); err != nil {
					t.Fatal(err)
				}
			}
		})
		waitConv(t, alice, carolJID, func(m conv) bool { return m.Body == want[len(want)-1] })
		alice.SendRaw(t, `<message to='`+carolJID+`' type='chat' id='e9'><body>still secret</body></message>`)
		e := carol.Wait(t, matrixWait, "alice's answer after the restart", func(e *event.Event) bool { return dendritetest.Body(e) == "still secret" })
		if !e.Mautrix.WasEncrypted {
			t.Errorf("alice's answer after the restart was not encrypted")
		}
		if _, err := carol.SendText(ctxFor(t), room, "last"); err != nil {
			t.Fatal(err)
		}
		waitConv(t, alice, carolJID, func(m conv) bool { return m.Body == "last" })
		var got []string
		for _, raw := range alice.Stanzas() {
			s, err := xmpptest.ParseStanza(raw)
			if err == nil && s.Kind == "message" && (strings.HasPrefix(s.Body, "while down") || strings.Contains(s.Body, "could not decrypt")) {
				got = append(got, s.Body)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("alice received %q, want %q: decrypted, each once, in order", got, want)
		}
	})

	t.Run("unregistering deletes the device's keys", func(t *testing.T) {
		store := filepath.Join(env.dir, "data", "matrix-crypto", "matrix")
		if files, _ := os.ReadDir(store); len(files) == 0 {
			t.Fatalf("no crypto store in %s", store)
		}
		env.unregister(t)
		if !proctest.Poll(matrixWait, 50*time.Millisecond, func() bool {
			files, _ := os.ReadDir(store)
			return len(files) == 0
		}) {
			t.Errorf("the crypto store in %s is still there after unregistering", store)
		}
	})
	if strings.Contains(env.g.log.String(), "matrixpass") {
		t.Errorf("the gateway logged the password")
	}
}
