package component_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/xmppgw/xmppgw/component"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// memForm is a memRegistrar whose users register with a login form of
// the adapter's (component.FormRegistrar).
type memForm struct {
	*memRegistrar
	mu   sync.Mutex
	got  map[string][]string // the last submission
	deny bool
}

var _ component.FormRegistrar = (*memForm)(nil)

func (m *memForm) RegistrationForm() (string, string, []component.CommandField) {
	return "Log in to Matrix", "Your homeserver, Matrix ID and password.", []component.CommandField{
		{Var: "homeserver", Type: "text-single", Label: "Homeserver URL", Required: true},
		{Var: "username", Type: "text-single", Label: "Matrix ID", Required: true},
		{Var: "password", Type: "text-private", Label: "Password", Required: true},
	}
}

func (m *memForm) RegisterForm(ctx context.Context, user string, values map[string][]string) (string, error) {
	m.mu.Lock()
	m.got = values
	deny := m.deny
	m.mu.Unlock()
	if deny {
		return "", &stanzaError{"not-acceptable", "the homeserver refused the login"}
	}
	id := values["username"][0]
	return id, m.Assign(ctx, user, id)
}

// TestRegistrationWithAdapterForm: a FormRegistrar's form is the XEP-0077
// form (no number, no nick); a submission reaches it whole (FORM_TYPE
// aside), its refusal is relayed, and the registered state shows the
// address but never a submitted value such as the password.
func TestRegistrationWithAdapterForm(t *testing.T) {
	const domain = "matrix.localhost"
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{domain: "secret"},
		Users:      map[string]string{"alice": "password"},
	})
	reg := &memForm{memRegistrar: newMemRegistrar()}
	runComponent(t, component.Options{
		Name: "matrix", Domain: domain, Secret: "secret", Server: srv.ComponentAddr(), Bus: bustest.Open(t),
		IdentityType: "matrix", IdentityName: "Matrix", AllowedDomains: []string{"localhost"}, Registrar: reg,
	})
	alice := xmpptest.Login(t, srv, "alice", "password")

	r := iq(t, alice, domain, "get", registerGet)
	wantResult(t, r)
	if r.Register == nil || r.Register.Form == nil || r.Register.Registered != nil {
		t.Fatalf("no registration form: %s", r.Raw)
	}
	for _, f := range []struct{ v, typ string }{{"homeserver", "text-single"}, {"username", "text-single"}, {"password", "text-private"}} {
		got := r.Register.Form.field(f.v)
		if got == nil || got.Type != f.typ || got.Required == nil {
			t.Errorf("field %s: %+v, want a required %s", f.v, got, f.typ)
		}
	}
	if r.Register.Form.field("nick") != nil || r.Register.Form.field("number") != nil {
		t.Errorf("the form asks for a nick or a number: %s", r.Raw)
	}

	submit := `<query xmlns="jabber:iq:register"><x xmlns="jabber:x:data" type="submit">` +
		`<field var="FORM_TYPE"><value>jabber:iq:register</value></field>` +
		`<field var="homeserver"><value>https://matrix.example.org</value></field>` +
		`<field var="username"><value>@alice:example.org</value></field>` +
		`<field var="password"><value>s3cret</value></field></x></query>`
	reg.mu.Lock()
	reg.deny = true
	reg.mu.Unlock()
	wantError(t, iq(t, alice, domain, "set", submit), "not-acceptable", "the homeserver refused the login")
	reg.mu.Lock()
	reg.deny = false
	reg.mu.Unlock()
	wantResult(t, iq(t, alice, domain, "set", submit))
	reg.mu.Lock()
	got := reg.got
	reg.mu.Unlock()
	if len(got) != 3 || got["password"][0] != "s3cret" || got["homeserver"][0] != "https://matrix.example.org" {
		t.Errorf("the registrar got %v, want the three fields", got)
	}

	r = iq(t, alice, domain, "get", registerGet)
	if r.Register.Registered == nil || r.Register.Username != "@alice:example.org" {
		t.Errorf("registered state not shown: %s", r.Raw)
	}
	if strings.Contains(r.Raw, "s3cret") {
		t.Errorf("the form shows the password back: %s", r.Raw)
	}
}
