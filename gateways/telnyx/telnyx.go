// Package telnyx is the Telnyx provider of the SMS gateway (package sms):
// outbound messages through the Messaging API v2 (POST /v2/messages, and
// POST /v2/messages/group_mms for group texts), inbound messages and
// delivery reports through webhooks signed with Ed25519.
//
// # Client
//
// A small typed client on net/http. Telnyx's official Go SDK is not served
// by the module proxy this project builds from, and the gateway needs two
// calls and one webhook shape: JSON bodies, Authorization: Bearer, and
// Telnyx's error objects (errors[].code/title/detail) decoded into
// *APIError, classified transient (429, 5xx, network) or permanent (each
// code a user can hit: opted out, invalid or unroutable number, spam
// block; a refused key), as for Twilio.
//
// # Ambiguous outcomes
//
// Telnyx has no list of messages by From and To to look an attempt up in
// (Twilio's way). Each send instead carries its attempt's token in its
// webhook_url (…/webhook?attempt=<token>), so every webhook Telnyx sends
// for that message — message.sent, message.finalized — names the attempt,
// and the gateway records the message id against it (sms.StatusReport
// Attempt). A retry after a timeout or a crash mid-call first waits for
// that: found, the message is not sent again. While none has come the
// retry is put off (a transient error, up to WebhookWait after the
// attempt); after that the sender is told the outcome is unknown and the
// message is not sent again: a webhook that never came cannot prove the
// message was not sent, and a second SMS is worse than a question.
//
// # Webhooks
//
// Telnyx posts every event to POST <public_url>/telnyx/<gateway>/webhook.
// The signature (telnyx-signature-ed25519, base64) is checked over
// "<telnyx-timestamp>|<raw body>" with public_key before anything is
// parsed; a timestamp further than webhook_tolerance from now is refused
// as a replay. Refusals answer 403 and store nothing.
package telnyx

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/sms"
)

// ID is the adapter's name in configuration.
const ID = "telnyx"

func init() {
	gateways.Register(gateways.Info{
		ID:           ID,
		Type:         "sms",
		ContactType:  "sms",
		Name:         "SMS (Telnyx)",
		Capabilities: gateways.Capabilities{Media: true, Receipts: true, Rooms: true},
		NewConfig:    newConfig,
		New:          New,
	})
}

// New constructs the adapter: an SMS gateway whose numbers are at one
// Telnyx account. It connects to nothing.
func New(p gateways.Params) (gateways.Adapter, error) {
	cfg, ok := p.Config.(*Config)
	if !ok || cfg == nil {
		return nil, errors.New("missing telnyx configuration block (api_key, public_key, messaging_profile_id…)")
	}
	prov, err := NewProvider(&cfg.Account, cfg.Settings.RequestTimeout, p)
	if err != nil {
		return nil, err
	}
	return sms.NewAdapter(sms.Options{ID: ID, Params: p, Settings: cfg.Settings, Rooms: true,
		Accounts: []sms.Account{{Provider: prov, Numbers: cfg.Holdings}}})
}

// WebhookWait is how long after an attempt of unknown outcome a retry
// waits for a webhook naming it before the sender is told the outcome is
// unknown.
const WebhookWait = 2 * time.Minute

// Provider is one Telnyx account.
type Provider struct {
	cfg       *Account
	key       ed25519.PublicKey
	api       *url.URL
	publicURL string
	base      string
	g         *sms.Gateway
	http      *http.Client // API calls: no redirects
	media     *http.Client // media downloads: redirects followed
	now       func() time.Time
}

var (
	_ sms.Provider    = (*Provider)(nil)
	_ sms.GroupSender = (*Provider)(nil)
)

