package component_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/component"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

const (
	domain       = "sms.localhost"
	closedDomain = "closed.localhost" // serves example.org only: localhost users are refused
	plainDomain  = "plain.localhost"  // no Registrar, no Translator
	timeout      = 10 * time.Second
)

// gateway is one Prosody with three components in front of it, sharing one
// embedded bus, and the logged-in users.
type gateway struct {
	srv               *xmpptest.Server
	reg               *memRegistrar
	alice, bob, admin *xmpptest.Client
}

func startGateway(t *testing.T) *gateway {
	t.Helper()
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{domain: "secret", closedDomain: "secret", plainDomain: "secret"},
		Users:      map[string]string{"alice": "password", "bob": "password", "admin": "password"},
	})
	b := bustest.Open(t)
	g := &gateway{srv: srv, reg: newMemRegistrar("+15550000001", "+15550000002")}
	base := component.Options{
		Secret: "secret", Server: srv.ComponentAddr(), Bus: b,
		IdentityType: "sms", AllowedDomains: []string{"localhost"}, Admins: []string{"admin@localhost"},
		BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	}
	o := base
	o.Name, o.Domain, o.Registrar, o.Translator = "sms", domain, g.reg, usTranslator{}
	runComponent(t, o)
	o = base
	o.Name, o.Domain, o.AllowedDomains, o.Admins = "closed", closedDomain, []string{"example.org"}, nil
	o.Registrar, o.Translator = newMemRegistrar("+15550000009"), usTranslator{}
	runComponent(t, o)
	o = base
	o.Name, o.Domain = "plain", plainDomain
	runComponent(t, o)

	g.alice = xmpptest.Login(t, srv, "alice", "password")
	g.bob = xmpptest.Login(t, srv, "bob", "password")
	g.admin = xmpptest.Login(t, srv, "admin", "password")
	return g
}

