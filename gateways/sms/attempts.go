package sms

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/gateways"
)

// An attempt record is written before each send call and removed when the
// provider refuses the message (nothing was created). A redelivered
// message that still has one had an outcome unknown to this process — a
// timeout after the request left, a crash mid-call, or a crash after the
// provider accepted it but before the bus heard — so the provider is asked
// (Provider.Find) before the message is sent again. Accepted messages are
// not written back into the record (one fsync fewer per message on the
// common path); the id record written for delivery reports lets the lookup
// recognise the message as this stanza's. A provider callback carrying the
// attempt's token (Settle) writes the id into the record. Records of older
// versions may still carry the id: that is used.
type attempt struct {
	Started time.Time `json:"started"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Body    string    `json:"body"`
	SID     string    `json:"sid,omitempty"`
	// The message's own, for Settle to write its id record.
	Ref     string `json:"ref,omitempty"`
	Key     string `json:"key,omitempty"`
	User    string `json:"user,omitempty"`
	Receipt bool   `json:"receipt,omitempty"`
}

// settleMargin is added to request_timeout before an attempt of unknown
// outcome is looked up at the provider.
const settleMargin = 2 * time.Second

// attemptKey names the attempt record of m: by its bus key, so that a
// client reusing a stanza id later (some count from 1 each session) is not
// taken for a redelivery; by sender and stanza id when there is none.
func (g *Gateway) attemptKey(p Provider, m gateways.Outbound) string {
	id := m.From + "\x00" + m.ID
	if m.Key != "" {
		id = "key\x00" + m.Key
	}
	sum := sha256.Sum256([]byte(id))
	return g.key(p, "att", hex.EncodeToString(sum[:16]))
}

// attemptToken is the part of an attempt key that names the attempt.
func attemptToken(key string) string { return key[strings.LastIndexByte(key, '.')+1:] }

// alreadySent reports whether an earlier attempt of m reached the
// provider, and records its id if so, returning it when known. The record
// is consulted on every attempt, not only when the bus counts a
// redelivery: a disk fault can lose the consumer's state (its
// acknowledgements and delivery counts) while the attempt record, written
// before the call, survived — the message then comes back as a "first"
// delivery although the provider already has it. A missing record costs
// one KV read.
func (g *Gateway) alreadySent(ctx context.Context, p Provider, key string, m gateways.Outbound, msg Message) (id string, sent bool, err error) {
	rec, ok, err := g.readAttempt(ctx, key)
	if err != nil || !ok {
		return "", false, err
	}
	if rec.SID != "" {
		g.log.Info("redelivered message was already accepted by "+p.Name()+"; not sending it again", "id", m.ID, "sid", rec.SID)
		return rec.SID, true, nil
	}
	// The earlier request may still be in flight at the provider (our
	// client gave up, the server did not): wait until it must have
	// finished, else the lookup below could miss a message that is about
	// to exist.
	if wait := time.Until(rec.Started.Add(g.cfg.RequestTimeout + settleMargin)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", false, fmt.Errorf("waiting for an earlier attempt to settle: %w", ctx.Err())
		}
		// A callback may have settled it meanwhile.
		if again, ok, err := g.readAttempt(ctx, key); err == nil && ok && again.SID != "" {
			return again.SID, true, nil
		}
	}
	id, err = p.Find(ctx, Attempt{
		Started: rec.Started, From: msg.From, To: msg.To, Body: msg.Body, Token: attemptToken(key),
		Other: func(ctx context.Context, id string) bool { return g.isOther(ctx, p, id, m) },
	})
	if errors.Is(err, ErrOutcomeUnknown) {
		return "", false, &gateways.Error{Condition: gateways.RemoteServerTimeout, Permanent: true, Err: err,
			Text: fmt.Sprintf("it is not known whether this message reached %s: %s did not answer in time and cannot say so now, so it may still be delivered; it is not sent again, to spare the recipient a second copy: ask them, or send it again yourself", msg.To, p.Name())}
	}
	if err != nil {
		return "", false, fmt.Errorf("asking %s whether an earlier attempt was sent: %w", p.Name(), err)
	}
	if id == "" {
		return "", false, nil
	}
	g.log.Info("an earlier attempt with an unknown outcome did reach "+p.Name()+"; not sending again", "id", m.ID, "sid", id)
	g.recordSent(ctx, p, sentRecord{Ref: m.ID, Key: m.Key, User: m.From, Contact: m.To, Receipt: m.Receipt}, id)
	return id, true, nil
}

func (g *Gateway) readAttempt(ctx context.Context, key string) (attempt, bool, error) {
	var rec attempt
	e, err := g.msgs.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("reading the attempt record: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, false, nil // unreadable: behave as if there were none
	}
	return rec, true, nil
}

// isOther: the provider's message id is recorded as another stanza's.
func (g *Gateway) isOther(ctx context.Context, p Provider, id string, m gateways.Outbound) bool {
	e, err := g.msgs.Get(ctx, g.key(p, "sid", id))
	if err != nil {
		return false
	}
	var sr sentRecord
	return json.Unmarshal(e.Value(), &sr) == nil && (sr.Ref != m.ID || sr.User != m.From)
}

// beginAttempt records that a send call is about to be made.
func (g *Gateway) beginAttempt(ctx context.Context, key string, m gateways.Outbound, msg Message) error {
	to := msg.To
	if to == "" {
		to = m.To // a group: the room
	}
	rec, _ := json.Marshal(attempt{Started: time.Now().UTC(), From: msg.From, To: to, Body: msg.Body,
		Ref: m.ID, Key: m.Key, User: m.From, Receipt: m.Receipt})
	if _, err := g.msgs.Put(ctx, key, rec); err != nil {
		return fmt.Errorf("recording the attempt: %w", err)
	}
	return nil
}

// endAttempt settles the record after the provider answered: the id is
// recorded when it accepted; the attempt is removed when it refused
// (nothing was created, so a retry needs no check). Otherwise the record
// stays for the next attempt to resolve.
func (g *Gateway) endAttempt(ctx context.Context, p Provider, key string, m gateways.Outbound, id string, err error) {
	var nc *NotCreated
	switch {
	case id != "":
		g.recordSent(ctx, p, sentRecord{Ref: m.ID, Key: m.Key, User: m.From, Contact: m.To, Receipt: m.Receipt}, id)
	case errors.As(err, &nc):
		_ = g.msgs.Delete(ctx, key)
	}
}

// recordSent maps the provider's id back to the stanza, for delivery
// reports and for recognising the message after a crash, then applies a
// delivery report that came before the record (see keepEarly). A failure
// here costs a receipt, not a message: log it.
func (g *Gateway) recordSent(ctx context.Context, p Provider, sr sentRecord, id string) {
	rec, _ := json.Marshal(sr)
	if _, err := g.msgs.Put(ctx, g.key(p, "sid", id), rec); err != nil {
		g.log.Warn("could not record sent message; its delivery report is kept but not applied", "sid", id, "err", err)
		return
	}
	if err := g.applyEarly(ctx, p, id, sr); err != nil {
		g.log.Warn("a delivery report that came before the message's record could not be applied", "sid", id, "id", sr.Ref, "err", err)
	}
}

// settle ties a provider callback that carries an attempt's token to that
// attempt: the attempt reached the provider as id. A later delivery of the
// message then finds it sent (alreadySent) without asking the provider.
func (g *Gateway) settle(ctx context.Context, p Provider, s StatusReport) error {
	token, id := s.Attempt, s.ID
	if token == "" || strings.ContainsAny(token, ".*> ") {
		return nil
	}
	key := g.key(p, "att", token)
	e, err := g.msgs.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // settled and removed, or not ours
	}
	if err != nil {
		return err
	}
	var rec attempt
	if json.Unmarshal(e.Value(), &rec) != nil || rec.SID != "" {
		return nil
	}
	if s.From != "" && (s.From != rec.From || s.Text != rec.Body) {
		g.log.Warn("a delivery report names an attempt of another message; not taken as its outcome", "sid", id, "attempt", token)
		return nil
	}
	rec.SID = id
	v, _ := json.Marshal(rec)
	if _, err := g.msgs.Update(ctx, key, v, e.Revision()); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	if rec.Ref != "" {
		if _, err := g.msgs.Get(ctx, g.key(p, "sid", id)); errors.Is(err, jetstream.ErrKeyNotFound) {
			g.recordSent(ctx, p, sentRecord{Ref: rec.Ref, Key: rec.Key, User: rec.User, Contact: rec.To, Receipt: rec.Receipt}, id)
		}
	}
	return nil
}
