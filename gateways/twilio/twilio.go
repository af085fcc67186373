// Package twilio is the SMS/MMS adapter: outbound messages through Twilio's
// REST API (twilio-go), inbound messages and delivery reports through signed
// webhooks, numbers assigned to users in the shared KV store.
//
// # What a phone can carry
//
// SMS is text (and MMS media) and nothing more, so the adapter declares
// (gateways.FeaturesOf) corrections and replies only, and renders both as
// text a phone shows. Reactions, retractions, read markers and typing are
// not declared: a phone has no such thing, and the component answers a
// reaction or a retraction with feature-not-implemented and drops markers
// and chat states.
//
// A correction (XEP-0308) is a new SMS with the corrected text after
// correction_prefix (default "* "), e.g. "* see you at 8"; the phone keeps
// the message corrected as it was.
//
// A reply (XEP-0461) is the user's text under one line quoting the message
// replied to, as the user's client quoted it:
//
//	> See you at 7 at the usual place
//	Make it 8
//
// The quote is put on one line (line breaks and runs of spaces become one
// space) and shortened to at most 60 characters, cut after a word when one
// ends among its last 20, and ended with "…" when cut; in a message that is
// otherwise GSM-7 the cut is marked "..." instead, since "…" alone would
// switch the whole SMS to UCS-2 and more than double its segments. Without
// a quote (a client that sent none, of a message the gateway has no text
// of) the reply is the user's text alone. max_segments counts the SMS as
// sent, quote or correction prefix included.
//
// Inbound, a phone that reacts to a message over SMS (iOS Tapbacks, Android
// "Reacted 👍 to …") sends a text such as Liked “See you at 7”. When such a
// text (package tapback's phrase table) quotes one of the user's recent
// messages to that contact, it reaches the user as a XEP-0444 reaction to
// that message, with the text as fallback; otherwise, and always for an
// MMS, it is an ordinary message. To recognise them the adapter asks the
// gateway to remember the text of each SMS it sends (gateways.Sent.Text),
// as the user wrote it; a reaction to a correction or a reply is
// recognised by the text after correction_prefix or after the quote line.
// When a phone quotes a reply on one line, or only the start of its quote
// line, its reaction arrives as text.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nyaruka/phonenumbers"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"golang.org/x/time/rate"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/numbers"
)

// ID is the adapter's name in configuration.
const ID = "twilio"

func init() {
	gateways.Register(gateways.Info{
		ID:           ID,
		Type:         "sms",
		ContactType:  "sms",
		Name:         "SMS (Twilio)",
		Capabilities: gateways.Capabilities{Media: true, Receipts: true},
		NewConfig:    newConfig,
		New:          New,
	})
}

// Adapter is one Twilio account serving one gateway.
type Adapter struct {
	name      string
	domain    string
	cfg       *Config
	log       *slog.Logger
	publicURL string // http.public_url without trailing slash
	base      string // path prefix of this gateway's routes: /twilio/<name>

	api       *openapi.ApiService
	http      *http.Client // to Twilio's API, rewritten to api_url
	media     *http.Client // media downloads; follows redirects
	apiHost   string       // the only host our credentials are sent to
	validator client.RequestValidator
	reg       *numbers.Registrar
	msgs      jetstream.KeyValue

	mu       sync.RWMutex
	host     gateways.Host
	limiters map[string]*rate.Limiter // per sending number
}

var (
	_ gateways.Adapter           = (*Adapter)(nil)
	_ gateways.HTTPProvider      = (*Adapter)(nil)
	_ gateways.RegistrarProvider = (*Adapter)(nil)
	_ gateways.AddressTranslator = (*Adapter)(nil)
	// The features SMS carries (package documentation). Reactor,
	// Retractor, MarkerSender and Typer must stay unimplemented:
	// TestFeatures holds the adapter to that.
	_ gateways.Editor  = (*Adapter)(nil)
	_ gateways.Replier = (*Adapter)(nil)
)

