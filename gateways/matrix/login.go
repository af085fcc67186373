package matrix

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/gateways"
)

// checkHomeserver validates the homeserver URL a user gave: https (or
// http on loopback with allow_private_homeservers), a host allowed by
// allowed_homeservers, resolving to public addresses unless
// allow_private_homeservers. It returns the URL normalised.
func (a *Adapter) checkHomeserver(ctx context.Context, raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return "", gateways.Reject(gateways.NotAcceptable, "the homeserver must be a URL such as https://matrix.example.org")
	}
	host := u.Hostname()
	if len(a.cfg.AllowedHomeservers) > 0 && !slices.ContainsFunc(a.cfg.AllowedHomeservers, func(h string) bool { return strings.EqualFold(h, host) }) {
		return "", gateways.Reject(gateways.NotAcceptable, "this gateway serves the homeservers %s only", strings.Join(a.cfg.AllowedHomeservers, ", "))
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return "", gateways.Reject(gateways.NotAcceptable, "the homeserver's host %s does not resolve", host)
	}
	loopback := true
	for _, ip := range addrs {
		loopback = loopback && ip.Unmap().IsLoopback()
		if private(ip) && !a.cfg.AllowPrivateHomeservers {
			return "", gateways.Reject(gateways.NotAcceptable, "the homeserver's host %s resolves to %s, a loopback, private or link-local address, which this gateway does not reach", host, ip)
		}
	}
	if u.Scheme == "http" && !(loopback && a.cfg.AllowPrivateHomeservers) {
		return "", gateways.Reject(gateways.NotAcceptable, "the homeserver must be reached with https")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// private: an address the gateway does not reach for its users by default.
func private(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(ip) // carrier-grade NAT
}

// dialControl refuses connections to private addresses at dial time too,
// so that a name that resolved to a public address at login and to a
// private one later (DNS rebinding) is not followed.
func (a *Adapter) dialControl(_, address string, _ syscall.RawConn) error {
	if a.cfg.AllowPrivateHomeservers {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	if private(ap.Addr()) {
		return fmt.Errorf("matrix: refusing to connect to %s, a private address", ap.Addr())
	}
	return nil
}

// Login logs user (a bare JID) in to Matrix as mxid with password on the
// homeserver at hsURL and stores the login; the adapter (in whichever
// process runs it) then connects them. A login already stored is logged
// out first. It returns the Matrix ID logged in.
func (a *Adapter) Login(ctx context.Context, user, hsURL, mxid, password string) (id.UserID, error) {
	if a.kv == nil {
		return "", errors.New("matrix: adapter constructed without the registrations bucket")
	}
	uid := id.UserID(strings.TrimSpace(mxid))
	if _, _, err := uid.ParseAndValidateRelaxed(); err != nil || !strings.HasPrefix(string(uid), "@") {
		return "", gateways.Reject(gateways.NotAcceptable, "the Matrix ID must be a full one, such as @alice:example.org")
	}
	if password == "" {
		return "", gateways.Reject(gateways.NotAcceptable, "the password is required")
	}
	hs, err := a.checkHomeserver(ctx, hsURL)
	if err != nil {
		return "", err
	}
	cli, err := a.client(account{Homeserver: hs})
	if err != nil {
		return "", gateways.Reject(gateways.NotAcceptable, "the homeserver URL: %v", err)
	}
	resp, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: string(uid)},
		Password:                 password,
		InitialDeviceDisplayName: a.cfg.DeviceName,
	})
	if err != nil {
		var he mautrix.HTTPError
		if errors.As(err, &he) && he.RespError != nil && (he.RespError.ErrCode == mautrix.MForbidden.ErrCode || he.RespError.ErrCode == "M_INVALID_USERNAME") {
			return "", gateways.Reject(gateways.NotAcceptable, "the homeserver refused the login: %s", he.RespError.Err)
		}
		return "", &gateways.Error{Condition: gateways.RemoteServerTimeout, Text: "the homeserver did not answer the login", Err: errors.New(redact(err.Error(), password))}
	}
	if old, ok, err := a.loadAccount(ctx, user); err == nil && ok {
		a.logout(ctx, old)
		a.forgetDevice(ctx, user, old)
	}
	acc := account{Homeserver: hs, UserID: resp.UserID, DeviceID: resp.DeviceID, AccessToken: resp.AccessToken}
	// A new device starts from now: the old one's sync token is not ours.
	if err := a.kv.Delete(ctx, a.sinceKey(user)); err != nil {
		return "", fmt.Errorf("matrix: registrations: %w", err)
	}
	if err := a.storeAccount(ctx, user, acc); err != nil {
		a.logout(ctx, acc)
		return "", err
	}
	a.log.Info("logged in to Matrix", "user", user, "mxid", acc.UserID, "device", acc.DeviceID)
	return acc.UserID, nil
}

