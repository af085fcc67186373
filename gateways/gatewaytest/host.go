package gatewaytest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
)

// hostGateway is the gateway name the Host puts in the envelopes it checks.
const hostGateway = "conformance"

// Host is a gateways.Host that records what an adapter hands the gateway.
//
// It refuses what the Runner's host would refuse: a value that does not make
// a valid bus envelope is answered with an error wrapping
// bus.ErrInvalidEnvelope, and a call whose context has ended returns the
// context's error, as a publish to the bus would. Refused calls are not
// recorded. Unlike the bus it does not deduplicate: every accepted Deliver
// is recorded, redeliveries included.
//
// A Host is safe for concurrent use.
type Host struct {
	mu        sync.Mutex
	delivered []gateways.Inbound
	reports   []gateways.Status
	occupants []gateways.Occupant
	reactions []gateways.InboundReaction
	retracts  []gateways.InboundRetraction
	markers   []gateways.InboundMarker
	typing    []gateways.InboundTyping
	recent    map[[2]string][]gateways.RecentMessage
}

var _ gateways.Host = (*Host)(nil)

// NewHost returns an empty Host.
func NewHost() *Host { return &Host{} }

// Deliver records an inbound message.
func (h *Host) Deliver(ctx context.Context, m gateways.Inbound) error {
	env := envelope(bus.KindMessage, m.To, m.From)
	env.Message = &bus.Message{ID: m.ProviderID, Body: m.Body, Thread: m.Thread, Nick: m.Nick, Subject: m.Subject, OriginID: m.OriginID, Replace: m.Replace}
	if m.ReplyTo != "" {
		env.Message.ReplyTo = &bus.ReplyTo{ID: m.ReplyTo, Quote: m.ReplyQuote}
	}
	if m.Groupchat {
		env.Message.Type = bus.TypeGroupchat
	}
	for _, md := range m.Media {
		env.Message.Media = append(env.Message.Media, bus.Media{URL: md.URL, Type: md.Type, Size: md.Size})
	}
	if err := accept(ctx, env); err != nil {
		return err
	}
	m.Media = slices.Clone(m.Media)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered = append(h.delivered, m)
	return nil
}

// Report records a delivery status.
func (h *Host) Report(ctx context.Context, s gateways.Status) error {
	env := envelope(bus.KindStatus, s.User, s.Contact)
	env.Status = &bus.Status{Ref: s.Ref, State: s.State, Code: s.Code, Reason: s.Reason}
	if err := accept(ctx, env); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports = append(h.reports, s)
	return nil
}

// Occupant records a change in a room's occupants.
func (h *Host) Occupant(ctx context.Context, o gateways.Occupant) error {
	env := envelope(bus.KindPresence, o.User, o.Room)
	env.Presence = &bus.Presence{Nick: o.Nick, NewNick: o.NewNick, Self: o.Self, Role: o.Role, Affiliation: o.Affiliation, Status: o.Status}
	if o.Left {
		env.Presence.Type = bus.PresenceUnavailable
	}
	if err := accept(ctx, env); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.occupants = append(h.occupants, o)
	return nil
}

// React records a contact's reactions.
func (h *Host) React(ctx context.Context, x gateways.InboundReaction) error {
	env := envelope(bus.KindReaction, x.User, x.Contact)
	env.Reaction = &bus.Reaction{ID: cmpOr(x.TargetXMPP, x.Target), Emoji: x.Emoji, Nick: x.Nick}
	if err := accept(ctx, env); err != nil {
		return err
	}
	if !x.Full && x.Add == "" && x.Remove == "" {
		return fmt.Errorf("gatewaytest: host: a reaction that is not Full needs Add or Remove")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	x.Emoji = slices.Clone(x.Emoji)
	h.reactions = append(h.reactions, x)
	return nil
}

// Retract records a contact's retraction.
func (h *Host) Retract(ctx context.Context, x gateways.InboundRetraction) error {
	env := envelope(bus.KindRetraction, x.User, x.Contact)
	env.Retraction = &bus.Retraction{ID: x.Target, Nick: x.Nick}
	if err := accept(ctx, env); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.retracts = append(h.retracts, x)
	return nil
}

// Mark records a read marker.
func (h *Host) Mark(ctx context.Context, x gateways.InboundMarker) error {
	env := envelope(bus.KindMarker, x.User, x.Contact)
	env.Marker = &bus.Marker{State: x.State, ID: x.Target, Nick: x.Nick}
	if err := accept(ctx, env); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.markers = append(h.markers, x)
	return nil
}

// Type records a chat state.
func (h *Host) Type(ctx context.Context, x gateways.InboundTyping) error {
	env := envelope(bus.KindTyping, x.User, x.Contact)
	env.Typing = &bus.Typing{State: x.State, Nick: x.Nick}
	if err := accept(ctx, env); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.typing = append(h.typing, x)
	return nil
}

// SetRecent sets what Recent returns for a conversation (user's bare JID
// and contact), as the runner's id map would.
func (h *Host) SetRecent(user, contact string, msgs []gateways.RecentMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.recent == nil {
		h.recent = map[[2]string][]gateways.RecentMessage{}
	}
	h.recent[[2]string{gateways.BareJID(user), contact}] = slices.Clone(msgs)
}

// Recent returns what SetRecent set.
func (h *Host) Recent(ctx context.Context, user, contact string) ([]gateways.RecentMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.recent[[2]string{gateways.BareJID(user), contact}]), nil
}

