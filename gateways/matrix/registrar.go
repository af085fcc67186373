package matrix

import (
	"context"
	"strings"

	"github.com/xmppgw/xmppgw/gateways"
)

// Registrar is the XEP-0077 side of logging in: the registration form
// asks for the homeserver, the Matrix ID and the password (fields
// homeserver, username, password), registering logs in (Login),
// unregistering logs the device out (Logout). A user's address is their
// Matrix ID.
type Registrar struct{ a *Adapter }

var (
	_ gateways.RegistrarProvider = (*Adapter)(nil)
	_ gateways.Registrar         = (*Registrar)(nil)
	_ gateways.FormRegistrar     = (*Registrar)(nil)
	_ gateways.AddressNamer      = (*Registrar)(nil)
)

// Registrar returns the login registry (nil when the adapter was built
// without its KV bucket, to check the configuration).
func (a *Adapter) Registrar() gateways.Registrar {
	if a.kv == nil {
		return nil
	}
	return &Registrar{a: a}
}

// RegistrationForm is the login form.
func (r *Registrar) RegistrationForm() gateways.Form {
	return gateways.Form{
		Title: "Log in to Matrix",
		Instructions: "Your homeserver's URL, your full Matrix ID and your password. " +
			"The gateway logs in as a new device and keeps its access token, never your password. " +
			"Then write to @bob:example.org as bob%example.org@" + r.a.domain + ".",
		Fields: loginFields(),
	}
}

// RegisterForm logs user in with the submitted form. A registration
// without the form (a client that sends the plain XEP-0077 <username/>
// and <password/>) has no homeserver field, and a homeserver guessed from
// the Matrix ID would be a request to wherever the user names: it is
// refused, saying how to log in instead.
func (r *Registrar) RegisterForm(ctx context.Context, user string, v map[string][]string) (string, error) {
	if v == nil {
		return "", gateways.Reject(gateways.NotAcceptable, "logging in to Matrix needs the registration form "+
			"(homeserver, username, password), which your client did not send: use a client that shows "+
			"XEP-0004 data forms, or the ad-hoc command \"Log in to Matrix\" on %s", r.a.domain)
	}
	for _, f := range loginFields() {
		if strings.TrimSpace(first(v[f.Var])) == "" {
			return "", gateways.Reject(gateways.NotAcceptable, "%s is required", f.Label)
		}
	}
	mxid, err := r.a.Login(ctx, user, first(v["homeserver"]), first(v["username"]), first(v["password"]))
	return string(mxid), err
}

// Lookup returns user's Matrix ID, "" when they are not logged in.
func (r *Registrar) Lookup(ctx context.Context, user string) (string, error) {
	acc, ok, err := r.a.loadAccount(ctx, user)
	if err != nil || !ok {
		return "", err
	}
	return string(acc.UserID), nil
}

// Register without the form keeps a login, or asks for one.
func (r *Registrar) Register(ctx context.Context, user string) (string, error) {
	mxid, err := r.Lookup(ctx, user)
	if err != nil || mxid != "" {
		return mxid, err
	}
	return "", gateways.Reject(gateways.NotAcceptable, "fill in the form: homeserver, Matrix ID and password")
}

// Unregister logs the device out.
func (r *Registrar) Unregister(ctx context.Context, user string) (string, error) {
	mxid, err := r.a.Logout(ctx, user)
	return string(mxid), err
}

// AddressName: a user's address is their Matrix ID, which only they can
// log in as (the ad-hoc commands that assign addresses are not offered).
func (r *Registrar) AddressName() (string, bool) { return "Matrix ID", false }

// Assign and Unassign: a Matrix login needs the user's password, so an
// administrator cannot assign one.
func (r *Registrar) Assign(context.Context, string, string) error {
	return gateways.Reject(gateways.FeatureNotImplemented, "Matrix logins are made by their users")
}

func (r *Registrar) Unassign(context.Context, string) (string, error) {
	return "", gateways.Reject(gateways.FeatureNotImplemented, "Matrix logins are made by their users; they unregister themselves")
}

// List returns every login, user → Matrix ID.
func (r *Registrar) List(ctx context.Context) (map[string]string, error) {
	keys, err := r.a.kv.ListKeysFiltered(ctx, r.a.accountPrefix()+"*")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k := range keys.Keys() {
		user, ok := r.a.userOfAccountKey(k)
		if !ok {
			continue
		}
		if acc, ok, err := r.a.loadAccount(ctx, user); err == nil && ok {
			out[user] = string(acc.UserID)
		}
	}
	return out, nil
}