// Logout logs user's device out and forgets the login; the user's
// connection ends. It returns the Matrix ID that was logged in ("" when
// none).
func (a *Adapter) Logout(ctx context.Context, user string) (id.UserID, error) {
	acc, ok, err := a.loadAccount(ctx, user)
	if err != nil || !ok {
		return "", err
	}
	if err := a.kv.Delete(ctx, a.accountKey(user)); err != nil {
		return "", fmt.Errorf("matrix: registrations: %w", err)
	}
	_ = a.kv.Delete(ctx, a.sinceKey(user))
	if keys, err := a.kv.ListKeysFiltered(ctx, a.roomPrefix(user)+"*"); err == nil {
		for k := range keys.Keys() {
			_ = a.kv.Delete(ctx, k) // the device's rooms are not the next login's
		}
	}
	a.logout(ctx, acc)
	a.forgetDevice(ctx, user, acc)
	a.log.Info("logged out of Matrix", "user", user, "mxid", acc.UserID)
	return acc.UserID, nil
}

// logout ends a device's session on its homeserver, best effort: the
// login is forgotten here either way.
func (a *Adapter) logout(ctx context.Context, acc account) {
	cli, err := a.client(acc)
	if err != nil {
		return
	}
	if _, err := cli.Logout(ctx); err != nil {
		a.log.Warn("logging out of Matrix failed; the device stays in the user's session list", "mxid", acc.UserID, "device", acc.DeviceID, "error", err)
	}
}

// redact removes a secret from an error text.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// client returns a Matrix client for acc (its token, when set).
func (a *Adapter) client(acc account) (*mautrix.Client, error) {
	cli, err := mautrix.NewClient(acc.Homeserver, acc.UserID, acc.AccessToken)
	if err != nil {
		return nil, err
	}
	cli.DeviceID = acc.DeviceID
	cli.Client = a.http
	cli.DefaultHTTPRetries = 0
	cli.UserAgent = "xmppgw"
	return cli, nil
}

// Commands are the XEP-0050 commands on the gateway's domain: logging in
// and out of Matrix.
func (a *Adapter) Commands() []gateways.Command {
	return []gateways.Command{
		{
			Node: "matrix-login", Name: "Log in to Matrix",
			Form: &gateways.Form{
				Title:        "Log in to Matrix",
				Instructions: "Your homeserver's URL, your full Matrix ID and your password. The gateway logs in as a new device and keeps its access token, never your password.",
				Fields:       loginFields(),
			},
			Execute: func(ctx context.Context, user string, v map[string][]string) (gateways.CommandResult, error) {
				mxid, err := a.Login(ctx, user, first(v["homeserver"]), first(v["username"]), first(v["password"]))
				if err != nil {
					return gateways.CommandResult{}, err
				}
				return gateways.CommandResult{Note: "Logged in to Matrix as " + string(mxid) + "."}, nil
			},
		},
		{
			Node: "matrix-logout", Name: "Log out of Matrix",
			Execute: func(ctx context.Context, user string, _ map[string][]string) (gateways.CommandResult, error) {
				mxid, err := a.Logout(ctx, user)
				if err != nil {
					return gateways.CommandResult{}, err
				}
				if mxid == "" {
					return gateways.CommandResult{Note: "You were not logged in to Matrix."}, nil
				}
				return gateways.CommandResult{Note: "Logged out " + string(mxid) + "; its device is removed."}, nil
			},
		},
	}
}

// loginFields are the fields of the login form (the XEP-0077 form's too).
func loginFields() []gateways.Field {
	return []gateways.Field{
		{Var: "homeserver", Type: "text-single", Label: "Homeserver URL", Desc: "e.g. https://matrix.example.org", Required: true},
		{Var: "username", Type: "text-single", Label: "Matrix ID", Desc: "e.g. @alice:example.org", Required: true},
		{Var: "password", Type: "text-private", Label: "Password", Required: true},
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// newTransport is the HTTP transport every homeserver request uses.
func (a *Adapter) newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Control: a.dialControl}).DialContext
	return t
}