// runComponent runs a component until the test ends and waits until its
// stream is up.
func runComponent(t *testing.T, o component.Options) {
	t.Helper()
	comp, err := component.New(o)
	if err != nil {
		t.Fatalf("component.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- comp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Run: %v", o.Domain, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s: Run did not return after cancel", o.Domain)
		}
	})
	deadline := time.Now().Add(timeout)
	for {
		up, reason := comp.Status()
		if up {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: component not up after %v: %s", o.Domain, timeout, reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var iqSeq atomic.Int64

// iq sends an IQ and returns its answer, parsed.
func iq(t *testing.T, c *xmpptest.Client, to, typ, payload string) reply {
	t.Helper()
	id := fmt.Sprintf("t%d", iqSeq.Add(1))
	toAttr := ""
	if to != "" {
		toAttr = fmt.Sprintf(` to="%s"`, to)
	}
	c.SendRaw(t, fmt.Sprintf(`<iq type="%s" id="%s"%s>%s</iq>`, typ, id, toAttr, payload))
	st := c.WaitStanza(t, timeout, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == id })
	var r reply
	if err := xml.Unmarshal([]byte(st.Raw), &r); err != nil {
		t.Fatalf("parse %s: %v", st.Raw, err)
	}
	r.Stanza = st
	return r
}

// reply is what the tests read of an IQ answer.
type reply struct {
	xmpptest.Stanza `xml:"-"`
	Register        *struct {
		Registered   *struct{} `xml:"registered"`
		Instructions string    `xml:"instructions"`
		Username     string    `xml:"username"`
		Form         *form     `xml:"jabber:x:data x"`
	} `xml:"jabber:iq:register query"`
	Command *struct {
		Node      string `xml:"node,attr"`
		SessionID string `xml:"sessionid,attr"`
		Status    string `xml:"status,attr"`
		Actions   *struct {
			Execute  string    `xml:"execute,attr"`
			Complete *struct{} `xml:"complete"`
		} `xml:"actions"`
		Notes []struct {
			Type string `xml:"type,attr"`
			Text string `xml:",chardata"`
		} `xml:"note"`
		Form *form `xml:"jabber:x:data x"`
	} `xml:"http://jabber.org/protocol/commands command"`
	Gateway *struct {
		Desc   string `xml:"desc"`
		Prompt string `xml:"prompt"`
		JID    string `xml:"jid"`
	} `xml:"jabber:iq:gateway query"`
	Items *struct {
		Node  string `xml:"node,attr"`
		Items []struct {
			JID  string `xml:"jid,attr"`
			Node string `xml:"node,attr"`
			Name string `xml:"name,attr"`
		} `xml:"item"`
	} `xml:"http://jabber.org/protocol/disco#items query"`
	Info *struct {
		Identities []struct {
			Category string `xml:"category,attr"`
			Type     string `xml:"type,attr"`
		} `xml:"identity"`
		Features []struct {
			Var string `xml:"var,attr"`
		} `xml:"feature"`
	} `xml:"http://jabber.org/protocol/disco#info query"`
	Error *struct {
		Conditions []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"error"`
}

type form struct {
	Type   string  `xml:"type,attr"`
	Fields []field `xml:"field"`
	Items  []struct {
		Fields []field `xml:"field"`
	} `xml:"item"`
	Reported *struct {
		Fields []field `xml:"field"`
	} `xml:"reported"`
}

type field struct {
	Var      string    `xml:"var,attr"`
	Type     string    `xml:"type,attr"`
	Label    string    `xml:"label,attr"`
	Required *struct{} `xml:"required"`
	Values   []string  `xml:"value"`
}

func (f *form) field(name string) *field {
	if f == nil {
		return nil
	}
	for i := range f.Fields {
		if f.Fields[i].Var == name {
			return &f.Fields[i]
		}
	}
	return nil
}

func (f *field) value() string {
	if f == nil || len(f.Values) == 0 {
		return ""
	}
	return f.Values[0]
}

func (r reply) hasFeature(v string) bool {
	if r.Info == nil {
		return false
	}
	for _, f := range r.Info.Features {
		if f.Var == v {
			return true
		}
	}
	return false
}

func (r reply) hasAppCondition(space, local string) bool {
	if r.Error == nil {
		return false
	}
	for _, c := range r.Error.Conditions {
		if c.XMLName.Space == space && c.XMLName.Local == local {
			return true
		}
	}
	return false
}

func (r reply) note() string {
	if r.Command == nil || len(r.Command.Notes) == 0 {
		return ""
	}
	return r.Command.Notes[0].Text
}

// wantResult fails unless r is a result.
func wantResult(t *testing.T, r reply) {
	t.Helper()
	if r.Type != "result" {
		t.Fatalf("want a result, got %s", r.Raw)
	}
}

// wantError fails unless r is an error with cond (and a text containing
// text, when text is set).
func wantError(t *testing.T, r reply, cond, text string) {
	t.Helper()
	if r.Type != "error" || r.ErrorCondition != cond {
		t.Fatalf("want error %s, got %s", cond, r.Raw)
	}
	if !strings.Contains(r.ErrorText, text) {
		t.Fatalf("want error text containing %q, got %q", text, r.ErrorText)
	}
}

func waitPresence(t *testing.T, c *xmpptest.Client, from, typ string) {
	t.Helper()
	c.WaitStanza(t, timeout, func(s xmpptest.Stanza) bool {
		return s.Kind == "presence" && s.From == from && s.Type == typ
	})
}

const (
	registerGet    = `<query xmlns="jabber:iq:register"/>`
	registerForm   = `<query xmlns="jabber:iq:register"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>jabber:iq:register</value></field></x></query>`
	registerEmpty  = `<query xmlns="jabber:iq:register"/>`
	registerRemove = `<query xmlns="jabber:iq:register"><remove/></query>`
	discoInfo      = `<query xmlns="http://jabber.org/protocol/disco#info"/>`
	commandsItems  = `<query xmlns="http://jabber.org/protocol/disco#items" node="http://jabber.org/protocol/commands"/>`
)

func execute(node string) string {
	return fmt.Sprintf(`<command xmlns="http://jabber.org/protocol/commands" node="%s" action="execute"/>`, node)
}

// submit is a command submission; sessionid is left out when empty.
func submit(node, sessionID string, fields map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<command xmlns="http://jabber.org/protocol/commands" node="%s" action="complete"`, node)
	if sessionID != "" {
		fmt.Fprintf(&b, ` sessionid="%s"`, sessionID)
	}
	b.WriteString(`><x xmlns="jabber:x:data" type="submit">`)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		fmt.Fprintf(&b, `<field var="%s"><value>%s</value></field>`, k, fields[k])
	}
	b.WriteString(`</x></command>`)
	return b.String()
}

