package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/internal/tapback"
)

// Received is an inbound SMS or MMS as a provider's webhook reports it.
type Received struct {
	ID   string // the provider's message id: deduplicates redelivery
	From string
	// To are the numbers it was sent to: the user's alone for a direct
	// text; the user's and the others' for a group text.
	To    []string
	Body  string
	Media []ReceivedMedia
	// MMS: the message came as an MMS, even if no media URL is usable.
	MMS bool
}

// ReceivedMedia is one attachment of an inbound MMS, at the provider.
type ReceivedMedia struct {
	URL  string // fetched with Provider.Fetch
	Type string
}

// ErrInactive: the gateway is starting or stopping; the provider should
// come back (503).
var ErrInactive = errors.New("gateway starting or stopping")

// WebhookStatus is the HTTP status a webhook answers when Receive or
// Status returned err: 507 when the store is full, else 503 (the provider
// retries, where it does).
func WebhookStatus(err error) int {
	if bus.IsStorageFull(err) {
		return http.StatusInsufficientStorage
	}
	return http.StatusServiceUnavailable
}

// Receive stores an inbound message on the bus; once it returns nil the
// provider may be told it was taken. A phone's rendering of a reaction to
// one of the user's recent messages is stored as that reaction instead
// (phoneReaction), deduplicated by the same id. A message to a number
// nobody holds is logged and dropped (nil): nobody can read it.
func (g *Gateway) Receive(ctx context.Context, p Provider, r Received) error {
	h := g.currentHost()
	if h == nil {
		return ErrInactive
	}
	if len(r.To) == 0 || r.ID == "" || r.From == "" {
		return errors.New("a message needs an id, a sender and a recipient")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, user, err := g.recipient(ctx, r.To)
	if err != nil {
		g.log.Error("inbound: number lookup failed", "sid", r.ID, "err", err)
		return err
	}
	if user == "" {
		// Nobody can read it. Providers do not retry a 2xx, so this log
		// line is the only trace: make it findable.
		g.log.Warn("inbound message to a number assigned to nobody; not delivered", "sid", r.ID, "to", strings.Join(r.To, ","))
		return nil
	}
	in := gateways.Inbound{ProviderID: r.ID, From: r.From, To: user, Body: r.Body}
	for _, md := range r.Media {
		link, err := g.mediaLink(ctx, p, md.URL, md.Type)
		if err != nil {
			g.log.Error("inbound: could not store media link", "sid", r.ID, "err", err)
			return err
		}
		in.Media = append(in.Media, gateways.Media{URL: link, Type: md.Type})
	}
	if len(r.To) > 1 {
		// A group's room is named by its numbers: one that is not a
		// phone number (a malformed event) cannot make one, and failing
		// half-way would store the invitation and answer an error. It
		// reaches the user as a direct text instead.
		bad := slices.IndexFunc(append([]string{r.From}, r.To...), func(n string) bool { return !E164.MatchString(n) })
		if bad < 0 {
			return g.receiveGroupAll(ctx, h, r, in)
		}
		g.log.Warn("inbound group text with a member that is not a phone number; delivered as a direct text", "sid", r.ID)
	}
	store, what := func() error { return h.Deliver(ctx, in) }, "message"
	// An MMS is never a reaction: a phone renders those as text alone.
	if !r.MMS && len(r.Media) == 0 {
		if x, ok := g.phoneReaction(ctx, h, in); ok {
			store, what = func() error { return h.React(ctx, x) }, "reaction"
		}
	}
	if err := store(); err != nil {
		g.log.Error("inbound: could not store the "+what+" on the bus", "sid", r.ID, "err", err)
		return err
	}
	return nil
}

// recipient finds which of the numbers a message went to is held by a
// user, and who.
func (g *Gateway) recipient(ctx context.Context, to []string) (number, user string, err error) {
	for _, n := range to {
		u, err := g.reg.UserFor(ctx, n)
		if err != nil {
			return "", "", err
		}
		if u != "" {
			return n, u, nil
		}
	}
	return to[0], "", nil
}

// recentTimeout bounds the lookup of the user's recent messages for a
// phone's reaction, leaving the webhook time to store the message.
const recentTimeout = 3 * time.Second

// phoneReaction recognises in as a phone's text rendering of a reaction
// (package tapback) to one of the messages the user sent the contact
// recently, as the gateway remembers them (Sent.Text, Host.Recent). ok is
// false for anything else, which is then an ordinary message: a text that
// is no such rendering, one whose quote matches none of those messages
// (older, or never sent through the gateway), or one that arrived while
// the recent messages could not be read.
func (g *Gateway) phoneReaction(ctx context.Context, h gateways.Host, in gateways.Inbound) (x gateways.InboundReaction, ok bool) {
	r, ok := tapback.Parse(in.Body)
	if !ok {
		return x, false
	}
	rctx, cancel := context.WithTimeout(ctx, recentTimeout)
	recent, err := h.Recent(rctx, in.To, in.From)
	cancel()
	if err != nil {
		g.log.Warn("inbound: a reaction-like text is delivered as a message: the user's recent messages could not be read",
			"sid", in.ProviderID, "err", err)
		return x, false
	}
	texts := make([]string, len(recent))
	for i, m := range recent {
		texts[i] = m.Text
	}
	i := g.match(r, texts)
	if i < 0 || recent[i].ID == "" {
		return x, false
	}
	x = gateways.InboundReaction{
		User: in.To, Contact: in.From, TargetXMPP: recent[i].ID,
		ProviderID: in.ProviderID, Fallback: in.Body,
	}
	// A phone keeps one reaction per person and message: a new one
	// replaces the earlier (a Tapback changed from 👍 to ❤️ arrives as
	// "Loved “…”" alone), and a removal takes away the one it names.
	if r.Removed {
		x.Remove = r.Emoji
	} else {
		x.Full, x.Emoji = true, []string{r.Emoji}
	}
	g.log.Debug("inbound: a phone's reaction", "sid", in.ProviderID, "emoji", r.Emoji, "removed", r.Removed, "target", x.TargetXMPP)
	return x, true
}

// match returns the index in texts (the user's recent messages, newest
// first) of the message a phone's reaction quotes, or -1. The gateway
// remembers what the user wrote (Sent.Text); the phone quotes what it got,
// which for a correction starts with correction_prefix and for a reply
// starts with the quote line. A quote that matches no text as it stands is
// tried without the prefix, and without a first line that starts with ">".
// A phone that quotes a reply without its line break, or only the start of
// its quote line, quotes nothing the gateway can tell from the message
// replied to: that reaction stays text.
func (g *Gateway) match(r tapback.Reaction, texts []string) int {
	if i := tapback.Match(r, texts); i >= 0 {
		return i
	}
	q := strings.TrimSpace(r.Quote)
	var bare []string
	if p := strings.TrimSpace(g.cfg.CorrectionPrefix); p != "" {
		if rest, ok := strings.CutPrefix(q, p); ok {
			bare = append(bare, rest)
		}
	}
	if strings.HasPrefix(q, ">") {
		if _, rest, ok := strings.Cut(q, "\n"); ok {
			bare = append(bare, rest)
		}
	}
	for _, b := range bare {
		r.Quote = b
		if i := tapback.Match(r, texts); i >= 0 {
			return i
		}
	}
	return -1
}

// errNoHost is what reporting finds when the gateway stopped.
var errNoHost = fmt.Errorf("reporting: %w", gateways.ErrNotConnected)

// QuoteIndex reports which of texts (the user's recent messages, newest
// first) a phone's reaction quotes, as Receive matches it; -1 for none.
func (g *Gateway) QuoteIndex(r tapback.Reaction, texts []string) int { return g.match(r, texts) }
