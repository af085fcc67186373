package e2e_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// Issue #13: modern conversations end to end, through real Prosody, the
// component and the bus, with the raw stanzas Conversations and Dino send
// (from the XEPs' examples).

// conv is what the tests read of a message stanza.
type conv struct {
	XMLName  xml.Name
	ID       string `xml:"id,attr"`
	From     string `xml:"from,attr"`
	Type     string `xml:"type,attr"`
	Body     string `xml:"body"`
	OriginID *struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:sid:0 origin-id"`
	Replace *struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:message-correct:0 replace"`
	Reactions *struct {
		ID        string   `xml:"id,attr"`
		Reactions []string `xml:"reaction"`
	} `xml:"urn:xmpp:reactions:0 reactions"`
	Retract *struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:message-retract:1 retract"`
	Reply *struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:reply:0 reply"`
	Composing *struct{} `xml:"http://jabber.org/protocol/chatstates composing"`
	Active    *struct{} `xml:"http://jabber.org/protocol/chatstates active"`
	Displayed *struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:chat-markers:0 displayed"`
	Markable *struct{} `xml:"urn:xmpp:chat-markers:0 markable"`
}

func parseConv(t *testing.T, s xmpptest.Stanza) conv {
	t.Helper()
	var c conv
	if err := xml.Unmarshal([]byte(s.Raw), &c); err != nil {
		t.Fatalf("stanza does not parse: %v\n%s", err, s.Raw)
	}
	return c
}

// waitConv waits for a message from contact (bare JID) that pred accepts.
func waitConv(t *testing.T, c *xmpptest.Client, from string, pred func(conv) bool) conv {
	t.Helper()
	var got conv
	c.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		if s.Kind != "message" || bare(s.From) != from {
			return false
		}
		var m conv
		if xml.Unmarshal([]byte(s.Raw), &m) != nil || !pred(m) {
			return false
		}
		got = m
		return true
	})
	return got
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// discoFeatures asks for the disco#info of jid and returns its features.
func discoFeatures(t *testing.T, c *xmpptest.Client, jid string) []string {
	t.Helper()
	id := fmt.Sprintf("disco-%d", time.Now().UnixNano())
	c.SendRaw(t, `<iq type='get' id='`+id+`' to='`+jid+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	s := c.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == id })
	var q struct {
		Query struct {
			Features []struct {
				Var string `xml:"var,attr"`
			} `xml:"feature"`
		} `xml:"http://jabber.org/protocol/disco#info query"`
	}
	if err := xml.Unmarshal([]byte(s.Raw), &q); err != nil || s.Type != "result" {
		t.Fatalf("disco#info of %s: %v\n%s", jid, err, s.Raw)
	}
	var out []string
	for _, f := range q.Query.Features {
		out = append(out, f.Var)
	}
	return out
}

var conversationFeatures = []string{
	"urn:xmpp:message-correct:0", "urn:xmpp:reply:0", "urn:xmpp:reactions:0",
	"urn:xmpp:message-retract:1", "urn:xmpp:chat-markers:0", "http://jabber.org/protocol/chatstates",
}

