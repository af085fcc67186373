package component_test

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/component"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

const adapterDomain = "adapter.localhost"

// conditionError is an adapter error carrying a stanza condition, as
// gateways.Error does.
type conditionError struct{ cond, text string }

func (e *conditionError) Error() string           { return e.cond + ": " + e.text }
func (e *conditionError) StanzaCondition() string { return e.cond }
func (e *conditionError) StanzaText() string      { return e.text }

type echoQuery struct {
	XMLName xml.Name `xml:"urn:example:echo query"`
	Text    string   `xml:"text"`
}

// TestAdapterCommandsAndIQs serves an adapter's own commands and IQs on a
// gateway without a Registrar: listed and run with the component's rules
// (allowed domains, admins, required fields, stanza errors), and an IQ's
// queued envelope stored on the outbound stream before the result.
func TestAdapterCommandsAndIQs(t *testing.T) {
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{adapterDomain: "secret"},
		Users:      map[string]string{"alice": "password", "admin": "password"},
	})
	b := bustest.Open(t)
	var ranAs string
	runComponent(t, component.Options{
		Name: "adapter", Domain: adapterDomain, Secret: "secret", Server: srv.ComponentAddr(), Bus: b,
		IdentityType: "app", AllowedDomains: []string{"example.org"}, Admins: []string{"admin@localhost"},
		Identities: []component.Identity{{Category: "pubsub", Type: "push"}}, DiscoFeatures: []string{"urn:xmpp:push:0"},
		Commands: []component.Command{
			{
				Node: "greet", Name: "Greet",
				Form: &component.CommandForm{Title: "Greet", Fields: []component.CommandField{
					{Var: "name", Type: "text-single", Label: "Name", Required: true},
				}},
				Execute: func(_ context.Context, user string, v map[string][]string) (component.CommandResult, error) {
					ranAs = user
					if v["name"][0] == "mallory" {
						return component.CommandResult{}, &conditionError{"not-acceptable", "not mallory"}
					}
					if v["name"][0] == "crash" {
						return component.CommandResult{}, errors.New("a bug with a secret in it")
					}
					return component.CommandResult{Note: "hello " + v["name"][0], Fields: []component.CommandField{{Var: "greeting", Values: []string{"hello " + v["name"][0]}}}}, nil
				},
			},
			{Node: "secret-stats", Name: "Stats", Admin: true, Execute: func(context.Context, string, map[string][]string) (component.CommandResult, error) {
				return component.CommandResult{Note: "all good"}, nil
			}},
		},
		IQHandlers: []component.IQHandler{{
			Type: "set", Payload: xml.Name{Space: "urn:example:echo", Local: "query"},
			Serve: func(_ context.Context, iq component.IQ) (component.IQAnswer, error) {
				var q echoQuery
				if err := iq.Decode(&q); err != nil {
					return component.IQAnswer{}, err
				}
				if q.Text == "" {
					return component.IQAnswer{}, &conditionError{"item-not-found", "nothing to echo"}
				}
				env := &bus.Envelope{Kind: bus.KindMessage, User: iq.From, Contact: "echo", Message: &bus.Message{ID: iq.ID, Body: q.Text}}
				return component.IQAnswer{Payload: echoQuery{Text: strings.ToUpper(q.Text)}, Queue: env, QueueID: "echo:" + iq.ID}, nil
			},
		}},
		BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	})
	alice := xmpptest.Login(t, srv, "alice", "password")
	admin := xmpptest.Login(t, srv, "admin", "password")

	t.Run("not served to other domains", func(t *testing.T) {
		wantError(t, iq(t, alice, adapterDomain, "set", submit("greet", "", map[string]string{"name": "x"})), "forbidden", "example.org")
		wantError(t, iq(t, alice, adapterDomain, "set", `<query xmlns="urn:example:echo"><text>hi</text></query>`), "forbidden", "")
		if r := iq(t, alice, adapterDomain, "get", commandsItems); r.Items != nil && len(r.Items.Items) != 0 {
			t.Errorf("commands listed to a user who may run none: %s", r.Raw)
		}
	})
	t.Run("listed and advertised", func(t *testing.T) {
		r := iq(t, admin, adapterDomain, "get", commandsItems)
		var nodes []string
		for _, it := range r.Items.Items {
			nodes = append(nodes, it.Node)
		}
		if strings.Join(nodes, ",") != "greet,secret-stats" {
			t.Errorf("admin's commands = %v", nodes)
		}
		r = iq(t, admin, adapterDomain, "get", discoInfo)
		if !r.hasFeature("http://jabber.org/protocol/commands") || r.hasFeature("jabber:iq:register") || !r.hasFeature("urn:xmpp:push:0") {
			t.Errorf("disco#info: %s", r.Raw)
		}
		if len(r.Info.Identities) != 2 || r.Info.Identities[1].Category != "pubsub" || r.Info.Identities[1].Type != "push" {
			t.Errorf("identities: %s", r.Raw)
		}
	})
	t.Run("two stages, required fields, errors", func(t *testing.T) {
		r := iq(t, admin, adapterDomain, "set", execute("greet"))
		if r.Command == nil || r.Command.Status != "executing" || r.Command.Form == nil || r.Command.Form.field("name") == nil {
			t.Fatalf("first stage: %s", r.Raw)
		}
		sid := r.Command.SessionID
		wantError(t, iq(t, admin, adapterDomain, "set", submit("greet", sid, map[string]string{"other": "x"})), "bad-request", "name")
		wantError(t, iq(t, admin, adapterDomain, "set", submit("greet", sid, map[string]string{"name": "mallory"})), "not-acceptable", "not mallory")
		r = iq(t, admin, adapterDomain, "set", submit("greet", sid, map[string]string{"name": "crash"}))
		wantError(t, r, "internal-server-error", "")
		if strings.Contains(r.Raw, "secret") {
			t.Errorf("an error without a condition leaked its text: %s", r.Raw)
		}
		r = iq(t, admin, adapterDomain, "set", submit("greet", sid, map[string]string{"name": "bob"}))
		wantResult(t, r)
		if r.Command.Status != "completed" || r.note() != "hello bob" || r.Command.Form.field("greeting").value() != "hello bob" {
			t.Errorf("completed: %s", r.Raw)
		}
		if ranAs != "admin@localhost" {
			t.Errorf("ran as %q, want the bare JID admin@localhost", ranAs)
		}
	})
	t.Run("IQ handler", func(t *testing.T) {
		wantError(t, iq(t, admin, adapterDomain, "set", `<query xmlns="urn:example:echo"/>`), "item-not-found", "nothing to echo")
		r := iq(t, admin, adapterDomain, "set", `<query xmlns="urn:example:echo"><text>hi</text></query>`)
		wantResult(t, r)
		if !strings.Contains(r.Raw, "<text>HI</text>") {
			t.Errorf("result payload: %s", r.Raw)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		st, err := b.JetStream().Stream(ctx, bus.StreamOut)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := st.GetLastMsgForSubject(ctx, bus.OutSubject("adapter"))
		if err != nil {
			t.Fatalf("the queued envelope is not on the outbound stream: %v", err)
		}
		env, err := bus.Decode(msg.Data)
		if err != nil || env.Gateway != "adapter" || env.Message.Body != "hi" || env.ID == "" {
			t.Errorf("queued envelope %+v, err %v", env, err)
		}
		// Not served to a contact.
		wantError(t, iq(t, admin, "x@"+adapterDomain, "set", `<query xmlns="urn:example:echo"><text>hi</text></query>`), "service-unavailable", "")
	})
}

