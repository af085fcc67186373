// Package sandbox is a simulated phone network for demos and tests: every
// E.164 number exists and answers each message with "echo: <body>".
//
// It is the smallest complete adapter and the model for writing one.
package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"sync"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
)

func init() {
	gateways.Register(gateways.Info{
		ID:           "sandbox",
		Type:         "sms",
		ContactType:  "sms",
		Name:         "Sandbox phone network",
		Capabilities: gateways.Capabilities{Media: true, Receipts: true},
		New:          New,
	})
}

// e164 is "+", a country code that does not start with 0, up to 15 digits.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Adapter is the sandbox network.
type Adapter struct {
	mu   sync.RWMutex
	host gateways.Host // nil until Start, nil again after Stop
}

var _ gateways.Adapter = (*Adapter)(nil)

// New constructs an adapter; it takes no configuration.
func New(gateways.Params) (gateways.Adapter, error) { return &Adapter{}, nil }

// Start has nothing to connect to.
func (a *Adapter) Start(_ context.Context, h gateways.Host) error {
	a.mu.Lock()
	a.host = h
	a.mu.Unlock()
	return nil
}

// The sandbox declares every feature (features.go in package gateways),
// and its contacts behave like a modern network's: each echoes what it
// is sent. Network ids: the user's message is "SBM<h>", its echo "SB<h>",
// h a hash of the sender and stanza id (stable across retries).

var (
	_ gateways.Editor       = (*Adapter)(nil)
	_ gateways.Replier      = (*Adapter)(nil)
	_ gateways.Reactor      = (*Adapter)(nil)
	_ gateways.Retractor    = (*Adapter)(nil)
	_ gateways.MarkerSender = (*Adapter)(nil)
	_ gateways.Typer        = (*Adapter)(nil)
)

func (a *Adapter) currentHost() (gateways.Host, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.host == nil {
		return nil, gateways.ErrNotConnected
	}
	return a.host, nil
}

func checkNumber(to string) error {
	if !e164.MatchString(to) {
		return gateways.Reject(gateways.JIDMalformed,
			"%q is not a phone number: use E.164 form, a + and the country code, e.g. +15551234567", to)
	}
	return nil
}

// Send answers from the contact with "echo: <body>", and reports delivery when
// the sender asked for a receipt.
func (a *Adapter) Send(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	return a.echo(ctx, m, "")
}

// SendReply answers with an echo that replies to the same message.
func (a *Adapter) SendReply(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	return a.echo(ctx, m, "")
}

// Edit answers a correction with a correction of the echo.
func (a *Adapter) Edit(ctx context.Context, e gateways.Edit) (gateways.Sent, error) {
	if len(e.Target.NetworkIDs) == 0 {
		return gateways.Sent{}, gateways.Reject(gateways.ItemNotFound, "the sandbox has no record of that message")
	}
	echo, ok := echoOf(e.Target)
	if !ok {
		return gateways.Sent{}, gateways.Reject(gateways.NotAcceptable, "only your own messages can be corrected")
	}
	return a.echo(ctx, e.Outbound, echo)
}

// echo sends m and answers it; replaces, when set, is the echo the answer
// corrects.
func (a *Adapter) echo(ctx context.Context, m gateways.Outbound, replaces string) (gateways.Sent, error) {
	h, err := a.currentHost()
	if err != nil {
		return gateways.Sent{}, err
	}
	if err := checkNumber(m.To); err != nil {
		return gateways.Sent{}, err
	}
	if m.Receipt {
		if err := h.Report(ctx, gateways.Status{Ref: m.ID, Key: m.Key, User: m.From, Contact: m.To, State: bus.StateDelivered}); err != nil {
			return gateways.Sent{}, err
		}
	}
	reply := gateways.Inbound{
		ProviderID: replyID(m),
		From:       m.To,
		To:         gateways.BareJID(m.From),
		Body:       "echo: " + m.Body,
		Media:      m.Media,
		Thread:     m.Thread,
		Replace:    replaces,
	}
	if m.ReplyTo != nil && len(m.ReplyTo.NetworkIDs) > 0 {
		reply.ReplyTo, reply.ReplyQuote = m.ReplyTo.NetworkIDs[0], m.ReplyTo.Text
	}
	if err := h.Deliver(ctx, reply); err != nil {
		return gateways.Sent{}, err
	}
	return gateways.Sent{IDs: []string{sentID(m)}}, nil
}