// Reactions, Retractions, Markers and Typing return what was recorded,
// oldest first.
func (h *Host) Reactions() []gateways.InboundReaction {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reactions)
}

func (h *Host) Retractions() []gateways.InboundRetraction {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.retracts)
}

func (h *Host) Markers() []gateways.InboundMarker {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.markers)
}

func (h *Host) Typing() []gateways.InboundTyping {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.typing)
}

// WaitReaction waits until a recorded reaction satisfies match; see
// WaitDelivered.
func (h *Host) WaitReaction(t testing.TB, timeout time.Duration, match func(gateways.InboundReaction) bool) gateways.InboundReaction {
	t.Helper()
	return waitRecorded(t, "reaction", timeout, h.Reactions, match)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func envelope(kind bus.Kind, user, contact string) *bus.Envelope {
	return &bus.Envelope{Kind: kind, ID: nuid.Next(), Gateway: hostGateway, Time: time.Now().UTC(), User: user, Contact: contact}
}

// accept checks env as the bus would before storing it.
func accept(ctx context.Context, env *bus.Envelope) error {
	if _, err := bus.Encode(env); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gatewaytest: host: %w", err)
	}
	return nil
}

// Delivered returns the recorded inbound messages, oldest first.
func (h *Host) Delivered() []gateways.Inbound {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.delivered)
}

// Reports returns the recorded statuses, oldest first.
func (h *Host) Reports() []gateways.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reports)
}

// Occupants returns the recorded occupant changes, oldest first.
func (h *Host) Occupants() []gateways.Occupant {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.occupants)
}

// calls counts every recorded call.
func (h *Host) calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.delivered) + len(h.reports) + len(h.occupants) + len(h.reactions) + len(h.retracts) + len(h.markers) + len(h.typing)
}

// WaitDelivered waits until a recorded inbound message satisfies match (nil
// matches any) and returns the first that does. On timeout it fails the
// test, listing what was recorded. Call it from the test goroutine.
func (h *Host) WaitDelivered(t testing.TB, timeout time.Duration, match func(gateways.Inbound) bool) gateways.Inbound {
	t.Helper()
	return waitRecorded(t, "inbound message", timeout, h.Delivered, match)
}

// WaitReport waits until a recorded status satisfies match (nil matches
// any); see WaitDelivered.
func (h *Host) WaitReport(t testing.TB, timeout time.Duration, match func(gateways.Status) bool) gateways.Status {
	t.Helper()
	return waitRecorded(t, "status report", timeout, h.Reports, match)
}

// WaitOccupant waits until a recorded occupant change satisfies match (nil
// matches any); see WaitDelivered.
func (h *Host) WaitOccupant(t testing.TB, timeout time.Duration, match func(gateways.Occupant) bool) gateways.Occupant {
	t.Helper()
	return waitRecorded(t, "occupant change", timeout, h.Occupants, match)
}

func waitRecorded[T any](t testing.TB, what string, timeout time.Duration, got func() []T, match func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all := got()
		for _, v := range all {
			if match == nil || match(v) {
				return v
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, v := range all {
				fmt.Fprintf(&b, "\n\t%+v", v)
			}
			if len(all) == 0 {
				b.WriteString(" none")
			}
			t.Fatalf("no matching %s within %v; the adapter handed the host:%s", what, timeout, b.String())
			var zero T
			return zero
		}
		time.Sleep(pollInterval)
	}
}