func TestConversationsSandbox(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{domain: "secret"}})
	dir, httpAddr := t.TempDir(), proctest.FreeAddr(t)
	g := startGatewayIn(t, dir, httpAddr, sandboxConfig(srv.ComponentAddr(), domain, "secret"))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")

	// The user's message m1 and its echo, whose id the contact's later
	// events refer to.
	alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='m1'><body>first</body><origin-id xmlns='urn:xmpp:sid:0' id='m1'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>`)
	echo := waitConv(t, alice, contact, func(m conv) bool { return m.Body == "echo: first" })
	if !strings.HasPrefix(echo.ID, "xg-SB") || echo.OriginID == nil || echo.OriginID.ID != echo.ID {
		t.Errorf("echo id %q, origin-id %+v: want a stable id from the network's id, as origin-id too", echo.ID, echo.OriginID)
	}
	if echo.Markable == nil {
		t.Errorf("the echo is not <markable/>, so clients send no read markers:\n%+v", echo)
	}

	t.Run("disco lists every feature", func(t *testing.T) {
		got := discoFeatures(t, alice, contact)
		for _, f := range conversationFeatures {
			if !slices.Contains(got, f) {
				t.Errorf("disco#info of %s lacks %s: %v", contact, f, got)
			}
		}
	})

	t.Run("correction and a correction of the correction", func(t *testing.T) {
		for i, text := range []string{"first, fixed", "first, fixed again"} {
			alice.SendRaw(t, fmt.Sprintf(`<message to='%s' type='chat' id='m1-c%d'><body>%s</body><replace id='m1' xmlns='urn:xmpp:message-correct:0'/><origin-id xmlns='urn:xmpp:sid:0' id='m1-c%d'/></message>`, contact, i, text, i))
			got := waitConv(t, alice, contact, func(m conv) bool { return m.Body == "echo: "+text })
			if got.Replace == nil || got.Replace.ID != echo.ID {
				t.Errorf("correction %d: replace %+v, want <replace id=%q/> (the echo's first id)", i, got.Replace, echo.ID)
			}
		}
	})

	t.Run("reactions on the user's message, then a smaller set", func(t *testing.T) {
		for i, set := range [][]string{{"👍", "🎉"}, {"👍"}, {}} {
			var rs string
			for _, e := range set {
				rs += "<reaction>" + e + "</reaction>"
			}
			alice.SendRaw(t, fmt.Sprintf(`<message to='%s' type='chat' id='r%d'><reactions id='m1' xmlns='urn:xmpp:reactions:0'>%s</reactions><store xmlns='urn:xmpp:hints'/></message>`, contact, i, rs))
			got := waitConv(t, alice, contact, func(m conv) bool {
				return m.Reactions != nil && m.Reactions.ID == "m1" && sameSet(m.Reactions.Reactions, set)
			})
			if got.Body != "" {
				t.Errorf("reaction from the contact has a body %q", got.Body)
			}
		}
	})

	t.Run("reaction on the echo", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='r-echo'><reactions id='`+echo.ID+`' xmlns='urn:xmpp:reactions:0'><reaction>❤️</reaction></reactions></message>`)
		waitConv(t, alice, contact, func(m conv) bool {
			return m.Reactions != nil && m.Reactions.ID == echo.ID && sameSet(m.Reactions.Reactions, []string{"❤️"})
		})
	})

	t.Run("reply", func(t *testing.T) {
		// XEP-0461 example: the quote is marked as fallback.
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='m2'><body>&gt; first
answering</body><reply to='`+contact+`' id='m1' xmlns='urn:xmpp:reply:0'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='8'/></fallback></message>`)
		got := waitConv(t, alice, contact, func(m conv) bool { return strings.HasSuffix(m.Body, "echo: answering") })
		if got.Reply == nil || got.Reply.ID != "m1" {
			t.Errorf("the echo of a reply to m1 has reply %+v, want <reply id='m1'/>", got.Reply)
		}
		if strings.Contains(got.Body, "echo: > first") {
			t.Errorf("the quote reached the network as text the user wrote: %q", got.Body)
		}
	})

	t.Run("typing", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+contact+`' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/><no-store xmlns='urn:xmpp:hints'/></message>`)
		waitConv(t, alice, contact, func(m conv) bool { return m.Composing != nil && m.Body == "" })
		waitConv(t, alice, contact, func(m conv) bool { return m.Active != nil && m.Body == "" && m.Composing == nil })
	})

	t.Run("displayed marker", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='mk1'><displayed xmlns='urn:xmpp:chat-markers:0' id='`+echo.ID+`'/></message>`)
		waitConv(t, alice, contact, func(m conv) bool { return m.Displayed != nil && m.Displayed.ID == "m1" })
	})

	t.Run("retraction", func(t *testing.T) {
		// XEP-0424 example, with its fallback body.
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='x1'><retract id='m1' xmlns='urn:xmpp:message-retract:1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>/me retracted a previous message, but it's unsupported by your client.</body><store xmlns='urn:xmpp:hints'/></message>`)
		waitConv(t, alice, contact, func(m conv) bool { return m.Retract != nil && m.Retract.ID == echo.ID })
	})

	t.Run("a reaction to an unknown message is refused", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='r-unknown'><reactions id='never-sent' xmlns='urn:xmpp:reactions:0'><reaction>👍</reaction></reactions></message>`)
		s := errorFor(t, alice, "r-unknown")
		if s.ErrorCondition != "item-not-found" || !strings.Contains(s.ErrorText, "too old") {
			t.Errorf("error %s: %q, want item-not-found saying the message is too old", s.ErrorCondition, s.ErrorText)
		}
	})

	t.Run("a restart keeps the id map", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='m3'><body>before the restart</body></message>`)
		waitConv(t, alice, contact, func(m conv) bool { return m.Body == "echo: before the restart" })
		g.stop()
		g2 := startGatewayIn(t, dir, httpAddr, sandboxConfig(srv.ComponentAddr(), domain, "secret"))
		g2.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='r-after'><reactions id='m3' xmlns='urn:xmpp:reactions:0'><reaction>😂</reaction></reactions></message>`)
		waitConv(t, alice, contact, func(m conv) bool {
			return m.Reactions != nil && m.Reactions.ID == "m3" && sameSet(m.Reactions.Reactions, []string{"😂"})
		})
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='m3-c'><body>after the restart</body><replace id='m3' xmlns='urn:xmpp:message-correct:0'/></message>`)
		waitConv(t, alice, contact, func(m conv) bool {
			return m.Body == "echo: after the restart" && m.Replace != nil && strings.HasPrefix(m.Replace.ID, "xg-SB")
		})
	})
}

