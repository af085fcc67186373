package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nyaruka/phonenumbers"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/numbers"
)

// Account is one provider account and the numbers it holds.
type Account struct {
	Provider Provider
	Numbers  Holdings
}

// Options configure a Gateway.
type Options struct {
	// ID is the adapter's ID (the first path element of its webhooks).
	ID     string
	Params gateways.Params
	// Settings are the gateway-wide SMS settings.
	Settings Settings
	// Accounts are the provider accounts whose numbers the gateway holds.
	// The first is the default: numbers an administrator assigns that no
	// account lists send through it.
	Accounts []Account
	// Rooms: group texts are rooms (NewAdapter returns Rooms). The
	// adapter's Info.Capabilities.Rooms must say the same.
	Rooms bool
}

// NewAdapter returns the gateway as its adapter: a Gateway, or with
// Options.Rooms a Rooms.
func NewAdapter(o Options) (gateways.Adapter, error) {
	g, err := New(o)
	if err != nil {
		return nil, err
	}
	if o.Rooms {
		return &Rooms{g}, nil
	}
	return g, nil
}

// Gateway is an SMS gateway: the adapter Twilio and Telnyx share.
type Gateway struct {
	id        string
	name      string
	domain    string
	cfg       Settings
	log       *slog.Logger
	publicURL string // http.public_url without trailing slash
	mount     string // /<adapter ID>/<name>: where the webhooks are mounted

	accounts []Account
	byNumber map[string]Provider // from the accounts' numbers and pools
	byID     map[string]Provider
	reg      *numbers.Registrar
	regs     jetstream.KeyValue // registrations: groups are kept there
	msgs     jetstream.KeyValue

	mu    sync.RWMutex
	host  gateways.Host
	paces map[string]*pace // per sending number
}

var (
	_ gateways.Adapter           = (*Gateway)(nil)
	_ gateways.HTTPProvider      = (*Gateway)(nil)
	_ gateways.RegistrarProvider = (*Gateway)(nil)
	_ gateways.AddressTranslator = (*Gateway)(nil)
	// The features SMS carries (package documentation). Reactor,
	// Retractor, MarkerSender and Typer must stay unimplemented.
	_ gateways.Editor  = (*Gateway)(nil)
	_ gateways.Replier = (*Gateway)(nil)
)

// New returns a gateway. It connects to nothing.
func New(o Options) (*Gateway, error) {
	if len(o.Accounts) == 0 {
		return nil, errors.New("sms: no provider account")
	}
	if o.Params.PublicURL == "" {
		return nil, errors.New("the SMS provider must reach the gateway's webhooks: set http.listen and http.public_url")
	}
	log := o.Params.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		id:        o.ID,
		name:      o.Params.Name,
		domain:    o.Params.Domain,
		cfg:       o.Settings,
		log:       log,
		publicURL: strings.TrimRight(o.Params.PublicURL, "/"),
		mount:     "/" + o.ID + "/" + o.Params.Name,
		accounts:  o.Accounts,
		byNumber:  map[string]Provider{},
		byID:      map[string]Provider{},
		msgs:      o.Params.Messages,
		regs:      o.Params.Registrations,
		paces:     map[string]*pace{},
	}
	static := map[string]string{}
	var pool []string
	for _, a := range o.Accounts {
		id := a.Provider.ID()
		if _, dup := g.byID[id]; dup {
			return nil, fmt.Errorf("sms: two %s accounts in one gateway", id)
		}
		g.byID[id] = a.Provider
		for n, u := range a.Numbers.Numbers {
			if p, dup := g.byNumber[n]; dup && p != a.Provider {
				return nil, fmt.Errorf("%s is listed at both %s and %s", n, p.ID(), id)
			}
			g.byNumber[n] = a.Provider
			static[n] = u
		}
		for _, n := range a.Numbers.Pool {
			if p, dup := g.byNumber[n]; dup && p != a.Provider {
				return nil, fmt.Errorf("%s is listed at both %s and %s", n, p.ID(), id)
			}
			g.byNumber[n] = a.Provider
			pool = append(pool, n)
		}
	}
	for _, a := range o.Accounts {
		a.Provider.Bind(g.base(a.Provider), g)
	}
	if o.Params.Registrations != nil {
		g.reg = numbers.New(o.Params.Registrations, g.name, static, pool)
	}
	return g, nil
}

