package matrix_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/matrix"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

// TestLogin: what a login refuses, and that logging out removes the
// device and the stored login.
func TestLogin(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	strict := *w.cfg
	strict.AllowPrivateHomeservers = false
	sa, err := matrix.New(gateways.Params{Name: "matrix", Config: &strict, Registrations: w.kv, Messages: w.msgs})
	if err != nil {
		t.Fatal(err)
	}
	a := w.adapter(t)
	for _, tc := range []struct {
		name       string
		a          *matrix.Adapter
		hs, mxid   string
		password   string
		wantInText string
	}{
		{"private homeserver", sa.(*matrix.Adapter), w.srv.URL(), "@gtalice:localhost", "password", "loopback, private or link-local"},
		{"not a URL", a, "matrix.example.org", "@gtalice:localhost", "password", "URL"},
		{"not a full Matrix ID", a, w.srv.URL(), "gtalice", "password", "full"},
		{"wrong password", a, w.srv.URL(), "@gtalice:localhost", "wrong", "refused the login"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.a.Login(ctx, alice, tc.hs, tc.mxid, tc.password)
			var ge *gateways.Error
			if !errors.As(err, &ge) || ge.Condition != gateways.NotAcceptable || !strings.Contains(ge.Text, tc.wantInText) {
				t.Fatalf("Login = %v, want not-acceptable saying %q", err, tc.wantInText)
			}
			if strings.Contains(err.Error(), tc.password) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	if _, err := a.Login(ctx, alice, w.srv.URL(), "@gtalice:localhost", "password"); err != nil {
		t.Fatal(err)
	}
	e, err := w.kv.Get(ctx, "matrix.account."+b64(alice))
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		Token string `json:"access_token"`
	}
	if err := json.Unmarshal(e.Value(), &stored); err != nil || stored.Token == "" {
		t.Fatalf("stored login %v: no access_token", err)
	}
	token := stored.Token
	mxid, err := a.Logout(ctx, alice)
	if err != nil || mxid != "@gtalice:localhost" {
		t.Fatalf("Logout = %s, %v", mxid, err)
	}
	if _, err := w.kv.Get(ctx, "matrix.account."+b64(alice)); err == nil {
		t.Errorf("the login is still stored after Logout")
	}
	c := w.srv.Client(t, "gtalice", "password")
	c.AccessToken = token
	if _, err := c.Whoami(context.Background()); err == nil {
		t.Errorf("the logged-out device's token still works")
	}
}

// TestCryptoDir: the crypto directory defaults to one in the process's
// data directory, and is required without one.
func TestCryptoDir(t *testing.T) {
	cfg := matrix.Config{SyncTimeout: matrix.DefaultSyncTimeout, RequestTimeout: matrix.DefaultRequestTimeout}
	if _, err := matrix.New(gateways.Params{Name: "matrix", Config: &cfg}); err == nil || !strings.Contains(err.Error(), "crypto_dir: required") {
		t.Errorf("New without crypto_dir and data directory = %v, want an error naming crypto_dir", err)
	}
	if _, err := matrix.New(gateways.Params{Name: "matrix", Config: &cfg, DataDir: t.TempDir()}); err != nil {
		t.Errorf("New with a data directory: %v", err)
	}
}

// TestRegisterWithoutForm: a registration with the plain XEP-0077 fields
// instead of the form is refused, saying how to log in.
func TestRegisterWithoutForm(t *testing.T) {
	js := bustest.Open(t).JetStream()
	kv, err := js.KeyValue(context.Background(), bus.BucketRegistrations)
	if err != nil {
		t.Fatal(err)
	}
	cfg := matrix.Config{SyncTimeout: matrix.DefaultSyncTimeout, RequestTimeout: matrix.DefaultRequestTimeout, CryptoDir: t.TempDir()}
	a, err := matrix.New(gateways.Params{Name: "matrix", Domain: "matrix.localhost", Config: &cfg, Registrations: kv})
	if err != nil {
		t.Fatal(err)
	}
	fr := a.(*matrix.Adapter).Registrar().(gateways.FormRegistrar)
	_, err = fr.RegisterForm(context.Background(), alice, nil)
	var ge *gateways.Error
	if !errors.As(err, &ge) || ge.Condition != gateways.NotAcceptable || !strings.Contains(ge.Text, "registration form") || !strings.Contains(ge.Text, "Log in to Matrix") {
		t.Errorf("RegisterForm without a form = %v, want not-acceptable naming the form and the command", err)
	}
}