func TestGatewayServices(t *testing.T) {
	g := startGateway(t)
	alice, bob, admin := g.alice, g.bob, g.admin

	t.Run("disco and ping", func(t *testing.T) {
		r := iq(t, alice, domain, "get", discoInfo)
		wantResult(t, r)
		for _, f := range []string{"urn:xmpp:ping", "jabber:iq:register", "http://jabber.org/protocol/commands", "jabber:iq:gateway"} {
			if !r.hasFeature(f) {
				t.Errorf("disco#info of %s lacks %s: %s", domain, f, r.Raw)
			}
		}
		wantResult(t, iq(t, alice, domain, "get", `<ping xmlns="urn:xmpp:ping"/>`))
		r = iq(t, alice, "+15551234567@"+domain, "get", discoInfo)
		wantResult(t, r)
		if r.hasFeature("jabber:iq:register") {
			t.Errorf("a contact advertises registration: %s", r.Raw)
		}
		// Without a Registrar and a Translator nothing is advertised, and
		// the IQs are not served.
		r = iq(t, alice, plainDomain, "get", discoInfo)
		wantResult(t, r)
		for _, f := range []string{"jabber:iq:register", "http://jabber.org/protocol/commands", "jabber:iq:gateway"} {
			if r.hasFeature(f) {
				t.Errorf("disco#info of %s advertises %s: %s", plainDomain, f, r.Raw)
			}
		}
		wantError(t, iq(t, alice, plainDomain, "get", registerGet), "service-unavailable", "")
		wantError(t, iq(t, alice, plainDomain, "set", execute("show-number")), "service-unavailable", "")
		wantError(t, iq(t, alice, plainDomain, "get", `<query xmlns="jabber:iq:gateway"/>`), "service-unavailable", "")
	})

	t.Run("register get unregistered", func(t *testing.T) {
		r := iq(t, alice, domain, "get", registerGet)
		wantResult(t, r)
		q := r.Register
		if q == nil || q.Form == nil {
			t.Fatalf("no registration form: %s", r.Raw)
		}
		if q.Registered != nil || q.Username != "" {
			t.Errorf("unregistered user shown as registered: %s", r.Raw)
		}
		if q.Instructions == "" {
			t.Errorf("no instructions: %s", r.Raw)
		}
		if ft := q.Form.field("FORM_TYPE"); ft.value() != "jabber:iq:register" || ft.Type != "hidden" {
			t.Errorf("FORM_TYPE = %+v", ft)
		}
		n := q.Form.field("number")
		if n == nil || n.Type != "text-single" || n.Label != "Your phone number" || n.value() != "" {
			t.Errorf("number field = %+v, want an empty text-single", n)
		}
	})

	t.Run("register set", func(t *testing.T) {
		// Prosody sends subscription answers only to "interested"
		// resources, those that fetched the roster.
		wantResult(t, iq(t, alice, "", "get", `<query xmlns="jabber:iq:roster"/>`))
		wantResult(t, iq(t, alice, domain, "set", registerForm))
		// XEP-0100 §4.1: the gateway asks for a subscription. Alice
		// approves it and subscribes back (what a client does), so that
		// the unregistration below changes her roster.
		waitPresence(t, alice, domain, "subscribe")
		alice.SendRaw(t, `<presence to="`+domain+`" type="subscribed"/><presence to="`+domain+`" type="subscribe"/>`)
		waitPresence(t, alice, domain, "subscribed")

		r := iq(t, alice, domain, "get", registerGet)
		wantResult(t, r)
		if q := r.Register; q == nil || q.Registered == nil || q.Username != "+15550000001" || q.Form.field("number").value() != "+15550000001" {
			t.Errorf("registered user's form: %s", r.Raw)
		}
		// Registering again (legacy, no form) keeps the number.
		wantResult(t, iq(t, alice, domain, "set", registerEmpty))
		if got, _ := g.reg.Lookup(t.Context(), "alice@localhost"); got != "+15550000001" {
			t.Errorf("after registering twice alice has %q", got)
		}
	})

	t.Run("pool exhausted", func(t *testing.T) {
		wantResult(t, iq(t, bob, domain, "set", registerForm)) // the last number
		wantError(t, iq(t, admin, domain, "set", registerForm), "resource-constraint", "no numbers left")
	})

	t.Run("show-number", func(t *testing.T) {
		r := iq(t, alice, domain, "set", execute("show-number"))
		wantResult(t, r)
		if r.Command == nil || r.Command.Status != "completed" || r.note() != "Your number is +15550000001" {
			t.Fatalf("show-number: %s", r.Raw)
		}
		if v := r.Command.Form.field("number").value(); v != "+15550000001" || r.Command.Form.Type != "result" {
			t.Errorf("show-number form: %s", r.Raw)
		}
		r = iq(t, admin, domain, "set", execute("show-number"))
		wantResult(t, r)
		if r.note() != "You have no number; register with the gateway first" {
			t.Errorf("show-number without a number: %s", r.Raw)
		}
	})

	t.Run("command list per role", func(t *testing.T) {
		nodes := func(r reply) []string {
			var ns []string
			for _, it := range r.Items.Items {
				if it.JID != domain || it.Name == "" {
					t.Errorf("bad item %+v", it)
				}
				ns = append(ns, it.Node)
			}
			return ns
		}
		r := iq(t, alice, domain, "get", commandsItems)
		wantResult(t, r)
		if got := nodes(r); !slices.Equal(got, []string{"show-number"}) {
			t.Errorf("alice's commands = %v", got)
		}
		r = iq(t, admin, domain, "get", commandsItems)
		wantResult(t, r)
		if got, want := nodes(r), []string{"show-number", "assign-number", "unassign-number", "list-registrations"}; !slices.Equal(got, want) {
			t.Errorf("admin's commands = %v, want %v", got, want)
		}
		r = iq(t, alice, domain, "get", `<query xmlns="http://jabber.org/protocol/disco#info" node="show-number"/>`)
		wantResult(t, r)
		if !r.hasFeature("http://jabber.org/protocol/commands") || len(r.Info.Identities) != 1 || r.Info.Identities[0].Type != "command-node" {
			t.Errorf("disco#info of a command node: %s", r.Raw)
		}
	})

	t.Run("admin commands refused to users", func(t *testing.T) {
		for _, node := range []string{"assign-number", "unassign-number", "list-registrations"} {
			wantError(t, iq(t, alice, domain, "set", execute(node)), "forbidden", "administrators")
		}
		wantError(t, iq(t, alice, domain, "set", execute("no-such-command")), "item-not-found", "")
	})

	t.Run("assign two steps", func(t *testing.T) {
		r := iq(t, admin, domain, "set", execute("assign-number"))
		wantResult(t, r)
		c := r.Command
		if c == nil || c.Status != "executing" || c.SessionID == "" || c.Actions == nil || c.Actions.Execute != "complete" || c.Actions.Complete == nil {
			t.Fatalf("first stage: %s", r.Raw)
		}
		u, n := c.Form.field("user"), c.Form.field("number")
		if c.Form.Type != "form" || u == nil || u.Type != "jid-single" || u.Required == nil || n == nil || n.Type != "text-single" || n.Required == nil {
			t.Fatalf("first stage form: %s", r.Raw)
		}
		// Someone else's session id, and a made-up one, are refused.
		r = iq(t, alice, domain, "set", submit("show-number", c.SessionID, nil))
		if !r.hasAppCondition("http://jabber.org/protocol/commands", "bad-sessionid") {
			t.Errorf("foreign session id: %s", r.Raw)
		}
		r = iq(t, admin, domain, "set", submit("assign-number", "made-up", map[string]string{"user": "bob@localhost", "number": "+15559990000"}))
		wantError(t, r, "bad-request", "")
		if !r.hasAppCondition("http://jabber.org/protocol/commands", "bad-sessionid") {
			t.Errorf("made-up session id: %s", r.Raw)
		}

		r = iq(t, admin, domain, "set", submit("assign-number", c.SessionID, map[string]string{"user": "admin@localhost", "number": "+15559990000"}))
		wantResult(t, r)
		if r.Command == nil || r.Command.Status != "completed" || r.note() != "Assigned +15559990000 to admin@localhost" {
			t.Fatalf("second stage: %s", r.Raw)
		}
		if got, _ := g.reg.Lookup(t.Context(), "admin@localhost"); got != "+15559990000" {
			t.Errorf("admin has %q after assign", got)
		}
		// The session is over.
		r = iq(t, admin, domain, "set", submit("assign-number", c.SessionID, map[string]string{"user": "admin@localhost", "number": "+15559990001"}))
		if !r.hasAppCondition("http://jabber.org/protocol/commands", "bad-sessionid") {
			t.Errorf("reused session id: %s", r.Raw)
		}
	})

	t.Run("assign validation", func(t *testing.T) {
		tests := []struct {
			name       string
			fields     map[string]string
			cond, text string
		}{
			{"no user", map[string]string{"number": "+15559990002"}, "bad-request", "user"},
			{"no number", map[string]string{"user": "bob@localhost"}, "bad-request", "number"},
			{"full JID", map[string]string{"user": "bob@localhost/phone", "number": "+15559990002"}, "jid-malformed", "bare JID"},
			{"number taken", map[string]string{"user": "bob@localhost", "number": "+15550000001"}, "conflict", "already assigned"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// Single step: the form comes with the first request.
				wantError(t, iq(t, admin, domain, "set", submit("assign-number", "", tt.fields)), tt.cond, tt.text)
			})
		}
	})

	t.Run("cancel", func(t *testing.T) {
		r := iq(t, admin, domain, "set", execute("unassign-number"))
		wantResult(t, r)
		sid := r.Command.SessionID
		r = iq(t, admin, domain, "set", fmt.Sprintf(`<command xmlns="http://jabber.org/protocol/commands" node="unassign-number" sessionid="%s" action="cancel"/>`, sid))
		wantResult(t, r)
		if r.Command == nil || r.Command.Status != "canceled" {
			t.Errorf("cancel: %s", r.Raw)
		}
	})

	t.Run("list-registrations", func(t *testing.T) {
		r := iq(t, admin, domain, "set", execute("list-registrations"))
		wantResult(t, r)
		c := r.Command
		if c == nil || c.Status != "completed" || c.Form == nil || c.Form.Type != "result" || c.Form.Reported == nil || len(c.Form.Reported.Fields) != 2 {
			t.Fatalf("list: %s", r.Raw)
		}
		var got []string
		for _, it := range c.Form.Items {
			f := form{Fields: it.Fields}
			got = append(got, f.field("user").value()+"="+f.field("number").value())
		}
		want := []string{"admin@localhost=+15559990000", "alice@localhost=+15550000001", "bob@localhost=+15550000002"}
		if !slices.Equal(got, want) {
			t.Errorf("items = %v, want %v", got, want)
		}
		if r.note() != "3 registrations" {
			t.Errorf("note = %q", r.note())
		}
	})

	t.Run("unassign", func(t *testing.T) {
		r := iq(t, admin, domain, "set", execute("unassign-number"))
		wantResult(t, r)
		f := r.Command.Form
		if n := f.field("number"); n == nil || n.Required == nil {
			t.Fatalf("unassign form: %s", r.Raw)
		}
		r = iq(t, admin, domain, "set", submit("unassign-number", r.Command.SessionID, map[string]string{"number": "+15550000002"}))
		wantResult(t, r)
		if r.Command.Status != "completed" || r.note() != "Released +15550000002 (was bob@localhost)" {
			t.Errorf("unassign: %s", r.Raw)
		}
		r = iq(t, bob, domain, "set", execute("show-number"))
		if r.note() != "You have no number; register with the gateway first" {
			t.Errorf("bob after unassign: %s", r.Raw)
		}
		wantError(t, iq(t, admin, domain, "set", submit("unassign-number", "", map[string]string{"number": "+15550000002"})), "item-not-found", "not assigned")
	})

	t.Run("unregister", func(t *testing.T) {
		wantResult(t, iq(t, alice, domain, "set", registerRemove))
		// XEP-0100 §4.3.
		waitPresence(t, alice, domain, "unsubscribe")
		waitPresence(t, alice, domain, "unsubscribed")
		r := iq(t, alice, domain, "get", registerGet)
		if r.Register == nil || r.Register.Registered != nil {
			t.Errorf("after remove: %s", r.Raw)
		}
		if got, _ := g.reg.Lookup(t.Context(), "alice@localhost"); got != "" {
			t.Errorf("alice still has %q", got)
		}
	})

	t.Run("jabber:iq:gateway", func(t *testing.T) {
		r := iq(t, alice, domain, "get", `<query xmlns="jabber:iq:gateway"/>`)
		wantResult(t, r)
		if r.Gateway == nil || r.Gateway.Desc != "Enter the phone number of the person to text." || r.Gateway.Prompt != "Phone number" {
			t.Errorf("gateway get: %s", r.Raw)
		}
		tests := []struct {
			prompt, jid, cond, text string
		}{
			{prompt: "(555) 123-4567", jid: "+15551234567@" + domain},
			{prompt: "+44 20 7946 0018", jid: "+442079460018@" + domain},
			{prompt: "hello", cond: "jid-malformed", text: `"hello" is not a phone number`},
			{prompt: "boom", cond: "internal-server-error", text: "please try again later"},
		}
		for _, tt := range tests {
			r := iq(t, alice, domain, "set", `<query xmlns="jabber:iq:gateway"><prompt>`+tt.prompt+`</prompt></query>`)
			if tt.cond != "" {
				wantError(t, r, tt.cond, tt.text)
				continue
			}
			wantResult(t, r)
			if r.Gateway == nil || r.Gateway.JID != tt.jid {
				t.Errorf("prompt %q: %s", tt.prompt, r.Raw)
			}
		}
	})

	t.Run("users of other domains", func(t *testing.T) {
		for _, payload := range []string{registerGet, registerForm, registerRemove} {
			typ := "set"
			if payload == registerGet {
				typ = "get"
			}
			wantError(t, iq(t, alice, closedDomain, typ, payload), "forbidden", "example.org")
		}
		wantError(t, iq(t, alice, closedDomain, "set", execute("show-number")), "forbidden", "")
		r := iq(t, alice, closedDomain, "get", commandsItems)
		wantResult(t, r)
		if r.Items == nil || len(r.Items.Items) != 0 {
			t.Errorf("commands listed to a user who may run none: %s", r.Raw)
		}
	})
}