func TestAdapterHandlersChecked(t *testing.T) {
	b := bustest.Open(t)
	base := component.Options{Name: "a", Domain: "a.localhost", Server: "127.0.0.1:1", Bus: b}
	exec := func(context.Context, string, map[string][]string) (component.CommandResult, error) {
		return component.CommandResult{}, nil
	}
	serve := func(context.Context, component.IQ) (component.IQAnswer, error) { return component.IQAnswer{}, nil }
	for _, tc := range []struct {
		name string
		edit func(o *component.Options)
	}{
		{"duplicate command", func(o *component.Options) {
			o.Commands = []component.Command{{Node: "x", Execute: exec}, {Node: "x", Execute: exec}}
		}},
		{"command named like a built-in", func(o *component.Options) {
			o.Commands = []component.Command{{Node: "show-number", Execute: exec}}
		}},
		{"command without Execute", func(o *component.Options) { o.Commands = []component.Command{{Node: "x"}} }},
		{"IQ the component serves", func(o *component.Options) {
			o.IQHandlers = []component.IQHandler{{Type: "get", Payload: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}, Serve: serve}}
		}},
		{"IQ of type result", func(o *component.Options) {
			o.IQHandlers = []component.IQHandler{{Type: "result", Payload: xml.Name{Space: "x", Local: "y"}, Serve: serve}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			if _, err := component.New(o); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}
