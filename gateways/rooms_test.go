package gateways_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

// roomAdapter is a scriptAdapter whose network has rooms.
type roomAdapter struct {
	scriptAdapter
	joinErr error

	rmu    sync.Mutex
	joins  []gateways.Join
	leaves []gateways.Leave
}

var _ gateways.RoomAdapter = (*roomAdapter)(nil)

func (a *roomAdapter) IsRoom(addr string) bool { return strings.HasPrefix(addr, "#") }

func (a *roomAdapter) Join(_ context.Context, j gateways.Join) error {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	a.joins = append(a.joins, j)
	return a.joinErr
}

func (a *roomAdapter) Leave(_ context.Context, l gateways.Leave) error {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	a.leaves = append(a.leaves, l)
	return nil
}

func (a *roomAdapter) roomCalls() ([]gateways.Join, []gateways.Leave) {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	return append([]gateways.Join(nil), a.joins...), append([]gateways.Leave(nil), a.leaves...)
}

// publishPresence sends a join or exit as the component does.
func publishPresence(t *testing.T, b *bus.Bus, user, room string, p *bus.Presence) {
	t.Helper()
	env := &bus.Envelope{Kind: bus.KindPresence, ID: nuid.Next(), Gateway: gw, Time: time.Now().UTC(), User: user, Contact: room, Presence: p}
	if _, err := b.Publish(t.Context(), bus.OutSubject(gw), env, ""); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func TestRunnerRooms(t *testing.T) {
	t.Parallel()
	b := bustest.Open(t)
	a := &roomAdapter{}
	runner, err := gateways.NewRunner(func() gateways.RunnerOptions {
		o := defaultOptions(b, a)
		o.Info.Capabilities.Rooms = true
		return o
	}())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h := &harness{t: t, b: b, a: &a.scriptAdapter}

	publishPresence(t, b, sender, "#go", &bus.Presence{Nick: "alice"})
	h.publish(sender, "#go", &bus.Message{ID: "m1", Body: "hello", Type: bus.TypeGroupchat})
	subject := "new topic"
	h.publish(sender, "#go", &bus.Message{ID: "m2", Type: bus.TypeGroupchat, Subject: &subject})
	publishPresence(t, b, sender, "#go", &bus.Presence{Type: bus.PresenceUnavailable, Nick: "alice", Status: "bye"})
	h.waitSettled()

	joins, leaves := a.roomCalls()
	if len(joins) != 1 || joins[0] != (gateways.Join{User: sender, Room: "#go", Nick: "alice", Attempt: 1}) {
		t.Errorf("joins = %+v", joins)
	}
	if len(leaves) != 1 || leaves[0] != (gateways.Leave{User: sender, Room: "#go", Nick: "alice", Status: "bye"}) {
		t.Errorf("leaves = %+v", leaves)
	}
	calls := a.Calls()
	if len(calls) != 2 || !calls[0].Groupchat || calls[0].To != "#go" || calls[0].Body != "hello" ||
		calls[1].Subject == nil || *calls[1].Subject != subject {
		t.Errorf("sends = %+v", calls)
	}

	// A refused join comes back as a presence error from the room.
	a.rmu.Lock()
	a.joinErr = gateways.Reject(gateways.RegistrationRequired, "#secret is invite-only")
	a.rmu.Unlock()
	publishPresence(t, b, sender, "#secret", &bus.Presence{Nick: "alice"})
	h.waitSettled()
	in := h.inbound()
	if len(in) != 1 {
		t.Fatalf("stored %d envelopes, want the refusal", len(in))
	}
	e := in[0]
	if e.Kind != bus.KindPresence || e.Contact != "#secret" || e.User != sender || e.Presence.Type != bus.PresenceError ||
		e.Presence.Nick != "alice" || e.Presence.Error.Condition != "registration-required" || e.Presence.Error.Type != "auth" ||
		e.Presence.Error.Text != "#secret is invite-only" {
		t.Errorf("refusal = %+v %+v", e, e.Presence)
	}
}

func TestRunnerRefusesRoomsWithoutTheCapability(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, nil)
	publishPresence(t, h.b, sender, "#go", &bus.Presence{Nick: "alice"})
	h.publish(sender, "#go", &bus.Message{ID: "m1", Body: "hello", Type: bus.TypeGroupchat})
	h.waitSettled()
	if calls := a.Calls(); len(calls) != 0 {
		t.Fatalf("adapter without rooms was handed %+v", calls)
	}
	in := h.inbound()
	if len(in) != 2 {
		t.Fatalf("stored %d envelopes, want 2 refusals", len(in))
	}
	for _, e := range in {
		var cond string
		switch e.Kind {
		case bus.KindPresence:
			cond = e.Presence.Error.Condition
		case bus.KindError:
			cond = e.Error.Condition
			if e.Error.Ref != "m1" {
				t.Errorf("error ref = %q, want m1", e.Error.Ref)
			}
		}
		if cond != string(gateways.FeatureNotImplemented) {
			t.Errorf("%s refusal condition = %q, want feature-not-implemented", e.Kind, cond)
		}
	}
}

func TestHostOccupantAndNotice(t *testing.T) {
	t.Parallel()
	a := &roomAdapter{}
	b := bustest.Open(t)
	h := startRunnerOn(t, b, &a.scriptAdapter, func(o *gateways.RunnerOptions) { o.Info.Capabilities.Rooms = true })
	host := startedHost(t, &a.scriptAdapter)
	ctx := t.Context()
	occ := gateways.Occupant{User: sender, Room: "#go", Nick: "bob", Left: true, NewNick: "bobby", Role: "moderator", Status: "renamed"}
	if err := host.Occupant(ctx, occ); err != nil {
		t.Fatal(err)
	}
	topic := ""
	if err := host.Deliver(ctx, gateways.Inbound{Groupchat: true, From: "#go", To: sender, Subject: &topic}); err != nil {
		t.Fatal(err)
	}
	if err := host.Deliver(ctx, gateways.Notice("alice@localhost", "reconnecting")); err != nil {
		t.Fatal(err)
	}
	in := h.inbound()
	if len(in) != 3 {
		t.Fatalf("stored %d envelopes, want 3", len(in))
	}
	p := in[0].Presence
	if in[0].Kind != bus.KindPresence || in[0].Contact != "#go" || p.Type != bus.PresenceUnavailable || p.Nick != "bob" ||
		p.NewNick != "bobby" || p.Role != "moderator" || p.Status != "renamed" || p.Self {
		t.Errorf("occupant envelope = %+v %+v", in[0], p)
	}
	if m := in[1].Message; m.Type != bus.TypeGroupchat || m.Subject == nil || *m.Subject != "" || in[1].Contact != "#go" {
		t.Errorf("subject envelope = %+v %s", m, fmt.Sprint(m.Subject))
	}
	if in[2].Contact != "" || in[2].Message.Body != "reconnecting" || in[2].User != "alice@localhost" {
		t.Errorf("notice envelope = %+v %+v", in[2], in[2].Message)
	}
}