// TestTypingCostsNoWrites: typing at 20 events a second for a minute
// reaches the network and back and writes nothing to JetStream.
func TestTypingCostsNoWrites(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{domain: "secret"}})
	natsAddr := proctest.FreeAddr(t)
	cfg := strings.Replace(sandboxConfig(srv.ComponentAddr(), domain, "secret"), "bus:\n", "bus:\n  listen: "+natsAddr+"\n", 1)
	g := startGateway(t, cfg)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")
	roundTrip(t, alice, "warm up") // streams, consumers and the id map in place

	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	writes := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, name := range []string{"XMPPGW_OUT", "XMPPGW_IN", "KV_xmppgw_ids", "KV_xmppgw_messages", "KV_xmppgw_registrations"} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatalf("stream %s: %v", name, err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = info.State.LastSeq
		}
		return out
	}
	// What one message costs, as the yardstick.
	before0 := writes()
	roundTrip(t, alice, "yardstick")
	before := writes()

	states := []string{"composing", "paused"}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	const events = 20 * 60
	for i := range events {
		<-tick.C
		alice.SendRaw(t, `<message to='`+contact+`' type='chat'><`+states[i%2]+` xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	}
	// A message after the typing: once its echo is back, everything
	// before it was handled.
	roundTrip(t, alice, "after typing")
	after := writes()
	// The message after the typing costs what the yardstick did; the
	// typing nothing.
	for name, seq := range after {
		if d, one := seq-before[name], before[name]-before0[name]; d != one {
			t.Errorf("%s: %d writes for %d typing events and one message; one message alone made %d", name, d, events, one)
		}
	}
	// Each composing is answered composing (then active): all of them
	// arrive, since nothing failed.
	answered := func() int {
		n := 0
		for _, raw := range alice.Stanzas() {
			var m conv
			if xml.Unmarshal([]byte(raw), &m) == nil && bare(m.From) == contact && m.Composing != nil {
				n++
			}
		}
		return n
	}
	if !poll(wait, func() bool { return answered() >= events/2 }) {
		t.Errorf("the sandbox answered %d of %d composing notifications; ephemeral events are dropped only on failure", answered(), events/2)
	}
}

// TestConversationsSMS: the issue-3 Twilio config, unchanged; SMS declares
// corrections and replies only, and phones' reactions in text become
// XEP-0444 reactions on the user's message they quote.
func TestConversationsSMS(t *testing.T) {
	t.Parallel()
	e := startSMS(t)
	tw, alice := e.tw, e.alice
	sent := 0
	nextSMS := func(t *testing.T) string {
		t.Helper()
		sent++
		return tw.WaitMessages(t, sent, wait)[sent-1].Body
	}

	t.Run("disco lists exactly the declared features", func(t *testing.T) {
		got := discoFeatures(t, alice, friendJID)
		for _, f := range []string{"urn:xmpp:message-correct:0", "urn:xmpp:reply:0"} {
			if !slices.Contains(got, f) {
				t.Errorf("disco#info of %s lacks %s: %v", friendJID, f, got)
			}
		}
		for _, f := range []string{"urn:xmpp:reactions:0", "urn:xmpp:message-retract:1", "urn:xmpp:chat-markers:0", "http://jabber.org/protocol/chatstates"} {
			if slices.Contains(got, f) {
				t.Errorf("disco#info of %s lists %s, which SMS cannot carry: %v", friendJID, f, got)
			}
		}
	})

	t.Run("correction reaches the phone with the prefix", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='sms-m1'><body>See you at 7</body></message>`)
		if got := nextSMS(t); got != "See you at 7" {
			t.Fatalf("sent %q", got)
		}
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='sms-m1c'><body>See you at 8</body><replace id='sms-m1' xmlns='urn:xmpp:message-correct:0'/></message>`)
		if got := nextSMS(t); got != "* See you at 8" {
			t.Errorf("correction sent as %q, want %q", got, "* See you at 8")
		}
	})

	t.Run("reply under a quote", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='sms-m2'><body>&gt; Are we still on?
Yes!</body><reply id='xg-SMx' xmlns='urn:xmpp:reply:0'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='19'/></fallback></message>`)
		if got := nextSMS(t); got != "> Are we still on?\nYes!" {
			t.Errorf("reply sent as %q", got)
		}
	})

	t.Run("retraction is refused and never reaches the phone", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='sms-x1'><retract id='sms-m1' xmlns='urn:xmpp:message-retract:1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>/me retracted a previous message, but it's unsupported by your client.</body></message>`)
		s := errorFor(t, alice, "sms-x1")
		if s.ErrorCondition != "feature-not-implemented" || !strings.Contains(s.ErrorText, "SMS") || !strings.Contains(s.ErrorText, "unsend") {
			t.Errorf("retraction: %s %q, want feature-not-implemented saying SMS cannot unsend", s.ErrorCondition, s.ErrorText)
		}
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='sms-r1'><reactions id='sms-m1' xmlns='urn:xmpp:reactions:0'><reaction>👍</reaction></reactions><body>👍</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reactions:0'/></message>`)
		if s := errorFor(t, alice, "sms-r1"); s.ErrorCondition != "feature-not-implemented" {
			t.Errorf("reaction: %s, want feature-not-implemented", s.Raw)
		}
		// Nothing of either reached Twilio: the next SMS is the next message.
		alice.SendChat(t, friendJID, "after the refusals")
		if got := nextSMS(t); got != "after the refusals" {
			t.Errorf("a refused feature reached the phone as %q", got)
		}
	})

	t.Run("phones' reactions", func(t *testing.T) {
		long := "This is a long message about the plans for the weekend that a phone will cut when it quotes it"
		phrases := []struct{ text, body, emoji string }{
			{"Are you coming to dinner", `Liked “Are you coming to dinner”`, "👍"},
			{"I got the tickets", `Loved "I got the tickets"`, "❤️"},
			{"The cat sat on the keyboard", `Laughed at “The cat sat on the keyboard”`, "😂"},
			{"Don't forget the keys", `Emphasized “Don’t forget the keys”`, "‼️"},
			{"Meet at the station", `Questioned “Meet at the station”`, "❓"},
			{"It will rain all day", `Disliked “It will rain all day”`, "👎"},
			{long, `Loved “This is a long message about the plans for the…”`, "❤️"},
			{"Pizza tonight?", `Reacted 🍕 to “Pizza tonight?”`, "🍕"},
		}
		for i, p := range phrases {
			alice.SendRaw(t, fmt.Sprintf(`<message to='%s' type='chat' id='sms-p%d'><body>%s</body></message>`, friendJID, i, p.text))
			if got := nextSMS(t); got != p.text {
				t.Fatalf("sent %q, want %q", got, p.text)
			}
		}
		for i, p := range phrases {
			params := tw.InboundSMS(friend, aliceNum, p.body)
			if code, body := tw.PostWebhook(t, e.webhook("sms"), params); code != http.StatusOK {
				t.Fatalf("webhook %q: %d %s", p.body, code, body)
			}
			id := fmt.Sprintf("sms-p%d", i)
			got := waitConv(t, alice, friendJID, func(m conv) bool { return m.Reactions != nil && m.Reactions.ID == id })
			if !sameSet(got.Reactions.Reactions, []string{p.emoji}) {
				t.Errorf("%q: reactions %v on %s, want [%s]", p.body, got.Reactions.Reactions, id, p.emoji)
			}
		}
		// The removal form takes it away; a quote of nothing sent arrives
		// as text.
		tw.PostWebhook(t, e.webhook("sms"), tw.InboundSMS(friend, aliceNum, `Removed a like from “Are you coming to dinner”`))
		waitConv(t, alice, friendJID, func(m conv) bool {
			return m.Reactions != nil && m.Reactions.ID == "sms-p0" && len(m.Reactions.Reactions) == 0
		})
		tw.PostWebhook(t, e.webhook("sms"), tw.InboundSMS(friend, aliceNum, `Liked “something alice never wrote”`))
		chatFrom(t, alice, friendJID, `Liked “something alice never wrote”`)
	})
}
