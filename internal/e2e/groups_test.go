package e2e_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/telnyxtest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

const friend2 = "+15551230002"

// groupRoom is the room of alice's group with friend and friend2: the
// numbers sorted, joined with commas.
var groupRoom = strings.Join([]string{aliceNum, friend, friend2}, ",") + "@" + smsDomain

func join(t *testing.T, c *xmpptest.Client, room, nick string) {
	t.Helper()
	c.SendRaw(t, `<presence to='`+room+`/`+nick+`'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
}

func groupchatFrom(t *testing.T, c *xmpptest.Client, from, body string) xmpptest.Stanza {
	t.Helper()
	return c.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && s.Type == "groupchat" && s.From == from && s.Body == body
	})
}

// TestGroupTexts: an inbound group MMS creates the group's room and
// invites the user (XEP-0249); joining shows the numbers and what came
// meanwhile; a message in the room is one group MMS to every other
// number; after a gateway restart the group's next message lands in the
// same room, without a second invitation.
func TestGroupTexts(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{smsDomain: "secret"},
		Users:      map[string]string{"alice": "password", "admin": "password"},
	})
	tx := telnyxtest.Start(t, telnyxKey)
	dir, addr := t.TempDir(), proctest.FreeAddr(t)
	cfg := telnyxConfig(srv.ComponentAddr(), tx.URL, tx.PublicKey)
	g := startGatewayIn(t, dir, addr, cfg)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	hook := g.httpURL + "/telnyx/sms/webhook"
	alice := xmpptest.Login(t, srv, "alice", "password")

	// friend texts alice and friend2 together.
	if code, _ := tx.PostWebhook(t, hook, tx.Received(friend, []string{aliceNum, friend2}, "dinner at 8?")); code != 200 {
		t.Fatalf("webhook answered %d", code)
	}
	inv := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && strings.Contains(s.Raw, "jabber:x:conference")
	})
	if bare(inv.From) != friendJID || !strings.Contains(inv.Raw, groupRoom) {
		t.Fatalf("invitation %s: want one from %s to %s", inv.Raw, friendJID, groupRoom)
	}

	join(t, alice, groupRoom, "alice")
	for _, n := range []string{friend, friend2} {
		alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Kind == "presence" && s.From == groupRoom+"/"+n })
	}
	alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "presence" && s.From == groupRoom+"/alice" && hasAttr(s.Raw, "code", "110")
	})
	held := groupchatFrom(t, alice, groupRoom+"/"+friend, "dinner at 8?")
	if !strings.Contains(held.Raw, "urn:xmpp:delay") {
		t.Errorf("the message that came before the join has no delay: %s", held.Raw)
	}
	alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && s.Type == "groupchat" && s.From == groupRoom && strings.Contains(s.Raw, "<subject")
	})

	// A reply in the room: one group MMS to every other number, once.
	alice.SendRaw(t, `<message to='`+groupRoom+`' type='groupchat' id='g-1'><body>yes, see you</body></message>`)
	m := tx.WaitMessages(t, 1, wait)[0]
	if !m.Group || m.From != aliceNum || !slices.Equal(m.To, []string{friend, friend2}) || m.Text != "yes, see you" {
		t.Errorf("Telnyx got %+v, want a group MMS from %s to %s and %s", m, aliceNum, friend, friend2)
	}
	// The room reflects it to alice under her id.
	alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && s.Type == "groupchat" && s.From == groupRoom+"/alice" && s.ID == "g-1"
	})
	// While alice is in the room, a group message reaches her there.
	tx.PostWebhook(t, hook, tx.Received(friend2, []string{aliceNum, friend}, "count me in"))
	groupchatFrom(t, alice, groupRoom+"/"+friend2, "count me in")

	// After a restart the group is the same room.
	if g.stop(); g.exitErr != nil {
		t.Fatalf("gateway exit: %v", g.exitErr)
	}
	g = startGatewayIn(t, dir, addr, cfg)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	tx.PostWebhook(t, hook, tx.Received(friend, []string{friend2, aliceNum}, "after the restart"))
	groupchatFrom(t, alice, groupRoom+"/"+friend, "after the restart")
	if n := strings.Count(strings.Join(alice.Stanzas(), "\n"), "jabber:x:conference"); n != 1 {
		t.Errorf("%d invitations, want 1", n)
	}
	if n := len(tx.Messages()); n != 1 {
		t.Errorf("Telnyx has %d messages, want the 1 reply", n)
	}

	// "New group text": numbers in, room JID out, an invitation sent.
	alice.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='ng-1'><command xmlns='http://jabber.org/protocol/commands' node='sms-new-group' action='execute'>`+
		`<x xmlns='jabber:x:data' type='submit'><field var='numbers'><value>+1 555 123 0003</value><value>+15551230001</value></field></x></command></iq>`)
	res := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "ng-1" })
	newRoom := strings.Join([]string{aliceNum, friend, "+15551230003"}, ",") + "@" + smsDomain
	if res.Type != "result" || !strings.Contains(res.Raw, newRoom) {
		t.Fatalf("new group text: %s", res.Raw)
	}
	alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && strings.Contains(s.Raw, "jabber:x:conference") && strings.Contains(s.Raw, newRoom)
	})
}

