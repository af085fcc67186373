package irc_test

import (
	"context"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/irctest"
)

const aliceLaptop = "alice@localhost/laptop"

func join(t *testing.T, f *fixture, user, room string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := f.rooms().Join(ctx, gateways.Join{User: user, Room: room, Nick: "alice", Attempt: 1}); err != nil {
		t.Fatalf("Join(%s, %s): %v", user, room, err)
	}
}

// checkRoster checks that events are exactly the occupants in order, the
// user (Self) and the subject: what completes a join in XEP-0045.
func checkRoster(t *testing.T, events []event, user, room string, others [][2]string, self, selfRole, subj string) {
	t.Helper()
	var want []string
	for _, o := range others {
		want = append(want, event{occ: &gateways.Occupant{User: user, Room: room, Nick: o[0], Role: o[1]}}.String())
	}
	want = append(want, event{occ: &gateways.Occupant{User: user, Room: room, Nick: self, Self: true, Role: selfRole}}.String())
	want = append(want, event{in: &gateways.Inbound{Groupchat: true, From: room, To: user, Subject: &subj}}.String())
	var got []string
	for _, e := range events {
		got = append(got, e.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("join events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRooms(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	f := started(t, srv)
	bob := srv.Dial(t, "bob")
	carol := srv.Dial(t, "carol")
	bob.Join(t, "#room") // first in: channel operator
	carol.Join(t, "#room")
	bob.Send(t, "MODE #room +tv carol")
	bob.Send(t, "TOPIC #room :Welcome to the room")
	carol.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "TOPIC" })

	others := [][2]string{{"bob", "moderator"}, {"carol", "participant"}}
	t.Run("join", func(t *testing.T) {
		mark := f.host.mark()
		join(t, f, aliceR, "#room")
		// Join returns once everything is handed over.
		checkRoster(t, f.host.all()[mark:], aliceR, "#room", others, "alice", "participant", "Welcome to the room")
		bob.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "JOIN" && l.Nick() == "alice" })
	})

	t.Run("joining again replays the room", func(t *testing.T) {
		mark := f.host.mark()
		join(t, f, aliceR, "#room")
		checkRoster(t, f.host.all()[mark:], aliceR, "#room", others, "alice", "participant", "Welcome to the room")
	})

	t.Run("a second client of the user", func(t *testing.T) {
		mark := f.host.mark()
		join(t, f, aliceLaptop, "#room")
		checkRoster(t, f.host.all()[mark:], aliceLaptop, "#room", others, "alice", "participant", "Welcome to the room")
		mark = f.host.mark()
		bob.Privmsg(t, "#room", "hello both")
		for _, jid := range []string{aliceR, aliceLaptop} {
			f.host.waitFrom(t, mark, "the message at "+jid, func(e event) bool {
				return groupchat("#room", "bob", "hello both")(e) && e.in.To == jid
			})
		}
		// The laptop leaves; the phone is still in, so alice stays.
		mark = f.host.mark()
		if err := f.rooms().Leave(context.Background(), gateways.Leave{User: aliceLaptop, Room: "#room", Nick: "alice"}); err != nil {
			t.Fatal(err)
		}
		got := f.host.all()[mark:]
		if len(got) != 1 || got[0].occ == nil || !got[0].occ.Self || !got[0].occ.Left || got[0].occ.User != aliceLaptop {
			t.Errorf("leave of one client: %v, want its own unavailable occupant only", got)
		}
		bob.Privmsg(t, "#room", "still there?")
		f.host.waitFrom(t, mark, "the next message", groupchat("#room", "bob", "still there?"))
		for _, e := range f.host.all()[mark:] {
			if e.in != nil && e.in.To == aliceLaptop {
				t.Errorf("delivered to a client that left: %s", e)
			}
		}
	})

	t.Run("messages from IRC", func(t *testing.T) {
		mark := f.host.mark()
		bob.Privmsg(t, "#room", "hello alice")
		bob.Privmsg(t, "#room", "\x01ACTION bows\x01")
		carol.Send(t, "NOTICE #room :a notice")
		f.host.waitFrom(t, mark, "bob's message", groupchat("#room", "bob", "hello alice"))
		f.host.waitFrom(t, mark, "bob's action", groupchat("#room", "bob", "/me bows"))
		i := f.host.waitFrom(t, mark, "carol's notice", groupchat("#room", "carol", "a notice"))
		if e := f.host.all()[i]; e.in.To != aliceR {
			t.Errorf("delivered to %q, want the full JID that joined", e.in.To)
		}
	})

	t.Run("messages to IRC are reflected", func(t *testing.T) {
		mark := f.host.mark()
		send(t, f.a, gateways.Outbound{ID: "hi-1", From: aliceR, To: "#room", Body: "hi all", Groupchat: true})
		bob.Wait(t, wait, privmsg("alice", "#room", "hi all"))
		f.host.waitFrom(t, mark, "the reflection", func(e event) bool {
			// With the id alice's client gave it (XEP-0045 §7.4).
			return groupchat("#room", "alice", "hi all")(e) && e.in.To == aliceR && e.in.OriginID == "hi-1"
		})
		send(t, f.a, gateways.Outbound{From: aliceR, To: "#room", Body: "/me dances", Groupchat: true})
		bob.Wait(t, wait, privmsg("alice", "#room", "\x01ACTION dances\x01"))
		f.host.waitFrom(t, mark, "the reflected action", groupchat("#room", "alice", "/me dances"))
	})

	t.Run("topic from IRC", func(t *testing.T) {
		mark := f.host.mark()
		bob.Send(t, "TOPIC #room :Topic by bob")
		f.host.waitFrom(t, mark, "the subject", subject("#room", "bob", "Topic by bob"))
	})

	t.Run("topic refused", func(t *testing.T) {
		mark := f.host.mark()
		subj := "mine now"
		send(t, f.a, gateways.Outbound{ID: "topic-1", From: aliceR, To: "#room", Groupchat: true, Subject: &subj})
		i := f.host.waitFrom(t, mark, "a failure report", func(e event) bool { return e.st != nil })
		if st := f.host.all()[i].st; st.Ref != "topic-1" || st.State != bus.StateFailed || st.Code != "482" {
			t.Errorf("report %+v, want topic-1 failed with 482 (not a channel operator)", *st)
		}
	})

	t.Run("roles follow modes", func(t *testing.T) {
		mark := f.host.mark()
		bob.Send(t, "MODE #room +o alice")
		i := f.host.waitFrom(t, mark, "alice as moderator", occupant("#room", "alice", false))
		if o := f.host.all()[i].occ; !o.Self || o.Role != "moderator" {
			t.Errorf("got %s, want alice (self) as moderator", f.host.all()[i])
		}
		bob.Send(t, "MODE #room -v+o carol carol")
		i = f.host.waitFrom(t, mark, "carol as moderator", occupant("#room", "carol", false))
		if o := f.host.all()[i].occ; o.Self || o.Role != "moderator" {
			t.Errorf("got %s, want carol as moderator", f.host.all()[i])
		}
	})

	t.Run("topic from XMPP", func(t *testing.T) {
		mark := f.host.mark()
		subj := "Set from XMPP"
		send(t, f.a, gateways.Outbound{From: aliceR, To: "#room", Groupchat: true, Subject: &subj})
		bob.Wait(t, wait, func(l irctest.Line) bool {
			return l.Command == "TOPIC" && l.Nick() == "alice" && l.Text() == subj
		})
		f.host.waitFrom(t, mark, "the subject change", subject("#room", "alice", subj))
	})

	t.Run("occupants come and go", func(t *testing.T) {
		mark := f.host.mark()
		carol.Send(t, "NICK carol2")
		i := f.host.waitFrom(t, mark, "carol's nick change", occupant("#room", "carol", true))
		if o := f.host.all()[i].occ; o.NewNick != "carol2" {
			t.Errorf("got %s, want a nick change to carol2", f.host.all()[i])
		}
		j := f.host.waitFrom(t, i, "carol2", occupant("#room", "carol2", false))
		if j != i+1 || f.host.all()[j].occ.Role != "moderator" {
			t.Errorf("after the nick change: %s; want carol2 as moderator next", f.host.all()[j])
		}

		dave := srv.Dial(t, "dave")
		dave.Join(t, "#room")
		f.host.waitFrom(t, mark, "dave joining", occupant("#room", "dave", false))
		dave.Send(t, "PART #room :bye for now")
		i = f.host.waitFrom(t, mark, "dave parting", occupant("#room", "dave", true))
		if o := f.host.all()[i].occ; o.Status != "bye for now" || o.NewNick != "" {
			t.Errorf("got %s, want status %q", f.host.all()[i], "bye for now")
		}

		erin := srv.Dial(t, "erin")
		erin.Join(t, "#room")
		f.host.waitFrom(t, mark, "erin joining", occupant("#room", "erin", false))
		erin.Quit(t, "gone fishing")
		i = f.host.waitFrom(t, mark, "erin quitting", occupant("#room", "erin", true))
		if o := f.host.all()[i].occ; !strings.Contains(o.Status, "gone fishing") {
			t.Errorf("got %s, want the quit message", f.host.all()[i])
		}

		bob.Send(t, "KICK #room carol2 :behave")
		i = f.host.waitFrom(t, mark, "carol2 kicked", occupant("#room", "carol2", true))
		if o := f.host.all()[i].occ; o.Status != "Kicked by bob: behave" {
			t.Errorf("got %s, want the kick", f.host.all()[i])
		}
	})

	t.Run("leave", func(t *testing.T) {
		mark := f.host.mark()
		if err := f.rooms().Leave(context.Background(), gateways.Leave{User: aliceR, Room: "#room", Nick: "alice", Status: "see you"}); err != nil {
			t.Fatal(err)
		}
		bob.Wait(t, wait, func(l irctest.Line) bool {
			return l.Command == "PART" && l.Nick() == "alice" && l.Param(0) == "#room" && l.Text() == "see you"
		})
		got := f.host.all()[mark:]
		if len(got) != 1 || got[0].occ == nil || !got[0].occ.Self || !got[0].occ.Left || got[0].occ.Nick != "alice" || got[0].occ.Status != "see you" {
			t.Errorf("leave: %v, want alice's own unavailable occupant", got)
		}
		_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: aliceR, To: "#room", Body: "hello?", Groupchat: true, Attempt: 1})
		if condition(err) != gateways.NotAcceptable {
			t.Errorf("Send after leaving = %v, want not-acceptable", err)
		}
	})
}