// memRegistrar is an in-memory component.Registrar with a pool of numbers.
type memRegistrar struct {
	mu     sync.Mutex
	pool   []string        // free pool numbers, handed out in order
	inPool map[string]bool // every pool number
	users  map[string]string
}

func newMemRegistrar(pool ...string) *memRegistrar {
	r := &memRegistrar{pool: pool, inPool: map[string]bool{}, users: map[string]string{}}
	for _, n := range pool {
		r.inPool[n] = true
	}
	return r
}

var _ component.Registrar = (*memRegistrar)(nil)

// stanzaError is how a Registrar tells the component which condition to send.
type stanzaError struct{ cond, text string }

func (e *stanzaError) Error() string           { return e.text }
func (e *stanzaError) StanzaCondition() string { return e.cond }

func (r *memRegistrar) Lookup(_ context.Context, user string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.users[user], nil
}

func (r *memRegistrar) Register(_ context.Context, user string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.users[user]; ok {
		return n, nil
	}
	if len(r.pool) == 0 {
		return "", &stanzaError{"resource-constraint", "no numbers left; ask the administrator"}
	}
	n := r.pool[0]
	r.pool = r.pool[1:]
	r.users[user] = n
	return n, nil
}

func (r *memRegistrar) Unregister(_ context.Context, user string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.users[user]
	r.releaseLocked(user)
	return n, nil
}

