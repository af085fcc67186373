package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
)

// StatusReport is what a provider's delivery report says of a message the
// gateway sent.
type StatusReport struct {
	ID string // the provider's message id
	// State is bus.StateDelivered or bus.StateFailed; "" when the report
	// only says the message exists (Telnyx's message.sent), which settles
	// an attempt of unknown outcome (Attempt) and reports nothing.
	State string
	Code  string // the provider's error code, for a failure
	// Attempt is the token the send carried (Message.Attempt), when the
	// provider hands it back.
	Attempt string
	// Recipient, for a group text, is the number the report is about.
	Recipient string
	// From and Text, when the report carries them, are the message's
	// sender and text: an Attempt is settled only by a report of the
	// message it sent (a token in a URL is not covered by a provider's
	// signature; a genuine report replayed under another attempt's token
	// must not settle that one).
	From, Text string
}

// Status applies a delivery report: a receipt for a delivered message
// whose sender asked for one, an error for a failed one. A report that
// comes before the message's id record is kept until the record is
// written. An error means it was not kept: the webhook should answer so
// that the provider retries (WebhookStatus).
func (g *Gateway) Status(ctx context.Context, p Provider, s StatusReport) error {
	if g.currentHost() == nil {
		return ErrInactive
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if s.Attempt != "" {
		if err := g.settle(ctx, p, s); err != nil {
			return fmt.Errorf("settling the attempt: %w", err)
		}
	}
	if s.State != bus.StateDelivered && s.State != bus.StateFailed {
		return nil
	}
	e, err := g.msgs.Get(ctx, g.key(p, "sid", s.ID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Providers do not retry a report that was answered: answering
		// without keeping it would lose it for good.
		if err := g.keepEarly(ctx, p, s.ID, earlyStatus{State: s.State, Code: s.Code, At: time.Now().UTC()}); err != nil {
			g.log.Error("could not keep a delivery report that came before its message's record", "sid", s.ID, "status", s.State, "err", err)
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	var rec sentRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		g.log.Error("corrupt sent-message record", "sid", s.ID, "err", err)
		return nil
	}
	return g.report(ctx, p, rec, s.State, s.Code, s.Recipient)
}

// report hands the host the receipt or failure st (bus.StateDelivered or
// bus.StateFailed, with the provider's error code) of the message rec
// describes.
func (g *Gateway) report(ctx context.Context, p Provider, rec sentRecord, st, code, recipient string) error {
	if st == bus.StateDelivered && !rec.Receipt {
		return nil
	}
	h := g.currentHost()
	if h == nil {
		return errNoHost
	}
	report := gateways.Status{Ref: rec.Ref, Key: rec.Key, User: rec.User, Contact: rec.Contact, State: st}
	if st == bus.StateFailed {
		report.Code = code
		report.Reason = "the message was not delivered"
		if recipient != "" && recipient != rec.Contact {
			report.Reason += " to " + recipient // one member of a group
		}
		if why := p.Explain(code); why != "" {
			report.Reason += ": " + why
		}
	}
	return h.Report(ctx, report)
}

// earlyStatus is a delivery report that came before its message's id
// record: a provider can call back before the send call's answer reached
// us and recordSent wrote the record, and the write may have failed. It is
// kept in the messages bucket (7 days) until recordSent applies it.
type earlyStatus struct {
	State string    `json:"state"` // bus.StateDelivered or bus.StateFailed
	Code  string    `json:"code,omitempty"`
	At    time.Time `json:"at"`
}

// earlyGrace is how long a kept report may wait for its record before a
// warning says so; the record normally follows within a second.
const earlyGrace = time.Minute

// keepEarly stores a report whose id record is missing, then looks for
// the record once more: recordSent may have written it (and found no
// report to apply) since the handler looked.
func (g *Gateway) keepEarly(ctx context.Context, p Provider, id string, s earlyStatus) error {
	v, _ := json.Marshal(s)
	if _, err := g.msgs.Put(ctx, g.key(p, "early", id), v); err != nil {
		return err
	}
	e, err := g.msgs.Get(ctx, g.key(p, "sid", id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		g.log.Debug("delivery report came before its message's record; kept until the record is written", "sid", id, "status", s.State)
		time.AfterFunc(earlyGrace, func() { g.warnIfOrphaned(p, id) })
		return nil
	case err != nil:
		return nil // kept; recordSent applies it
	}
	var rec sentRecord
	if json.Unmarshal(e.Value(), &rec) != nil {
		return nil
	}
	return g.applyEarly(ctx, p, id, rec)
}

// applyEarly reports a status kept by keepEarly for id, if there is one,
// and removes it. Both recordSent and the status handler may apply the
// same report in a race; the runner drops the repeat (it deduplicates
// reports by message key and state).
func (g *Gateway) applyEarly(ctx context.Context, p Provider, id string, rec sentRecord) error {
	e, err := g.msgs.Get(ctx, g.key(p, "early", id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading an early delivery report: %w", err)
	}
	var s earlyStatus
	if err := json.Unmarshal(e.Value(), &s); err == nil {
		if err := g.report(ctx, p, rec, s.State, s.Code, ""); err != nil {
			return fmt.Errorf("reporting an early delivery report: %w", err)
		}
	}
	_ = g.msgs.Delete(ctx, g.key(p, "early", id), jetstream.LastRevision(e.Revision()))
	return nil
}

// warnIfOrphaned says so when a kept report still has no record: its
// message's record was lost (or the id is not ours), and the sender will
// not hear of it.
func (g *Gateway) warnIfOrphaned(p Provider, id string) {
	if g.currentHost() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := g.msgs.Get(ctx, g.key(p, "early", id))
	if err != nil {
		return // applied, or nothing to say
	}
	if _, err := g.msgs.Get(ctx, g.key(p, "sid", id)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		return
	}
	var s earlyStatus
	_ = json.Unmarshal(e.Value(), &s)
	g.log.Warn("delivery report for a message with no record; kept for 7 days in case the record appears, the sender has not been told",
		"sid", id, "status", s.State, "code", s.Code, "since", s.At)
}
