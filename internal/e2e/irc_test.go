package e2e_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/irctest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// IRC through the real binary: a real Prosody, a real ngircd, an XMPP user
// (alice, IRC nick "alicex") and people on IRC using plain IRC clients.
const (
	ircDomain = "irc.localhost"
	ircWait   = 15 * time.Second
)

func ircConfig(componentAddr, ircAddr string) string {
	return fmt.Sprintf(`xmpp:
  server: %s
bus:
  data_dir: %%DATA%%
http:
  listen: %%HTTP%%
log:
  level: debug
gateways:
  irc:
    domain: %s
    secret: secret
    adapter: irc
    allowed_domains: [localhost]
    irc:
      server: %s
      connect_timeout: 5s
`, componentAddr, ircDomain, ircAddr)
}

// ircEnv is one Prosody, one ngircd and the gateway between them.
type ircEnv struct {
	xmpp  *xmpptest.Server
	irc   *irctest.Server
	gw    *gw
	alice *xmpptest.Client
}

func startIRCEnv(t *testing.T) *ircEnv {
	t.Helper()
	e := &ircEnv{
		xmpp: xmpptest.StartProsody(t, xmpptest.Options{
			Components: map[string]string{ircDomain: "secret"},
			Users:      map[string]string{"alice": "password"},
		}),
		irc: irctest.Start(t, irctest.Options{}),
	}
	e.gw = startGateway(t, ircConfig(e.xmpp.ComponentAddr(), e.irc.Addr()))
	e.gw.waitHTTP("/readyz", 200, "ready", 30*time.Second)
	e.alice = xmpptest.Login(t, e.xmpp, "alice", "password")
	return e
}

// register chooses alice's nick through XEP-0077.
func (e *ircEnv) register(t *testing.T, nick string) {
	t.Helper()
	e.alice.SendRaw(t, `<iq to='`+ircDomain+`' type='set' id='reg-`+nick+`'><query xmlns='jabber:iq:register'>`+
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field>`+
		`<field var='nick'><value>`+nick+`</value></field></x></query></iq>`)
	st := e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == "reg-"+nick })
	if st.Type != "result" {
		t.Fatalf("registering nick %s: %s", nick, st.Raw)
	}
}

// waitBody waits for a message to alice from from whose body is body.
func (e *ircEnv) waitBody(t *testing.T, from, typ, body string) xmpptest.Stanza {
	t.Helper()
	return e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && s.From == from && s.Type == typ && s.Body == body
	})
}

// ircOnline asks the server (ISON, between polls) until nick is connected
// or timeout passes.
func ircOnline(t *testing.T, c *irctest.Client, nick string, timeout time.Duration) bool {
	return poll(timeout, func() bool {
		c.Send(t, "ISON "+nick)
		l := c.Wait(t, ircWait, func(l irctest.Line) bool { return l.Command == "303" })
		return strings.Contains(l.Text(), nick)
	})
}

func privmsgFrom(nick, target, text string) func(irctest.Line) bool {
	return func(l irctest.Line) bool {
		return l.Command == "PRIVMSG" && l.Nick() == nick && l.Param(0) == target && l.Text() == text
	}
}

func TestIRCPrivateMessages(t *testing.T) {
	t.Parallel()
	e := startIRCEnv(t)
	bob := e.irc.Dial(t, "bob")

	// Unregistered: the sender is told to register (and no IRC connection
	// is made for them).
	e.alice.SendRaw(t, `<message to='bob@`+ircDomain+`' type='chat' id='early'><body>too early</body></message>`)
	st := e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool { return s.Kind == "message" && s.ID == "early" })
	if st.Type != "error" || st.ErrorCondition != "registration-required" {
		t.Fatalf("message before registering: want registration-required, got %s", st.Raw)
	}

	e.register(t, "alicex")
	e.alice.SendRaw(t, `<iq to='`+ircDomain+`' type='set' id='cmd-show'><command xmlns='http://jabber.org/protocol/commands' node='show-number' action='execute'/></iq>`)
	if st := e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == "cmd-show" }); st.Type != "result" || !strings.Contains(st.Raw, "Your nick is alicex") {
		t.Errorf("show-number on IRC: %s, want \"Your nick is alicex\"", st.Raw)
	}
	// IRC → XMPP works right after registering, before alice sent anything:
	// her connection is up once the gateway says so.
	if !ircOnline(t, bob, "alicex", ircWait) {
		t.Fatal("alicex did not come online on IRC after registering")
	}
	bob.Privmsg(t, "alicex", "hi alice, from IRC")
	e.waitBody(t, "bob@"+ircDomain, "chat", "hi alice, from IRC")

	// XMPP → IRC.
	e.alice.SendChat(t, "bob@"+ircDomain, "hello bob, from XMPP")
	bob.Wait(t, ircWait, privmsgFrom("alicex", "bob", "hello bob, from XMPP"))

	// /me both ways (CTCP ACTION).
	e.alice.SendChat(t, "bob@"+ircDomain, "/me waves")
	bob.Wait(t, ircWait, privmsgFrom("alicex", "bob", "\x01ACTION waves\x01"))
	bob.Privmsg(t, "alicex", "\x01ACTION waves back\x01")
	e.waitBody(t, "bob@"+ircDomain, "chat", "/me waves back")

	// A long message arrives whole, split into lines IRC accepts, never
	// inside a UTF-8 sequence.
	long := strings.Repeat("Grüße aus XMPP — ", 60) // ~1,100 bytes
	e.alice.SendChat(t, "bob@"+ircDomain, long)
	// Lines split at spaces lose that space; compare without them.
	noSpace := func(s string) string { return strings.Join(strings.Fields(s), "") }
	var got []string
	for len(noSpace(strings.Join(got, ""))) < len(noSpace(long)) {
		l := bob.Wait(t, ircWait, func(l irctest.Line) bool { return l.Command == "PRIVMSG" && l.Nick() == "alicex" })
		if len(l.Raw)+2 > 512 { // +CRLF
			t.Fatalf("line of %d bytes: %q", len(l.Raw), l.Raw)
		}
		got = append(got, l.Text())
	}
	if strings.Join(got, " ") != strings.TrimSpace(long) || len(got) < 3 {
		t.Fatalf("long message arrived as %d lines %q", len(got), got)
	}

	// Issue #13: IRC declares no conversation features (ngircd has no
	// IRCv3 message-tags, so no typing): disco says so, a correction and a
	// reply fall back to what the user wrote, a reaction is refused.
	t.Run("conversation features", func(t *testing.T) {
		bobJID := "bob@" + ircDomain
		features := discoFeatures(t, e.alice, bobJID)
		for _, f := range conversationFeatures {
			if slices.Contains(features, f) {
				t.Errorf("disco#info of an IRC contact lists %s: %v", f, features)
			}
		}
		e.alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='irc-c1'><body>hello bob, corrected</body><replace id='whatever' xmlns='urn:xmpp:message-correct:0'/></message>`)
		bob.Wait(t, ircWait, privmsgFrom("alicex", "bob", "hello bob, corrected"))
		e.alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='irc-r1'><body>&gt; hi alice
my answer</body><reply id='x' xmlns='urn:xmpp:reply:0'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='11'/></fallback></message>`)
		bob.Wait(t, ircWait, privmsgFrom("alicex", "bob", "my answer"))
		e.alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='irc-x1'><reactions id='x' xmlns='urn:xmpp:reactions:0'><reaction>👍</reaction></reactions><body>👍</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reactions:0'/></message>`)
		st := e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool { return s.ID == "irc-x1" && s.Type == "error" })
		if st.ErrorCondition != "feature-not-implemented" || !strings.Contains(st.ErrorText, "IRC") {
			t.Errorf("reaction to IRC: %s %q, want feature-not-implemented naming IRC", st.ErrorCondition, st.ErrorText)
		}
	})
}