// New constructs the adapter. It connects to nothing.
func New(p gateways.Params) (gateways.Adapter, error) {
	cfg, ok := p.Config.(*Config)
	if !ok || cfg == nil {
		return nil, errors.New("missing twilio configuration block (account_sid, auth_token…)")
	}
	if p.PublicURL == "" {
		return nil, errors.New("Twilio must reach the gateway's webhooks: set http.listen and http.public_url")
	}
	api, err := url.Parse(cfg.APIURL)
	if err != nil {
		return nil, fmt.Errorf("api_url: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Keep a warm (TLS) connection per concurrent send: one handshake per
	// connection, not per message.
	transport.MaxIdleConnsPerHost = max(32, p.MaxConcurrency)
	var rt http.RoundTripper = transport
	if cfg.APIURL != DefaultAPIURL {
		rt = &rewrite{to: api, next: transport}
	}
	// Media URLs redirect to a CDN on real Twilio. Follow them; net/http
	// drops the Authorization header when a redirect leaves the host.
	mediaClient := &http.Client{Transport: rt, Timeout: 2 * time.Minute}
	hc := &http.Client{
		Transport: rt,
		Timeout:   cfg.RequestTimeout, // twilio-go takes no context
		// Twilio answers API calls directly; a redirect would carry our
		// credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c := &client.Client{Credentials: client.NewCredentials(cfg.AccountSID, cfg.AuthToken), HTTPClient: hc}
	c.SetAccountSid(cfg.AccountSID)
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{
		name:      p.Name,
		domain:    p.Domain,
		cfg:       cfg,
		log:       log,
		publicURL: strings.TrimRight(p.PublicURL, "/"),
		base:      "/" + ID + "/" + p.Name,
		api:       openapi.NewApiServiceWithClient(c),
		http:      hc,
		media:     mediaClient,
		apiHost:   api.Host,
		validator: client.NewRequestValidator(cfg.AuthToken),
		msgs:      p.Messages,
		limiters:  map[string]*rate.Limiter{},
	}
	if p.Registrations != nil {
		a.reg = numbers.New(p.Registrations, p.Name, cfg.Numbers, cfg.Pool)
	}
	return a, nil
}

// Start records the host. Twilio's API is stateless HTTP: there is no
// connection to open.
func (a *Adapter) Start(_ context.Context, h gateways.Host) error {
	if a.reg == nil || a.msgs == nil {
		return errors.New("twilio: adapter constructed without its KV buckets")
	}
	a.mu.Lock()
	a.host = h
	a.mu.Unlock()
	return nil
}

// Stop forgets the host; webhooks answer 503 afterwards.
func (a *Adapter) Stop(context.Context) error {
	a.mu.Lock()
	a.host = nil
	a.mu.Unlock()
	a.http.CloseIdleConnections()
	return nil
}

func (a *Adapter) currentHost() gateways.Host {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.host
}

// Registrar exposes the number assignments to the component.
func (a *Adapter) Registrar() gateways.Registrar {
	if a.reg == nil { // constructed for check-config: no KV, nothing to offer
		return nil
	}
	return a.reg
}

// sentRecord is what a status callback needs to find the XMPP message again.
type sentRecord struct {
	Ref     string `json:"ref"`  // stanza id
	Key     string `json:"key"`  // the Outbound.Key; empty in records from before it was kept
	User    string `json:"user"` // sender full JID
	Contact string `json:"contact"`
	Receipt bool   `json:"receipt"`
}

func (a *Adapter) sidKey(sid string) string { return ID + "." + a.name + ".sid." + sid }

// Send hands one message to Twilio.
func (a *Adapter) Send(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	return a.send(ctx, m, nil, "")
}

// Edit sends a correction: a phone cannot edit a text, so the corrected
// text goes as a new SMS, after correction_prefix. It is a message of its
// own (e.Outbound's ID and Key) for attempts and delivery reports.
func (a *Adapter) Edit(ctx context.Context, e gateways.Edit) (gateways.Sent, error) {
	return a.send(ctx, e.Outbound, func(body string) string {
		if strings.TrimSpace(body) == "" {
			return body // media alone: nothing to mark
		}
		return a.cfg.CorrectionPrefix + body
	}, "the correction prefix")
}

// SendReply sends a reply: the user's text under a one-line quote of the
// message replied to (renderReply).
func (a *Adapter) SendReply(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	quote := ""
	if m.ReplyTo != nil {
		quote = m.ReplyTo.Text
	}
	return a.send(ctx, m, func(body string) string { return renderReply(quote, body) }, "the quote")
}

// send hands one message to Twilio, its text rendered by render (nil: as
// written); added names what render adds, for the refusal of a message
// over max_segments.
func (a *Adapter) send(ctx context.Context, m gateways.Outbound, render func(string) string, added string) (gateways.Sent, error) {
	if a.currentHost() == nil {
		return gateways.Sent{}, gateways.ErrNotConnected
	}
	user := gateways.BareJID(m.From)
	from, err := a.reg.Lookup(ctx, user)
	if err != nil {
		return gateways.Sent{}, err // KV trouble: transient
	}
	if from == "" {
		return gateways.Sent{}, gateways.Reject(gateways.RegistrationRequired,
			"you have no phone number on %s yet: register with the gateway (in your client's service discovery) or ask an administrator to assign one", a.domain)
	}
	if err := checkRecipient(m.To); err != nil {
		return gateways.Sent{}, err
	}
	body := m.Body
	var media []string
	for _, md := range m.Media {
		media = append(media, md.URL)
		// Conversations sends the URL as the body too; it is not text.
		if strings.TrimSpace(body) == md.URL {
			body = ""
		}
	}
	written := body
	if render != nil {
		body = render(body)
	}
	if n, enc := Segments(body); n > a.cfg.MaxSegments {
		what := ""
		if body != written && added != "" {
			what = ", with " + added
		}
		return gateways.Sent{}, gateways.Reject(gateways.NotAcceptable,
			"the message needs %d SMS segments (%s encoding%s) and this gateway sends at most %d; shorten it", n, enc, what, a.cfg.MaxSegments)
	}
	// What the gateway remembers of the message, for the phone's reactions,
	// which quote it (match): the text the user wrote, as the phone got it.
	// Not the correction prefix or the quote line: what is remembered must
	// be the message's own text, no longer than its body.
	sent := gateways.Sent{Text: written}
	earlier, done, err := a.alreadySent(ctx, m, from, body)
	if err != nil {
		return gateways.Sent{}, err
	}
	if done {
		if earlier != "" {
			sent.IDs = []string{earlier}
		}
		return sent, nil
	}
	// mps: queue behind earlier sends from this number rather than drop.
	if err := a.limiter(from).Wait(ctx); err != nil {
		return gateways.Sent{}, fmt.Errorf("waiting for the send rate of %s: %w", from, err)
	}
	if err := a.beginAttempt(ctx, m, from, body); err != nil {
		return gateways.Sent{}, err
	}
	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	params.SetFrom(from)
	if a.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(a.cfg.MessagingServiceSID)
	}
	if body != "" {
		params.SetBody(body)
	}
	if len(media) > 0 {
		params.SetMediaUrl(media)
	}
	params.SetStatusCallback(a.publicURL + a.base + "/status")

	resp, err := a.create(ctx, params)
	sid := ""
	if err == nil && resp.Sid != nil {
		sid = *resp.Sid
	}
	// Settle the record even if ctx ended meanwhile: the message is out.
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	a.endAttempt(settle, m, sid, err)
	cancel()
	if err != nil {
		return gateways.Sent{}, classify(err)
	}
	if sid != "" {
		sent.IDs = []string{sid}
	}
	return sent, nil
}

// maxQuote is the longest quote line of a reply, in characters, without
// its "> ".
const maxQuote = 60

// renderReply puts text under a one-line quote (package documentation):
//
//	> quote, at most maxQuote characters…
//	text
//
// An empty quote leaves text alone; an empty text (a reply that is media
// only) leaves the quote line alone.
func renderReply(quote, text string) string {
	q := strings.Join(strings.Fields(quote), " ")
	if q == "" {
		return text
	}
	ellipsis := "…"
	if _, enc := Segments(q + text); enc == "GSM-7" {
		ellipsis = "..." // "…" is not GSM-7: it would make the SMS UCS-2
	}
	line := "> " + shorten(q, maxQuote, ellipsis)
	if text == "" {
		return line
	}
	return line + "\n" + text
}

// shorten returns s if it has at most limit characters, else a prefix of
// it and ellipsis, limit characters in all: cut after a word when one ends
// within the last 20 characters kept, never inside a character sequence
// (before a combining mark, a variation selector or a skin tone, or
// after a zero-width joiner).
func shorten(s string, limit int, ellipsis string) string {
	rs := []rune(s)
	if len(rs) <= limit {
		return s
	}
	n := limit - len([]rune(ellipsis))
	if sp := lastSpace(rs[:n+1], n-20); sp > 0 {
		n = sp // the space itself may be the one after the last word kept
	}
	for n > 0 && (continues(rs[n]) || rs[n-1] == '\u200d') {
		n--
	}
	return strings.TrimRight(string(rs[:n]), " ") + ellipsis
}

// lastSpace is the index of the last space in rs at or after from, or -1.
func lastSpace(rs []rune, from int) int {
	for i := len(rs) - 1; i >= max(from, 0); i-- {
		if rs[i] == ' ' {
			return i
		}
	}
	return -1
}

// continues: r belongs to the character before it.
func continues(r rune) bool {
	return unicode.Is(unicode.M, r) || r == '\u200d' || r == '\ufe0f' || r == '\u20e3' ||
		(r >= 0x1F3FB && r <= 0x1F3FF) || (r >= 0xE0020 && r <= 0xE007F)
}

// create sends one message (see withContext).
func (a *Adapter) create(ctx context.Context, p *openapi.CreateMessageParams) (*openapi.ApiV2010Message, error) {
	return withContext(ctx, func() (*openapi.ApiV2010Message, error) { return a.api.CreateMessage(p) })
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

func (a *Adapter) limiter(number string) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.limiters[number]
	if !ok {
		l = rate.NewLimiter(rate.Limit(a.cfg.MPS), 1)
		a.limiters[number] = l
	}
	return l
}

// checkRecipient refuses what Twilio cannot send to, with a reason a person
// understands.
func checkRecipient(to string) error {
	switch {
	case e164.MatchString(to):
		return nil
	case isAlphanumericID(to):
		return gateways.Reject(gateways.NotAcceptable,
			"%q is an alphanumeric sender ID: it can send messages but cannot receive replies", to)
	case isShortCode(to):
		return gateways.Reject(gateways.NotAcceptable,
			"%s is a short code: messages to short codes cannot be sent through this gateway", to)
	}
	return gateways.Reject(gateways.JIDMalformed,
		"%q is not a phone number: use E.164 form, a + and the country code, e.g. +15551234567", to)
}

func isShortCode(s string) bool {
	if len(s) < 3 || len(s) > 8 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// isAlphanumericID: 1–11 characters, letters and digits (and spaces), at
// least one letter — the shape carriers allow for sender IDs.
func isAlphanumericID(s string) bool {
	if len(s) == 0 || len(s) > 11 {
		return false
	}
	letter := false
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			letter = true
		case r >= '0' && r <= '9', r == ' ', r == '-', r == '.', r == '&':
		default:
			return false
		}
	}
	return letter
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

// TranslateAddress turns what a person typed into an E.164 number
// (XEP-0100 jabber:iq:gateway).
func (a *Adapter) TranslateAddress(input string) (string, error) {
	in := strings.TrimSpace(input)
	if in == "" {
		return "", gateways.Reject(gateways.JIDMalformed, "type a phone number, e.g. +15551234567")
	}
	region := strings.ToUpper(a.cfg.DefaultRegion)
	if region == "" && !strings.HasPrefix(in, "+") {
		return "", gateways.Reject(gateways.JIDMalformed,
			"%q has no country code and this gateway has no default region: type it with + and the country code", in)
	}
	num, err := phonenumbers.Parse(in, region)
	// "Possible" admits numbers shorter than E.164 allows (+4900), which
	// Send would refuse: refuse them here, before the user adds the contact.
	out := ""
	if err == nil && phonenumbers.IsPossibleNumber(num) {
		out = phonenumbers.Format(num, phonenumbers.E164)
	}
	if !e164.MatchString(out) || !sameDigits(in, out) {
		return "", gateways.Reject(gateways.JIDMalformed,
			"%q is not a phone number this gateway understands; type it with + and the country code, e.g. +44 20 7946 0958", in)
	}
	return out, nil
}

// sameDigits guards against the parser silently dropping or changing digits
// (it turns "+86 12345678901234567" into another, shorter number): the
// digits typed, without leading zeros (trunk prefix), must be the end of the
// E.164 number (a country code added), or the E.164 number the end of what
// was typed (an international prefix such as 011 or 00 in front).
func sameDigits(typed, e164 string) bool {
	var b strings.Builder
	for _, r := range typed {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	in := strings.TrimLeft(b.String(), "0")
	out := strings.TrimPrefix(e164, "+")
	return in != "" && (strings.HasSuffix(out, in) || strings.HasSuffix(in, out))
}

// AddressPrompt is shown by clients offering to add a contact.
func (a *Adapter) AddressPrompt() (string, string) {
	desc := "Enter the phone number of the contact, with its country code (e.g. +44 20 7946 0958)"
	if a.cfg.DefaultRegion != "" {
		desc += "; numbers without one are read as " + strings.ToUpper(a.cfg.DefaultRegion) + " numbers"
	}
	return desc + ".", "Phone number"
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