// NewProvider returns the provider for account; requestTimeout bounds
// each API call.
func NewProvider(account *Account, requestTimeout time.Duration, p gateways.Params) (*Provider, error) {
	key, err := parsePublicKey(account.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("public_key: %w", err)
	}
	api, err := url.Parse(strings.TrimRight(account.APIURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("api_url: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = max(32, p.MaxConcurrency)
	return &Provider{
		cfg:       account,
		key:       key,
		api:       api,
		publicURL: strings.TrimRight(p.PublicURL, "/"),
		http: &http.Client{Transport: transport, Timeout: requestTimeout,
			// A redirect would carry the API key elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		media: &http.Client{Transport: transport, Timeout: 2 * time.Minute},
		now:   time.Now,
	}, nil
}

// ID is "telnyx".
func (t *Provider) ID() string { return ID }

// Name is "Telnyx".
func (t *Provider) Name() string { return "Telnyx" }

// Close releases idle connections.
func (t *Provider) Close() { t.http.CloseIdleConnections() }

// Bind records where the webhooks are served and whom they report to.
func (t *Provider) Bind(base string, g *sms.Gateway) { t.base, t.g = base, g }

// MessageRequest is the body of POST /v2/messages and, with To a list,
// of POST /v2/messages/group_mms.
type MessageRequest struct {
	From               string   `json:"from"`
	To                 any      `json:"to"` // a number, or a list for group_mms
	Text               string   `json:"text,omitempty"`
	MediaURLs          []string `json:"media_urls,omitempty"`
	MessagingProfileID string   `json:"messaging_profile_id,omitempty"`
	WebhookURL         string   `json:"webhook_url,omitempty"`
	Type               string   `json:"type,omitempty"` // SMS or MMS
}

// Message is Telnyx's message resource, as far as the gateway reads it.
type Message struct {
	ID        string      `json:"id"`
	Direction string      `json:"direction"`
	Type      string      `json:"type"`
	From      Party       `json:"from"`
	To        []Party     `json:"to"`
	Cc        []Party     `json:"cc"`
	Text      string      `json:"text"`
	Media     []Media     `json:"media"`
	Errors    []ErrorItem `json:"errors"`
}

// Party is a number in a message and, for recipients, its status.
type Party struct {
	PhoneNumber string `json:"phone_number"`
	Status      string `json:"status,omitempty"`
}

// Media is an attachment of a message.
type Media struct {
	URL         string `json:"url"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size,omitempty"`
}

// ErrorItem is one of Telnyx's error objects.
type ErrorItem struct {
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail,omitempty"`
}

// APIError is a Telnyx API call answered with an error status.
type APIError struct {
	Status int
	Errors []ErrorItem
}

func (e *APIError) Error() string {
	if len(e.Errors) == 0 {
		return fmt.Sprintf("telnyx: HTTP %d", e.Status)
	}
	it := e.Errors[0]
	s := fmt.Sprintf("telnyx: HTTP %d: %s %s", e.Status, it.Code, it.Title)
	if it.Detail != "" {
		s += ": " + it.Detail
	}
	return s
}

// Code is the first error's code.
func (e *APIError) Code() string {
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// Send creates one message.
func (t *Provider) Send(ctx context.Context, m sms.Message) (string, error) {
	req := t.request(m)
	req.To = m.To
	return t.create(ctx, "/v2/messages", req)
}

// SendGroup sends one group MMS to every number in m.Group.
func (t *Provider) SendGroup(ctx context.Context, m sms.Message) (string, error) {
	req := t.request(m)
	req.To = m.Group
	return t.create(ctx, "/v2/messages/group_mms", req)
}

// Group MMS limits: Telnyx sends them between US and Canadian numbers, to
// at most MaxGroup recipients besides the sender.
const MaxGroup = 8

// GroupLimits: at most MaxGroup others, each a US or Canadian number
// (+1, NANP).
func (t *Provider) GroupLimits() (int, func(string) string) {
	return MaxGroup, func(n string) string {
		if strings.HasPrefix(n, "+1") && len(n) == 12 {
			return ""
		}
		return "Telnyx sends group texts between US and Canadian numbers only"
	}
}

func (t *Provider) request(m sms.Message) MessageRequest {
	req := MessageRequest{From: m.From, Text: m.Body, MediaURLs: m.Media, MessagingProfileID: t.cfg.MessagingProfileID}
	hook := t.publicURL + t.base + "/webhook"
	if m.Attempt != "" {
		hook += "?attempt=" + url.QueryEscape(m.Attempt)
	}
	req.WebhookURL = hook
	return req
}

// create POSTs a message and returns its id. An answer with an error
// status means Telnyx created nothing (sms.NotCreated), as does a request
// that never left.
func (t *Provider) create(ctx context.Context, path string, body MessageRequest) (string, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.api.String()+path, bytes.NewReader(b))
	if err != nil {
		return "", &gateways.Error{Condition: gateways.InternalServerError, Permanent: true, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+t.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := t.http.Do(req)
	if err != nil {
		if notSent(err) {
			return "", &sms.NotCreated{Err: classify(err)}
		}
		return "", classify(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", classify(err) // the answer was cut: the outcome is unknown
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		var eb struct {
			Errors []ErrorItem `json:"errors"`
		}
		if json.Unmarshal(raw, &eb) == nil {
			ae.Errors = eb.Errors
		}
		return "", &sms.NotCreated{Err: classify(ae)}
	}
	var ok struct {
		Data Message `json:"data"`
	}
	if err := json.Unmarshal(raw, &ok); err != nil || ok.Data.ID == "" {
		// Accepted (2xx) but unreadable: the message exists; without its
		// id no receipt can be matched. Not an error to retry.
		return "", nil
	}
	return ok.Data.ID, nil
}

// notSent: the request never left (no connection could be made).
func notSent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// Telnyx's codes a user can hit, and what they are told. Codes from
// Telnyx's error references: 10xxx for requests, 40xxx for messaging.
var permanent = map[string]struct {
	cond gateways.Condition
	text string
}{
	"40300": {gateways.NotAllowed, "the recipient has opted out (replied STOP) and does not accept messages from this number; they must reply START to receive messages again"},
	"40001": {gateways.NotAllowed, "the number is not routable: a landline or a number that takes no texts"},
	"40003": {gateways.NotAllowed, "the carrier blocks messages from this number as spam; tell the administrator"},
	"40015": {gateways.NotAllowed, "Telnyx's spam filter refused the message"},
	"40012": {gateways.JIDMalformed, "the carrier refused the destination number"},
	"40310": {gateways.JIDMalformed, "the destination is not a number Telnyx can send to"},
	"10002": {gateways.JIDMalformed, "the phone number is invalid"},
	"10016": {gateways.JIDMalformed, "the phone number must be in E.164 form (+ and the country code)"},
	"40305": {gateways.ServiceUnavailable, "your number cannot send through Telnyx (not on the gateway's messaging profile); tell the administrator"},
	"40013": {gateways.ServiceUnavailable, "the carrier refused your number as a sender; tell the administrator"},
}

// classify maps an error to retry or report: 429 and 5xx are Telnyx
// asking to come back later, as are network errors; other 4xx are the
// request's fault and retrying cannot help.
func classify(err error) error {
	var ae *APIError
	if errors.As(err, &ae) {
		code := ae.Code()
		switch {
		case ae.Status == http.StatusTooManyRequests || code == "10011":
			return fmt.Errorf("telnyx rate limit: %w", err)
		case ae.Status >= 500:
			return fmt.Errorf("telnyx server error: %w", err)
		case ae.Status == http.StatusUnauthorized || code == "10009":
			return &gateways.Error{Condition: gateways.ServiceUnavailable, Code: code, Permanent: true, Err: err,
				Text: "the gateway's Telnyx API key was refused; tell the administrator"}
		}
		if p, ok := permanent[code]; ok {
			return &gateways.Error{Condition: p.cond, Code: code, Permanent: true, Text: p.text, Err: err}
		}
		text := "Telnyx refused the message"
		if len(ae.Errors) > 0 {
			text = strings.TrimSpace(ae.Errors[0].Title + ": " + ae.Errors[0].Detail)
			text = strings.TrimSuffix(text, ":")
		}
		return &gateways.Error{Condition: gateways.NotAcceptable, Code: code, Permanent: true, Text: text, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("reaching telnyx: %w", err)
}

// Find settles an attempt of unknown outcome by the webhooks Telnyx sends
// for the message (package documentation): the gateway has already looked
// for one naming the attempt, so none has come. Until WebhookWait after
// the attempt that is a reason to come back; after it the outcome stays
// unknown.
func (t *Provider) Find(_ context.Context, a sms.Attempt) (string, error) {
	if t.now().Sub(a.Started) < WebhookWait {
		return "", fmt.Errorf("no webhook from Telnyx names the earlier attempt yet; asking again later")
	}
	return "", sms.ErrOutcomeUnknown
}

// deliveryErrors explain Telnyx's delivery failure codes to a person.
var deliveryErrors = map[string]string{
	"40001": "the destination is a landline or a number that takes no texts",
	"40002": "the carrier's spam filter held it back (for now)",
	"40003": "the carrier blocks this number as spam",
	"40004": "the recipient's carrier rejected it",
	"40005": "it expired before it could be delivered",
	"40006": "the recipient's carrier is unavailable",
	"40008": "the recipient's carrier did not accept it",
	"40009": "the carrier refused its text",
	"40011": "the carrier's rate limit was exceeded",
	"40012": "the carrier refused the destination number",
	"40014": "it expired in the queue",
	"40015": "Telnyx's spam filter refused it",
	"40300": "the recipient has opted out (replied STOP)",
}

// Explain says what a Telnyx delivery error code means.
func (t *Provider) Explain(code string) string { return deliveryErrors[code] }

// Fetch GETs an inbound media URL; the API key goes to Telnyx's API host
// only.
func (t *Provider) Fetch(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if req.URL.Host == t.api.Host {
		req.Header.Set("Authorization", "Bearer "+t.cfg.APIKey)
	}
	return t.media.Do(req)
}
