// Package twilio is the Twilio provider of the SMS gateway (package sms):
// outbound messages through Twilio's REST API (twilio-go), inbound
// messages and delivery reports through webhooks signed with
// X-Twilio-Signature. Everything an SMS gateway does beyond that —
// numbers, rates, attempt records, media links, receipts, corrections,
// replies, phones' reactions — is package sms's, shared with Telnyx.
//
// After an attempt whose outcome is unknown, Twilio's list of messages by
// From and To settles it (Find).
//
// Twilio cannot send a group MMS: its Messages API takes one To. A group
// text from a user whose number is at Twilio is refused, not fanned out
// as separate texts (which would not be a group on the phones). The
// adapter declares rooms (Capabilities.Rooms) for that refusal alone: a
// group's room (numbers joined with commas) is then known for what it is,
// and joining it or writing to it is answered feature-not-implemented with
// the reason, where a gateway without rooms could only call the address
// malformed. The price: the domain's disco#info lists the MUC feature.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/sms"
)

// ID is the adapter's name in configuration.
const ID = "twilio"

func init() {
	gateways.Register(gateways.Info{
		ID:           ID,
		Type:         "sms",
		ContactType:  "sms",
		Name:         "SMS (Twilio)",
		Capabilities: gateways.Capabilities{Media: true, Receipts: true, Rooms: true},
		NewConfig:    newConfig,
		New:          New,
	})
}

// Adapter is what New returns: the SMS gateway, with Twilio numbers.
type Adapter = sms.Rooms

// New constructs the adapter: an SMS gateway whose numbers are at one
// Twilio account. It connects to nothing.
func New(p gateways.Params) (gateways.Adapter, error) {
	cfg, ok := p.Config.(*Config)
	if !ok || cfg == nil {
		return nil, errors.New("missing twilio configuration block (account_sid, auth_token…)")
	}
	prov, err := NewProvider(&cfg.Account, cfg.Settings.RequestTimeout, p)
	if err != nil {
		return nil, err
	}
	// Rooms, so that a group text is answered feature-not-implemented
	// with the reason rather than taken for a contact.
	return sms.NewAdapter(sms.Options{ID: ID, Params: p, Settings: cfg.Settings, Rooms: true,
		Accounts: []sms.Account{{Provider: prov, Numbers: cfg.Holdings}}})
}

// Provider is one Twilio account.
type Provider struct {
	cfg       *Account
	timeout   time.Duration
	publicURL string
	base      string // the webhooks' path (Bind)
	g         *sms.Gateway

	api       *openapi.ApiService
	http      *http.Client // to Twilio's API, rewritten to api_url
	media     *http.Client // media downloads; follows redirects
	apiHost   string       // the only host our credentials are sent to
	validator client.RequestValidator
}

var _ sms.Provider = (*Provider)(nil)