// React answers with the same reaction set on the same message.
func (a *Adapter) React(ctx context.Context, r gateways.Reaction) error {
	h, err := a.currentHost()
	if err != nil {
		return err
	}
	if err := checkNumber(r.To); err != nil {
		return err
	}
	if len(r.Target.NetworkIDs) == 0 {
		return gateways.Reject(gateways.ItemNotFound, "the sandbox does not know that message")
	}
	return h.React(ctx, gateways.InboundReaction{
		User: gateways.BareJID(r.From), Contact: r.To, Target: r.Target.NetworkIDs[0],
		Full: true, Emoji: r.Emoji, ProviderID: "SBR" + hash(r.Key),
	})
}

// Retract answers by retracting the echo of the retracted message.
func (a *Adapter) Retract(ctx context.Context, r gateways.Retraction) error {
	h, err := a.currentHost()
	if err != nil {
		return err
	}
	echo, ok := echoOf(r.Target)
	if !ok {
		return gateways.Reject(gateways.NotAcceptable, "only your own messages can be retracted")
	}
	return h.Retract(ctx, gateways.InboundRetraction{
		User: gateways.BareJID(r.From), Contact: r.To, Target: echo, ProviderID: "SBX" + hash(r.Key),
	})
}

// Type answers "composing" with "composing" and then "active", as a
// contact who typed a quick answer would.
func (a *Adapter) Type(ctx context.Context, t gateways.Typing) error {
	if t.State != bus.TypingComposing {
		return nil
	}
	h, err := a.currentHost()
	if err != nil {
		return err
	}
	for _, state := range []string{bus.TypingComposing, bus.TypingActive} {
		if err := h.Type(ctx, gateways.InboundTyping{User: gateways.BareJID(t.From), Contact: t.To, State: state}); err != nil {
			return err
		}
	}
	return nil
}

// Mark answers the user having seen an echo with the contact having seen
// the user's message.
func (a *Adapter) Mark(ctx context.Context, m gateways.Marker) error {
	if len(m.Target.NetworkIDs) == 0 {
		return nil
	}
	sent, ok := strings.CutPrefix(m.Target.NetworkIDs[0], echoPrefix)
	if !ok || strings.HasPrefix(m.Target.NetworkIDs[0], sentPrefix) {
		return nil // not an echo
	}
	h, err := a.currentHost()
	if err != nil {
		return err
	}
	return h.Mark(ctx, gateways.InboundMarker{User: gateways.BareJID(m.From), Contact: m.To, State: m.State, Target: sentPrefix + sent})
}

const (
	echoPrefix = "SB"
	sentPrefix = "SBM"
)

// echoOf is the echo's network id of the user's message target.
func echoOf(target gateways.Ref) (string, bool) {
	if len(target.NetworkIDs) == 0 {
		return "", false
	}
	h, ok := strings.CutPrefix(target.NetworkIDs[0], sentPrefix)
	if !ok {
		return "", false
	}
	return echoPrefix + h, true
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// replyID is stable across retries of the same message, so a retry after a
// failure that did store the reply is deduplicated by the bus.
func replyID(m gateways.Outbound) string {
	return echoPrefix + hash(m.From+"\x00"+m.ID)
}

// sentID is the network's id of the user's message m.
func sentID(m gateways.Outbound) string {
	return sentPrefix + hash(m.From+"\x00"+m.ID)
}

// Stop forgets the host.
func (a *Adapter) Stop(context.Context) error {
	a.mu.Lock()
	a.host = nil
	a.mu.Unlock()
	return nil
}
