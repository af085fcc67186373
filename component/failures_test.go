package component_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// sendAs sends a chat message with the client's own stanza id, as clients
// do, to nick on the IRC gateway.
func sendAs(t *testing.T, c *xmpptest.Client, nick, id, body string) {
	t.Helper()
	c.SendRaw(t, fmt.Sprintf(`<message to='%s@%s' id='%s' type='chat'><body>%s</body></message>`, nick, ircDomain, id, body))
}

func isError(id string) func(xmpptest.Stanza) bool {
	return func(s xmpptest.Stanza) bool { return s.Kind == "message" && s.Type == "error" && s.ID == id }
}

// A message that ended in an error can be sent again under the same id, as
// clients do on "retry"; a copy of the resend while it is in flight stays
// a duplicate (issue #12: the resend was swallowed by the component's
// 10-minute dedup on out:<full JID>|<id>, and the client showed it sent).
func TestResendAfterFailureIsSent(t *testing.T) {
	g := startRoomGateway(t)
	sendAs(t, g.alice, "bob", "r1", "first try")
	e := g.nextOut(t)
	if e.Message.ID != "r1" {
		t.Fatalf("outbound id %q, want r1", e.Message.ID)
	}
	// The adapter gave up on it at once: the error the runner publishes.
	g.in(t, &bus.Envelope{Kind: bus.KindError, User: e.User, Contact: "bob",
		Error: &bus.Error{Ref: "r1", Condition: "remote-server-timeout", Type: "wait", Text: "the network did not answer"}})
	g.alice.WaitStanza(t, timeout, isError("r1"))

	sendAs(t, g.alice, "bob", "r1", "first try")
	if e2 := g.nextOut(t); e2.Message.ID != "r1" || e2.Message.Body != "first try" || e2.ID == e.ID {
		t.Fatalf("resend stored as %+v (message %+v), want a new envelope for r1", e2, e2.Message)
	}
	// A copy of the resend (a reconnect) is not sent twice.
	sendAs(t, g.alice, "bob", "r1", "first try")
	sendAs(t, g.alice, "bob", "r2", "marker")
	if e3 := g.nextOut(t); e3.Message.ID != "r2" {
		t.Fatalf("after a copy of the resend, the next outbound is %q, want r2 (the copy is a duplicate)", e3.Message.ID)
	}
	// The failure came at once, while the sender was there: no notice.
	for _, raw := range g.alice.Stanzas() {
		if strings.Contains(raw, "urn:xmppgw:notice:0") {
			t.Errorf("a failure reported at once also got a notice: %s", raw)
		}
	}
}

// A failure reported after the sender's resource went offline (a delivery
// report minutes later) is not lost: the server drops an error message to a
// resource that has gone (RFC 6121), so the user's bare JID is also told,
// with a chat message the server stores offline, referring to the failed
// message (XEP-0461). Issue #12: nothing reached the user.
func TestLateFailureToldAfterResourceGone(t *testing.T) {
	g := startRoomGatewayOn(t, true)
	sendAs(t, g.alice, "bob", "late-1", "are you there?")
	e := g.nextOut(t)
	if err := g.alice.Close(); err != nil {
		t.Fatal(err)
	}
	g.in(t, &bus.Envelope{Kind: bus.KindStatus, User: e.User, Contact: "bob",
		Status: &bus.Status{Ref: "late-1", State: bus.StateFailed, Code: "30003", Reason: "Unreachable destination handset"}})

	alice := xmpptest.Login(t, g.srv, "alice", "password")
	got := alice.WaitStanza(t, timeout, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && strings.Contains(s.Raw, "urn:xmppgw:notice:0")
	})
	for _, want := range []string{
		`type="chat"`, "from=\"bob@" + ircDomain + "\"", "Your message was not delivered: Unreachable destination handset (error 30003)",
		`type="failed"`, `ref="late-1"`,
	} {
		if !strings.Contains(strings.ReplaceAll(got.Raw, "'", `"`), want) {
			t.Errorf("notice %s\nlacks %s", got.Raw, want)
		}
	}
	// Prosody orders attributes as it likes: look at the element alone.
	reply := regexp.MustCompile(`<reply [^>]*>`).FindString(strings.ReplaceAll(got.Raw, "'", `"`))
	for _, want := range []string{`xmlns="urn:xmpp:reply:0"`, `id="late-1"`, `to="` + e.User + `"`} {
		if !strings.Contains(reply, want) {
			t.Errorf("XEP-0461 reference %q lacks %s", reply, want)
		}
	}
}