// mucJoin is alice's XEP-0045 join of room as nick.
func (e *ircEnv) mucJoin(t *testing.T, room, nick string) {
	t.Helper()
	e.alice.SendRaw(t, `<presence to='`+room+`@`+ircDomain+`/`+nick+`'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
}

// waitSelf waits for alice's own presence in room (status 110).
func (e *ircEnv) waitSelf(t *testing.T, room, nick, typ string) xmpptest.Stanza {
	t.Helper()
	return e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool {
		return s.Kind == "presence" && s.From == room+"@"+ircDomain+"/"+nick && s.Type == typ && hasAttr(s.Raw, "code", "110")
	})
}

// hasAttr: raw has the attribute name=value, in either quote style.
func hasAttr(raw, name, value string) bool {
	return strings.Contains(raw, name+`="`+value+`"`) || strings.Contains(raw, name+`='`+value+`'`)
}

func TestIRCChannels(t *testing.T) {
	t.Parallel()
	e := startIRCEnv(t)
	e.register(t, "alicex")
	bob := e.irc.Dial(t, "bob")
	bob.Join(t, "#xmpp")
	bob.Send(t, "TOPIC #xmpp :Gateways and bridges")
	bob.Wait(t, ircWait, func(l irctest.Line) bool { return l.Command == "TOPIC" })
	room := "#xmpp@" + ircDomain

	// Join: bob (the channel operator) first, then alice herself, then the
	// subject, in that order.
	e.mucJoin(t, "#xmpp", "alicex")
	e.waitSelf(t, "#xmpp", "alicex", "")
	e.waitBody(t, room, "groupchat", "") // the subject message has no body
	var order []string
	for _, raw := range e.alice.Stanzas() {
		switch {
		case strings.HasPrefix(raw, "<presence") && strings.Contains(raw, `from="`+room+`/bob"`):
			order = append(order, "bob")
			if !hasAttr(raw, "role", "moderator") {
				t.Errorf("bob is the channel operator, want role moderator: %s", raw)
			}
		case strings.HasPrefix(raw, "<presence") && strings.Contains(raw, `from="`+room+`/alicex"`):
			order = append(order, "self")
		case strings.Contains(raw, "<subject>Gateways and bridges</subject>"):
			order = append(order, "subject")
		}
	}
	if strings.Join(order, ",") != "bob,self,subject" {
		t.Fatalf("join stanzas in order %v, want bob,self,subject", order)
	}
	bob.Wait(t, ircWait, func(l irctest.Line) bool { return l.Command == "JOIN" && l.Nick() == "alicex" })

	// Messages both ways; alice's own message is reflected to her, as MUC
	// rooms do.
	e.alice.SendRaw(t, `<message to='`+room+`' type='groupchat' id='g1'><body>hello channel</body></message>`)
	bob.Wait(t, ircWait, privmsgFrom("alicex", "#xmpp", "hello channel"))
	e.waitBody(t, room+"/alicex", "groupchat", "hello channel")
	bob.Privmsg(t, "#xmpp", "hi alice")
	e.waitBody(t, room+"/bob", "groupchat", "hi alice")
	bob.Privmsg(t, "#xmpp", "\x01ACTION nods\x01")
	e.waitBody(t, room+"/bob", "groupchat", "/me nods")

	// Occupants follow IRC: a newcomer, a nick change, a part.
	carol := e.irc.Dial(t, "carol")
	carol.Join(t, "#xmpp")
	e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool {
		return s.Kind == "presence" && s.From == room+"/carol" && s.Type == ""
	})
	carol.Send(t, "NICK carol2")
	nick := e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool {
		return s.Kind == "presence" && s.From == room+"/carol" && s.Type == "unavailable"
	})
	if !hasAttr(nick.Raw, "code", "303") || !hasAttr(nick.Raw, "nick", "carol2") {
		t.Fatalf("nick change presence: %s", nick.Raw)
	}
	e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool {
		return s.Kind == "presence" && s.From == room+"/carol2" && s.Type == ""
	})
	carol.Send(t, "PART #xmpp :bye")
	e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool {
		return s.Kind == "presence" && s.From == room+"/carol2" && s.Type == "unavailable"
	})

	// Subject from XMPP becomes the topic.
	e.alice.SendRaw(t, `<message to='`+room+`' type='groupchat' id='s1'><subject>Now with rooms</subject></message>`)
	bob.Wait(t, ircWait, func(l irctest.Line) bool {
		return l.Command == "TOPIC" && l.Nick() == "alicex" && l.Text() == "Now with rooms"
	})

	// Leaving.
	e.alice.SendRaw(t, `<presence to='`+room+`/alicex' type='unavailable'/>`)
	bob.Wait(t, ircWait, func(l irctest.Line) bool { return l.Command == "PART" && l.Nick() == "alicex" })
	e.waitSelf(t, "#xmpp", "alicex", "unavailable")
}

func TestIRCServerRestart(t *testing.T) {
	t.Parallel()
	e := startIRCEnv(t)
	e.register(t, "alicex")
	bob := e.irc.Dial(t, "bob")
	bob.Join(t, "#xmpp")
	e.mucJoin(t, "#xmpp", "alicex")
	e.waitSelf(t, "#xmpp", "alicex", "")
	bob.Wait(t, ircWait, func(l irctest.Line) bool { return l.Command == "JOIN" && l.Nick() == "alicex" })

	e.irc.Restart(t)
	// The user is told, then the gateway reconnects and rejoins.
	e.alice.WaitStanza(t, ircWait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && (s.From == ircDomain || s.From == "#xmpp@"+ircDomain) &&
			strings.Contains(strings.ToLower(s.Body), "connect")
	})
	bob2 := e.irc.Dial(t, "bob2")
	if !ircOnline(t, bob2, "alicex", 30*time.Second) {
		t.Fatal("alicex did not reconnect within 30 s of the IRC server's restart")
	}
	// Rejoined: a channel message from IRC reaches alice again.
	bob2.Join(t, "#xmpp")
	if !poll(ircWait, func() bool {
		bob2.Send(t, "NAMES #xmpp")
		l := bob2.Wait(t, ircWait, func(l irctest.Line) bool { return l.Command == "353" || l.Command == "366" })
		return l.Command == "353" && strings.Contains(l.Text(), "alicex")
	}) {
		t.Fatal("alicex is not back in #xmpp after the restart")
	}
	bob2.Privmsg(t, "#xmpp", "welcome back")
	e.waitBody(t, "#xmpp@"+ircDomain+"/bob2", "groupchat", "welcome back")
	bob2.Privmsg(t, "alicex", "and privately")
	e.waitBody(t, "bob2@"+ircDomain, "chat", "and privately")
	e.alice.SendChat(t, "bob2@"+ircDomain, "still here")
	bob2.Wait(t, ircWait, privmsgFrom("alicex", "bob2", "still here"))
}