// TestGroupTextLimits: what cannot be a group text is refused
// not-allowed, naming why, and nothing is sent: more than 8 others, a
// number outside the US and Canada, a user whose number is at Twilio
// (no group MMS). A gateway with Twilio alone has no rooms at all.
func TestGroupTextLimits(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{smsDomain: "secret"},
		Users:      map[string]string{"alice": "password", "bob": "password"},
	})
	tw := twiliotest.Start(t, accountSID, authToken)
	tx := telnyxtest.Start(t, telnyxKey)
	g := startGateway(t, mixedConfig(srv.ComponentAddr(), tw.URL, tx.URL, tx.PublicKey))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password") // at Twilio
	bob := xmpptest.Login(t, srv, "bob", "password")     // registers at Telnyx
	bob.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='lreg-1'><query xmlns='jabber:iq:register'/></iq>`)
	if s := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "lreg-1" }); s.Type != "result" {
		t.Fatalf("register: %s", s.Raw)
	}

	nine := []string{poolNum}
	for i := range 9 {
		nine = append(nine, fmt.Sprintf("+1555123001%d", i))
	}
	slices.Sort(nine)
	for _, tt := range []struct {
		name   string
		who    *xmpptest.Client
		room   string
		reason string
	}{
		{"nine others", bob, strings.Join(nine, ",") + "@" + smsDomain, "at most 8"},
		{"abroad", bob, strings.Join([]string{poolNum, "+15551230001", "+442079460958"}, ",") + "@" + smsDomain, "US and Canadian"},
		{"at Twilio", alice, strings.Join([]string{aliceNum, friend, friend2}, ",") + "@" + smsDomain, "Twilio"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			join(t, tt.who, tt.room, "me")
			s := tt.who.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
				return s.Kind == "presence" && s.Type == "error" && strings.HasPrefix(s.From, tt.room)
			})
			if s.ErrorCondition != "not-allowed" || !strings.Contains(s.ErrorText, tt.reason) {
				t.Errorf("join refused %s %q, want not-allowed naming %q", s.ErrorCondition, s.ErrorText, tt.reason)
			}
			id := "lim-" + strings.ReplaceAll(tt.name, " ", "-")
			tt.who.SendRaw(t, `<message to='`+tt.room+`' type='groupchat' id='`+id+`'><body>hello all</body></message>`)
			s = errorFor(t, tt.who, id)
			if s.ErrorCondition != "not-allowed" || !strings.Contains(s.ErrorText, tt.reason) {
				t.Errorf("message refused %s %q, want not-allowed naming %q", s.ErrorCondition, s.ErrorText, tt.reason)
			}
		})
	}
	if len(tw.Messages())+len(tx.Messages()) != 0 || tw.Requests()+tx.Requests() != 0 {
		t.Errorf("%d+%d calls reached the providers", tw.Requests(), tx.Requests())
	}

	// adapter: twilio has no rooms: a room message is feature-not-implemented.
	srv2 := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{smsDomain: "secret"}})
	tw2 := twiliotest.Start(t, accountSID, authToken)
	g2 := startGateway(t, twilioConfig(srv2.ComponentAddr(), tw2.URL, "localhost"))
	g2.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice2 := xmpptest.Login(t, srv2, "alice", "password")
	alice2.SendRaw(t, `<message to='`+groupRoom+`' type='groupchat' id='tw-g1'><body>hello all</body></message>`)
	if s := errorFor(t, alice2, "tw-g1"); s.ErrorCondition != "feature-not-implemented" || !strings.Contains(s.ErrorText, "Twilio cannot send group texts") {
		t.Errorf("a group text through adapter twilio: %s %q", s.ErrorCondition, s.ErrorText)
	}
	join(t, alice2, groupRoom, "alice")
	s := alice2.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "presence" && s.Type == "error" && strings.HasPrefix(s.From, groupRoom)
	})
	if s.ErrorCondition != "feature-not-implemented" || !strings.Contains(s.ErrorText, "Twilio") {
		t.Errorf("joining a group through adapter twilio: %s %q", s.ErrorCondition, s.ErrorText)
	}
	if tw2.Requests() != 0 {
		t.Errorf("%d requests reached Twilio", tw2.Requests())
	}
}