func TestJoinRefused(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	f := started(t, srv)
	bob := srv.Dial(t, "bob")
	for _, setup := range []struct{ room, mode string }{
		{"#invite", "+i"},
		{"#banned", "+b alice!*@*"},
		{"#keyed", "+k sesame"},
		{"#full", "+l 1"},
	} {
		bob.Join(t, setup.room)
		bob.Send(t, "MODE "+setup.room+" "+setup.mode)
		bob.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "MODE" && l.Param(0) == setup.room })
	}
	tests := []struct {
		room string
		cond gateways.Condition
		code string
	}{
		{"#invite", gateways.NotAllowed, "473"},
		{"#banned", gateways.Forbidden, "474"},
		{"#keyed", gateways.Forbidden, "475"},
		{"#full", gateways.ServiceUnavailable, "471"},
		{"#", gateways.ItemNotFound, ""},
		{"#two words", gateways.ItemNotFound, ""},
		{"nochannel", gateways.ItemNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.room, func(t *testing.T) {
			mark := f.host.mark()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := f.rooms().Join(ctx, gateways.Join{User: aliceR, Room: tt.room, Nick: "alice", Attempt: 1})
			var ge *gateways.Error
			if !errorsAs(err, &ge) || !ge.Permanent || ge.Condition != tt.cond || ge.Code != tt.code {
				t.Fatalf("Join = %#v (%v); want a permanent %s with code %q", ge, err, tt.cond, tt.code)
			}
			if tt.code != "" && !strings.Contains(ge.Text, tt.room) {
				t.Errorf("text %q does not name the room", ge.Text)
			}
			for _, e := range f.host.all()[mark:] {
				if e.occ != nil {
					t.Errorf("occupant for a refused join: %s", e)
				}
			}
		})
	}
	t.Run("a refused room can be joined once allowed", func(t *testing.T) {
		bob.Send(t, "MODE #invite -i")
		bob.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "MODE" && l.Param(1) == "-i" })
		join(t, f, aliceR, "#invite")
	})
}
