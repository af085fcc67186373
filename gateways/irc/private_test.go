package irc_test

import (
	"context"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/irctest"
)

// A registered user is on IRC from Start: messages to their nick arrive
// without them having sent anything.
func TestPrivateMessages(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	f := started(t, srv)
	bob := srv.Dial(t, "bob")

	inbound := []struct {
		name, line, want string
	}{
		{"text", "PRIVMSG alice :hi alice", "hi alice"},
		{"action", "PRIVMSG alice :\x01ACTION waves\x01", "/me waves"},
		{"action without closing delimiter", "PRIVMSG alice :\x01ACTION nods", "/me nods"},
		{"formatting stripped", "PRIVMSG alice :\x02bold\x02 \x0304,01red\x03 \x1fu\x1f", "bold red u"},
		{"notice from a person", "NOTICE alice :psst", "psst"},
		{"utf-8", "PRIVMSG alice :grüße 👋", "grüße 👋"},
		{"latin-1", "PRIVMSG alice :gr\xfc\xdfe", "grüße"},
	}
	for _, tt := range inbound {
		t.Run("from IRC/"+tt.name, func(t *testing.T) {
			mark := f.host.mark()
			bob.Send(t, tt.line)
			i := f.host.waitFrom(t, mark, "message "+tt.want, dm("bob", tt.want))
			e := f.host.all()[i]
			if e.in.To != alice || e.in.ProviderID != "" || e.in.Nick != "" {
				t.Errorf("got %s; want to %s, no provider id (ngircd has no msgid)", e, alice)
			}
		})
	}

	t.Run("CTCP queries are answered, not shown", func(t *testing.T) {
		mark := f.host.mark()
		bob.Send(t, "PRIVMSG alice :\x01VERSION\x01")
		bob.Send(t, "PRIVMSG alice :\x01PING 12345\x01")
		bob.Wait(t, wait, func(l irctest.Line) bool {
			return l.Command == "NOTICE" && l.Nick() == "alice" && strings.HasPrefix(l.Text(), "\x01VERSION ")
		})
		bob.Wait(t, wait, func(l irctest.Line) bool {
			return l.Command == "NOTICE" && l.Nick() == "alice" && l.Text() == "\x01PING 12345\x01"
		})
		bob.Send(t, "PRIVMSG alice :after")
		f.host.waitFrom(t, mark, "the message after the CTCP queries", dm("bob", "after"))
		for _, e := range f.host.all()[mark:] {
			if e.in != nil && e.in.Body != "after" {
				t.Errorf("CTCP query delivered as text: %s", e)
			}
		}
	})

	outbound := []struct {
		name, body, want string
	}{
		{"text", "hi bob", "hi bob"},
		{"action", "/me waves", "\x01ACTION waves\x01"},
		{"colon first", ":-)", ":-)"},
		{"NUL and CR dropped", "a\x00b\rc", "abc"},
	}
	for _, tt := range outbound {
		t.Run("to IRC/"+tt.name, func(t *testing.T) {
			send(t, f.a, gateways.Outbound{From: aliceR, To: "bob", Body: tt.body})
			bob.Wait(t, wait, privmsg("alice", "bob", tt.want))
		})
	}

	t.Run("to a nick nobody has", func(t *testing.T) {
		mark := f.host.mark()
		send(t, f.a, gateways.Outbound{ID: "lost-1", From: aliceR, To: "nobody", Body: "anyone?"})
		i := f.host.waitFrom(t, mark, "a failure report", func(e event) bool { return e.st != nil })
		st := f.host.all()[i].st
		if st.Ref != "lost-1" || st.State != bus.StateFailed || st.Code != "401" || st.User != aliceR || st.Contact != "nobody" {
			t.Errorf("report = %+v; want failed lost-1 with code 401", *st)
		}
	})

	t.Run("malformed nick", func(t *testing.T) {
		for _, to := range []string{"two words", "a,b", "", "$mask", "*"} {
			_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: aliceR, To: to, Body: "x", Attempt: 1})
			if condition(err) != gateways.JIDMalformed {
				t.Errorf("Send to %q = %v, want jid-malformed", to, err)
			}
		}
	})

	t.Run("chat to a channel", func(t *testing.T) {
		_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: aliceR, To: "#room", Body: "x", Attempt: 1})
		if condition(err) != gateways.NotAcceptable {
			t.Errorf("Send = %v, want not-acceptable", err)
		}
	})
}

func TestSendUnregistered(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	f := started(t, srv)
	_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: "stranger@localhost/r", To: "bob", Body: "hi", Attempt: 1})
	var ge *gateways.Error
	if !errorsAs(err, &ge) || !ge.Permanent || ge.Condition != gateways.RegistrationRequired || !strings.Contains(ge.Text, "register with "+domain) {
		t.Fatalf("Send = %v; want a permanent registration-required error naming %s", err, domain)
	}
	err = f.rooms().Join(context.Background(), gateways.Join{User: "stranger@localhost/r", Room: "#room", Nick: "s"})
	if condition(err) != gateways.RegistrationRequired {
		t.Errorf("Join = %v, want registration-required", err)
	}
}