// Start records the host. The providers' APIs are stateless HTTP: there
// is no connection to open.
func (g *Gateway) Start(_ context.Context, h gateways.Host) error {
	if g.reg == nil || g.msgs == nil {
		return errors.New("sms: gateway constructed without its KV buckets")
	}
	g.mu.Lock()
	g.host = h
	g.mu.Unlock()
	return nil
}

// Stop forgets the host; webhooks answer 503 afterwards.
func (g *Gateway) Stop(context.Context) error {
	g.mu.Lock()
	g.host = nil
	g.mu.Unlock()
	for _, a := range g.accounts {
		a.Provider.Close()
	}
	return nil
}

func (g *Gateway) currentHost() gateways.Host {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.host
}

// Active reports whether the gateway is started: webhooks answer 503
// when it is not.
func (g *Gateway) Active() bool { return g.currentHost() != nil }

// Log is the gateway's logger, for providers.
func (g *Gateway) Log() *slog.Logger { return g.log }

// PublicURL is http.public_url without a trailing slash.
func (g *Gateway) PublicURL() string { return g.publicURL }

// Registrar exposes the number assignments to the component.
func (g *Gateway) Registrar() gateways.Registrar {
	if g.reg == nil { // constructed for check-config: no KV, nothing to offer
		return nil
	}
	return g.reg
}

// provider is the account number sends and receives through: the one
// that lists it, else the default.
func (g *Gateway) provider(number string) Provider {
	if p, ok := g.byNumber[number]; ok {
		return p
	}
	return g.accounts[0].Provider
}

// ProviderOf names the provider number sends and receives through.
func (g *Gateway) ProviderOf(number string) string { return g.provider(number).ID() }

// key is a KV key of this gateway in p's namespace.
func (g *Gateway) key(p Provider, kind, id string) string {
	return p.ID() + "." + g.name + "." + kind + "." + id
}

// sentRecord is what a delivery report needs to find the XMPP message again.
type sentRecord struct {
	Ref     string `json:"ref"`  // stanza id
	Key     string `json:"key"`  // the Outbound.Key; empty in records from before it was kept
	User    string `json:"user"` // sender full JID
	Contact string `json:"contact"`
	Receipt bool   `json:"receipt"`
}

// Send hands one message to the provider of the sender's number.
func (g *Gateway) Send(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	return g.send(ctx, m, nil, "")
}

// Edit sends a correction: a phone cannot edit a text, so the corrected
// text goes as a new SMS, after correction_prefix. It is a message of its
// own (e.Outbound's ID and Key) for attempts and delivery reports.
func (g *Gateway) Edit(ctx context.Context, e gateways.Edit) (gateways.Sent, error) {
	return g.send(ctx, e.Outbound, func(body string) string {
		if strings.TrimSpace(body) == "" {
			return body // media alone: nothing to mark
		}
		return g.cfg.CorrectionPrefix + body
	}, "the correction prefix")
}

// SendReply sends a reply: the user's text under a one-line quote of the
// message replied to (renderReply).
func (g *Gateway) SendReply(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	quote := ""
	if m.ReplyTo != nil {
		quote = m.ReplyTo.Text
	}
	return g.send(ctx, m, func(body string) string { return renderReply(quote, body) }, "the quote")
}