// NewProvider returns the provider for account; requestTimeout bounds
// each API call.
func NewProvider(account *Account, requestTimeout time.Duration, p gateways.Params) (*Provider, error) {
	api, err := url.Parse(account.APIURL)
	if err != nil {
		return nil, fmt.Errorf("api_url: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Keep a warm (TLS) connection per concurrent send: one handshake per
	// connection, not per message.
	transport.MaxIdleConnsPerHost = max(32, p.MaxConcurrency)
	var rt http.RoundTripper = transport
	if account.APIURL != DefaultAPIURL {
		rt = &rewrite{to: api, next: transport}
	}
	hc := &http.Client{
		Transport: rt,
		Timeout:   requestTimeout, // twilio-go takes no context
		// Twilio answers API calls directly; a redirect would carry our
		// credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c := &client.Client{Credentials: client.NewCredentials(account.AccountSID, account.AuthToken), HTTPClient: hc}
	c.SetAccountSid(account.AccountSID)
	return &Provider{
		cfg:       account,
		timeout:   requestTimeout,
		publicURL: strings.TrimRight(p.PublicURL, "/"),
		api:       openapi.NewApiServiceWithClient(c),
		http:      hc,
		// Media URLs redirect to a CDN on real Twilio. Follow them;
		// net/http drops the Authorization header when a redirect leaves
		// the host.
		media:     &http.Client{Transport: rt, Timeout: 2 * time.Minute},
		apiHost:   api.Host,
		validator: client.NewRequestValidator(account.AuthToken),
	}, nil
}

// ID is "twilio".
func (t *Provider) ID() string { return ID }

// Name is "Twilio".
func (t *Provider) Name() string { return "Twilio" }

// Close releases idle connections.
func (t *Provider) Close() { t.http.CloseIdleConnections() }

// Send creates one message.
func (t *Provider) Send(ctx context.Context, m sms.Message) (string, error) {
	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	params.SetFrom(m.From)
	if t.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(t.cfg.MessagingServiceSID)
	}
	if m.Body != "" {
		params.SetBody(m.Body)
	}
	if len(m.Media) > 0 {
		params.SetMediaUrl(m.Media)
	}
	params.SetStatusCallback(t.publicURL + t.base + "/status")
	resp, err := withContext(ctx, func() (*openapi.ApiV2010Message, error) { return t.api.CreateMessage(params) })
	if err != nil {
		var te *client.TwilioRestError
		if errors.As(err, &te) || notSent(err) {
			return "", &sms.NotCreated{Err: classify(err)}
		}
		return "", classify(err)
	}
	if resp.Sid == nil {
		return "", nil
	}
	return *resp.Sid, nil
}

// notSent: the request never left (no connection could be made), so
// nothing can have been created at Twilio.
func notSent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// withContext runs a blocking twilio-go call (it takes no context),
// returning early if ctx ends; the call itself is bounded by
// request_timeout, and its late result is dropped.
func withContext[T any](ctx context.Context, call func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := call()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// classify maps a twilio-go error to retry or report. 429 and 5xx are
// Twilio asking to come back later, as are network errors; other 4xx are the
// request's fault and retrying cannot help.
func classify(err error) error {
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		code := strconv.Itoa(te.Code)
		switch {
		case te.Status == http.StatusTooManyRequests || te.Code == 20429:
			return fmt.Errorf("twilio rate limit (%d): %w", te.Code, err)
		case te.Status >= 500:
			return fmt.Errorf("twilio server error %d (%d): %w", te.Status, te.Code, err)
		case te.Code == 21610:
			return &gateways.Error{Condition: gateways.NotAllowed, Code: code, Permanent: true,
				Text: "the recipient has opted out (replied STOP) and does not accept messages from this number; they must reply START to receive messages again"}
		case te.Code == 21211 || te.Code == 21614:
			return &gateways.Error{Condition: gateways.JIDMalformed, Code: code, Permanent: true, Text: te.Message}
		case te.Code == 21408 || te.Code == 21612:
			return &gateways.Error{Condition: gateways.NotAllowed, Code: code, Permanent: true, Text: te.Message}
		case te.Status == 401 || te.Status == 403 || te.Code == 20003:
			return &gateways.Error{Condition: gateways.ServiceUnavailable, Code: code, Permanent: true,
				Text: "the gateway's Twilio credentials were refused; tell the administrator"}
		}
		return &gateways.Error{Condition: gateways.NotAcceptable, Code: code, Permanent: true, Text: te.Message}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return fmt.Errorf("reaching twilio: %w", err)
	}
	// An undecodable error body from a misbehaving proxy and the like:
	// treat as transient; the attempt budget bounds it.
	return fmt.Errorf("twilio: %w", err)
}

// deliveryErrors explains Twilio's delivery failure codes to a person.
var deliveryErrors = map[string]string{
	"30001": "the message queue overflowed",
	"30002": "the gateway's Twilio account is suspended",
	"30003": "the destination phone is unreachable (switched off or out of coverage)",
	"30004": "the message was blocked (the recipient may have blocked this number)",
	"30005": "the destination number is unknown or no longer exists",
	"30006": "the destination is a landline or a carrier that does not take SMS",
	"30007": "the carrier filtered the message as spam or against its rules",
	"30008": "the carrier reported an unknown error",
	"30009": "part of the message went missing",
	"30010": "the message price exceeded the maximum price",
}

// Explain says what a Twilio delivery error code means.
func (t *Provider) Explain(code string) string { return deliveryErrors[code] }

// Fetch GETs an inbound media URL; Twilio's need the account's
// credentials, which go to Twilio's API host only, whatever a URL says.
func (t *Provider) Fetch(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if req.URL.Host == t.apiHost || req.URL.Host == twilioHost {
		req.SetBasicAuth(t.cfg.AccountSID, t.cfg.AuthToken)
	}
	return t.media.Do(req)
}

// twilioHost is where twilio-go and Twilio's media URLs point.
const twilioHost = "api.twilio.com"

// rewrite sends requests for Twilio's API host to another scheme and host
// (and path prefix): twilio-go has no base-URL setting. Other hosts (a media
// CDN after a redirect) are left alone.
type rewrite struct {
	to   *url.URL
	next http.RoundTripper
}

func (r *rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != twilioHost {
		return r.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.URL.Scheme = r.to.Scheme
	out.URL.Host = r.to.Host
	out.URL.Path = strings.TrimRight(r.to.Path, "/") + req.URL.Path
	if req.URL.RawPath != "" {
		out.URL.RawPath = strings.TrimRight(r.to.Path, "/") + req.URL.RawPath
	}
	out.Host = r.to.Host
	return r.next.RoundTrip(out)
}

// CloseIdleConnections passes http.Client.CloseIdleConnections on (Stop
// calls it); without it the client cannot reach the transport's pool.
func (r *rewrite) CloseIdleConnections() {
	if c, ok := r.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