// Registration runs off the reader: a registrar that takes its time holds
// up neither other users' messages nor its own user's other stanzas, and
// its answer still comes (issue #16: one slow call stalled the domain).
func TestSlowRegistrationDoesNotStallMessages(t *testing.T) {
	g := startRoomGateway(t)
	gate := make(chan struct{})
	g.reg.gate.Store(&gate)
	g.alice.SendRaw(t, `<iq to='`+ircDomain+`' type='set' id='slow-reg'><query xmlns='jabber:iq:register'><username>alice</username></query></iq>`)
	sendAs(t, g.bob, "carol", "while-waiting", "not held up")
	if e := g.nextOut(t); e.Message.ID != "while-waiting" {
		t.Fatalf("next outbound %q, want bob's message while alice's registration waits", e.Message.ID)
	}
	for _, raw := range g.alice.Stanzas() {
		if strings.Contains(raw, "slow-reg") {
			t.Fatalf("the registration answered before its registrar did: %s", raw)
		}
	}
	close(gate)
	if s := g.alice.WaitStanza(t, timeout, func(s xmpptest.Stanza) bool { return s.ID == "slow-reg" }); s.Type != "result" {
		t.Errorf("registration answered %s", s.Raw)
	}
}

// What a client marks as fallback (XEP-0428) is not what the user wrote and
// never reaches the network; a stanza with nothing else is answered
// feature-not-implemented, naming what the network cannot do (issue #13:
// phones received "This person attempted to retract…", and reactions
// vanished without a word). The stanzas are the XEPs' examples.
func TestFallbackNeverSentAsText(t *testing.T) {
	g := startRoomGateway(t)
	refused := func(id, want string) {
		t.Helper()
		s := g.alice.WaitStanza(t, timeout, isError(id))
		if s.ErrorCondition != "feature-not-implemented" || !strings.Contains(s.ErrorText, want) {
			t.Errorf("%s answered %s %q, want feature-not-implemented saying %q", id, s.ErrorCondition, s.ErrorText, want)
		}
	}
	// XEP-0424 §4.
	g.alice.SendRaw(t, `<message type='chat' to='bob@`+ircDomain+`' id='retract-message-1'>`+
		`<retract id='origin-id-1' xmlns='urn:xmpp:message-retract:1'/>`+
		`<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>`+
		`<body>This person attempted to retract a previous message, but it's unsupported by your client.</body>`+
		`<store xmlns="urn:xmpp:hints"/></message>`)
	refused("retract-message-1", "IRC cannot unsend a message")
	// XEP-0444 §4.2: no body at all.
	g.alice.SendRaw(t, `<message to='bob@`+ircDomain+`' id='reaction-1' type='chat'>`+
		`<reactions id='744f6e18-a57a-11e9-a656-4889e7820c76' xmlns='urn:xmpp:reactions:0'>`+
		`<reaction>👋</reaction><reaction>🐢</reaction></reactions><store xmlns="urn:xmpp:hints"/></message>`)
	refused("reaction-1", "IRC cannot carry reactions")
	// XEP-0461 §3.2: the quote is fallback, the rest is what the user wrote.
	g.alice.SendRaw(t, `<message to='bob@`+ircDomain+`' id='reply-1' type='chat'>`+
		"<body>> Anna wrote:\n> We should bake a cake\nGreat idea!</body>"+
		`<reply to='anna@example.com/laptop' id='message-id1' xmlns='urn:xmpp:reply:0'/>`+
		`<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start="0" end="38"/></fallback></message>`)
	if e := g.nextOut(t); e.Message.ID != "reply-1" || e.Message.Body != "Great idea!" {
		t.Errorf("the reply went out as %q (id %s), want only what the user wrote", e.Message.Body, e.Message.ID)
	}
	// Neither refused stanza reached the bus: the next stored is a marker.
	sendAs(t, g.alice, "bob", "marker", "after the refusals")
	if e := g.nextOut(t); e.Message.ID != "marker" {
		t.Errorf("next outbound %q (%q), want the marker", e.Message.ID, e.Message.Body)
	}
}