// send hands one message to the provider, its text rendered by render
// (nil: as written); added names what render adds, for the refusal of a
// message over max_segments.
func (g *Gateway) send(ctx context.Context, m gateways.Outbound, render func(string) string, added string) (gateways.Sent, error) {
	if g.currentHost() == nil {
		return gateways.Sent{}, gateways.ErrNotConnected
	}
	user := gateways.BareJID(m.From)
	from, err := g.reg.Lookup(ctx, user)
	if err != nil {
		return gateways.Sent{}, err // KV trouble: transient
	}
	if from == "" {
		return gateways.Sent{}, gateways.Reject(gateways.RegistrationRequired,
			"you have no phone number on %s yet: register with the gateway (in your client's service discovery) or ask an administrator to assign one", g.domain)
	}
	if !m.Groupchat {
		if err := checkRecipient(m.To); err != nil {
			return gateways.Sent{}, err
		}
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
	if n, enc := Segments(body); n > g.cfg.MaxSegments {
		what := ""
		if body != written && added != "" {
			what = ", with " + added
		}
		return gateways.Sent{}, gateways.Reject(gateways.NotAcceptable,
			"the message needs %d SMS segments (%s encoding%s) and this gateway sends at most %d; shorten it", n, enc, what, g.cfg.MaxSegments)
	}
	if m.Groupchat {
		return g.sendGroup(ctx, m, body, written, media)
	}
	p := g.provider(from)
	// What the gateway remembers of the message, for the phone's reactions,
	// which quote it (match): the text the user wrote, as the phone got it.
	// Not the correction prefix or the quote line: what is remembered must
	// be the message's own text, no longer than its body.
	sent := gateways.Sent{Text: written}
	msg := Message{From: from, To: m.To, Body: body, Media: media}
	id, err := g.deliver(ctx, p, m, msg, p.Send)
	if err != nil {
		return gateways.Sent{}, err
	}
	if id != "" {
		sent.IDs = []string{id}
	}
	return sent, nil
}

// deliver sends msg for m through p with send, once: an earlier attempt
// whose outcome is unknown is settled first (alreadySent), the sending
// number's rate is kept, and the attempt is recorded around the call.
func (g *Gateway) deliver(ctx context.Context, p Provider, m gateways.Outbound, msg Message, send func(context.Context, Message) (string, error)) (string, error) {
	key := g.attemptKey(p, m)
	earlier, done, err := g.alreadySent(ctx, p, key, m, msg)
	if err != nil || done {
		return earlier, err
	}
	// mps: queue behind earlier sends from this number rather than drop.
	pace := g.pace(msg.From)
	if err := pace.takeTurn(ctx); err != nil {
		return "", fmt.Errorf("waiting for the send rate of %s: %w", msg.From, err)
	}
	msg.Attempt = attemptToken(key)
	if err := g.beginAttempt(ctx, key, m, msg); err != nil {
		return "", err
	}
	if _, err := pace.request(ctx); err != nil {
		// Not sent: the attempt on record goes, as for a request the
		// provider refused before creating anything.
		err = fmt.Errorf("waiting for the send rate of %s: %w", msg.From, err)
		settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		g.endAttempt(settle, p, key, m, "", &NotCreated{Err: err})
		cancel()
		return "", err
	}
	id, err := send(ctx, msg)
	// Settle the record even if ctx ended meanwhile: the message is out.
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	g.endAttempt(settle, p, key, m, id, err)
	cancel()
	return id, err
}

func (g *Gateway) pace(number string) *pace {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.paces[number]
	if !ok {
		p = newPace(g.cfg.MPS)
		g.paces[number] = p
	}
	return p
}

// TranslateAddress turns what a person typed into an E.164 number
// (XEP-0100 jabber:iq:gateway).
func (g *Gateway) TranslateAddress(input string) (string, error) {
	return translateAddress(g.cfg.DefaultRegion, input)
}

func translateAddress(defaultRegion, input string) (string, error) {
	in := strings.TrimSpace(input)
	if in == "" {
		return "", gateways.Reject(gateways.JIDMalformed, "type a phone number, e.g. +15551234567")
	}
	region := strings.ToUpper(defaultRegion)
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
	if !E164.MatchString(out) || !sameDigits(in, out) {
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
func (g *Gateway) AddressPrompt() (string, string) {
	desc := "Enter the phone number of the contact, with its country code (e.g. +44 20 7946 0958)"
	if g.cfg.DefaultRegion != "" {
		desc += "; numbers without one are read as " + strings.ToUpper(g.cfg.DefaultRegion) + " numbers"
	}
	return desc + ".", "Phone number"
}

// checkRecipient refuses what cannot be sent to, with a reason a person
// understands.
func checkRecipient(to string) error {
	switch {
	case E164.MatchString(to):
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