func (r *memRegistrar) releaseLocked(user string) {
	n, ok := r.users[user]
	if !ok {
		return
	}
	delete(r.users, user)
	if r.inPool[n] {
		r.pool = append(r.pool, n)
	}
}

func (r *memRegistrar) Assign(_ context.Context, user, address string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for u, n := range r.users {
		if n == address && u != user {
			return &stanzaError{"conflict", address + " is already assigned to " + u}
		}
	}
	r.releaseLocked(user)
	r.pool = slices.DeleteFunc(r.pool, func(n string) bool { return n == address })
	r.users[user] = address
	return nil
}

func (r *memRegistrar) Unassign(_ context.Context, address string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for u, n := range r.users {
		if n == address {
			r.releaseLocked(u)
			return u, nil
		}
	}
	return "", &stanzaError{"item-not-found", address + " is not assigned"}
}

func (r *memRegistrar) List(context.Context) (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.users), nil
}

// usTranslator reads North American numbers written any way, and
// international ones with a +.
type usTranslator struct{}

var _ component.AddressTranslator = usTranslator{}

func (usTranslator) AddressPrompt() (string, string) {
	return "Enter the phone number of the person to text.", "Phone number"
}

func (usTranslator) TranslateAddress(in string) (string, error) {
	if in == "boom" {
		return "", errors.New("translator store unreachable") // not the user's fault
	}
	var digits strings.Builder
	for _, r := range in {
		if r >= '0' && r <= '9' {
			digits.WriteRune(r)
		}
	}
	d := digits.String()
	switch {
	case strings.HasPrefix(strings.TrimSpace(in), "+") && len(d) >= 8:
		return "+" + d, nil
	case len(d) == 10:
		return "+1" + d, nil
	case len(d) == 11 && d[0] == '1':
		return "+" + d, nil
	}
	return "", &stanzaError{"jid-malformed", fmt.Sprintf("%q is not a phone number", in)}
}
