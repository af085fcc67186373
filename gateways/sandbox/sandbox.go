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

// Send answers from the contact with "echo: <body>", and reports delivery when
// the sender asked for a receipt.
func (a *Adapter) Send(ctx context.Context, m gateways.Outbound) error {
	a.mu.RLock()
	h := a.host
	a.mu.RUnlock()
	if h == nil {
		return gateways.ErrNotConnected
	}
	if !e164.MatchString(m.To) {
		return gateways.Reject(gateways.JIDMalformed,
			"%q is not a phone number: use E.164 form, a + and the country code, e.g. +15551234567", m.To)
	}
	if m.Receipt {
		if err := h.Report(ctx, gateways.Status{Ref: m.ID, Key: m.Key, User: m.From, Contact: m.To, State: bus.StateDelivered}); err != nil {
			return err
		}
	}
	reply := gateways.Inbound{
		ProviderID: replyID(m),
		From:       m.To,
		To:         gateways.BareJID(m.From),
		Body:       "echo: " + m.Body,
		Media:      m.Media,
		Thread:     m.Thread,
	}
	return h.Deliver(ctx, reply)
}

// replyID is stable across retries of the same message, so a retry after a
// failure that did store the reply is deduplicated by the bus.
func replyID(m gateways.Outbound) string {
	sum := sha256.Sum256([]byte(m.From + "\x00" + m.ID))
	return "SB" + hex.EncodeToString(sum[:16])
}

// Stop forgets the host.
func (a *Adapter) Stop(context.Context) error {
	a.mu.Lock()
	a.host = nil
	a.mu.Unlock()
	return nil
}
