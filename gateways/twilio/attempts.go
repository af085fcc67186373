package twilio

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/xmppgw/xmppgw/gateways"
)

// An attempt record is written before each create call and removed when
// Twilio refuses the message (nothing was created). A redelivered message
// that still has one had an outcome unknown to this process — a timeout
// after the request left, a crash mid-call, or a crash after Twilio accepted
// it but before the bus heard — so Twilio is asked before the message is
// sent again. Accepted messages are not written back into the record (one
// fsync fewer per message on the common path); the SID record written for
// delivery reports lets the lookup recognise the message as this stanza's.
// Records of older versions may still carry the SID: that is used.
type attempt struct {
	Started time.Time `json:"started"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Body    string    `json:"body"`
	SID     string    `json:"sid,omitempty"`
}

// clockSkew is how far Twilio's clock and ours may disagree when matching a
// message Twilio lists to an attempt of ours.
const clockSkew = 30 * time.Second

// settleMargin is added to request_timeout before an attempt of unknown
// outcome is looked up at Twilio.
const settleMargin = 2 * time.Second

// A lookup reads the conversation's messages at Twilio newest first, a
// page at a time, until it reaches messages created before the attempt
// began (most lookups end on the first page), and at most maxLookupPages.
const (
	lookupPageSize = 200
	maxLookupPages = 25
)

// attemptKey names the attempt record of m: by its bus key, so that a
// client reusing a stanza id later (some count from 1 each session) is not
// taken for a redelivery; by sender and stanza id when there is none.
func (a *Adapter) attemptKey(m gateways.Outbound) string {
	id := m.From + "\x00" + m.ID
	if m.Key != "" {
		id = "key\x00" + m.Key
	}
	sum := sha256.Sum256([]byte(id))
	return ID + "." + a.name + ".att." + hex.EncodeToString(sum[:16])
}

// alreadySent reports whether an earlier attempt of m reached Twilio, and
// records its SID if so, returning it when known. The record is consulted
// on every attempt, not only when the bus counts a redelivery: a disk fault
// can lose the consumer's state (its acknowledgements and delivery counts)
// while the attempt record, written before the call, survived — the message
// then comes back as a "first" delivery although Twilio already has it. A
// missing record costs one KV read.
func (a *Adapter) alreadySent(ctx context.Context, m gateways.Outbound, from, body string) (sid string, sent bool, err error) {
	e, err := a.msgs.Get(ctx, a.attemptKey(m))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading the attempt record: %w", err)
	}
	var rec attempt
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return "", false, nil // unreadable: behave as if there were none
	}
	if rec.SID != "" {
		a.log.Info("redelivered message was already accepted by Twilio; not sending it again", "id", m.ID, "sid", rec.SID)
		return rec.SID, true, nil
	}
	// The earlier request may still be in flight at Twilio (our client gave
	// up, the server did not): wait until it must have finished, else the
	// list below could miss a message that is about to exist.
	if wait := time.Until(rec.Started.Add(a.cfg.RequestTimeout + settleMargin)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", false, fmt.Errorf("waiting for an earlier attempt to settle: %w", ctx.Err())
		}
	}
	sid, err = a.findSent(ctx, m, rec, from, body)
	if err != nil {
		return "", false, err
	}
	if sid == "" {
		return "", false, nil
	}
	a.log.Info("an earlier attempt with an unknown outcome did reach Twilio; not sending again", "id", m.ID, "sid", sid)
	a.recordSent(ctx, m, sid)
	return sid, true, nil
}

// findSent looks for the message at Twilio: same From and To, same body,
// created no earlier than the attempt began, and not known to be another
// stanza's message.
//
// The list is not filtered by DateSent: Twilio leaves date_sent null while
// a message is queued (behind a number's send rate, for minutes under
// load), and a DateSent filter leaves such a message out — the one most
// likely to be sought. The list comes newest first by date_created, so the
// pages are read until one reaches back before the attempt.
func (a *Adapter) findSent(ctx context.Context, m gateways.Outbound, rec attempt, from, body string) (string, error) {
	since := rec.Started.Add(-clockSkew)
	p := &openapi.ListMessageParams{}
	p.SetFrom(from)
	p.SetTo(m.To)
	p.SetPageSize(lookupPageSize)
	token, number := "", ""
	for range maxLookupPages {
		page, err := withContext(ctx, func() (*openapi.ListMessageResponse, error) { return a.api.PageMessage(p, token, number) })
		if err != nil {
			return "", fmt.Errorf("asking Twilio whether an earlier attempt was sent: %w", err)
		}
		older := false
		for _, msg := range page.Messages {
			if msg.DateCreated == nil {
				continue
			}
			created, err := time.Parse(time.RFC1123Z, *msg.DateCreated)
			if err != nil {
				continue
			}
			if created.Before(since) {
				older = true
				continue
			}
			if msg.Sid == nil || msg.Body == nil || *msg.Body != body {
				continue
			}
			if other, err := a.msgs.Get(ctx, a.sidKey(*msg.Sid)); err == nil {
				var sr sentRecord
				if json.Unmarshal(other.Value(), &sr) == nil && (sr.Ref != m.ID || sr.User != m.From) {
					continue // an identical text of another message
				}
			}
			return *msg.Sid, nil
		}
		if older || page.NextPageUri == nil || *page.NextPageUri == "" {
			return "", nil
		}
		next, err := url.Parse(*page.NextPageUri)
		if err != nil {
			return "", fmt.Errorf("asking Twilio whether an earlier attempt was sent: next page %q: %w", *page.NextPageUri, err)
		}
		token, number = next.Query().Get("PageToken"), next.Query().Get("Page")
	}
	// Not found, and not all read: sending again could be a second SMS.
	return "", fmt.Errorf("asking Twilio whether an earlier attempt was sent: more than %d messages from %s to %s since the attempt began; not sending again without knowing",
		maxLookupPages*lookupPageSize, from, m.To)
}

// beginAttempt records that a create call is about to be made.
func (a *Adapter) beginAttempt(ctx context.Context, m gateways.Outbound, from, body string) error {
	rec, _ := json.Marshal(attempt{Started: time.Now().UTC(), From: from, To: m.To, Body: body})
	if _, err := a.msgs.Put(ctx, a.attemptKey(m), rec); err != nil {
		return fmt.Errorf("recording the attempt: %w", err)
	}
	return nil
}

// endAttempt settles the record after Twilio answered: the SID is recorded
// when it accepted; the attempt is removed when it refused (nothing was
// created, so a retry needs no check). Otherwise the record stays for the
// next attempt to resolve.
func (a *Adapter) endAttempt(ctx context.Context, m gateways.Outbound, sid string, err error) {
	var te *client.TwilioRestError
	switch {
	case sid != "":
		a.recordSent(ctx, m, sid)
	case errors.As(err, &te), notSent(err):
		_ = a.msgs.Delete(ctx, a.attemptKey(m))
	}
}

// notSent: the request never left (no connection could be made), so
// nothing can have been created at Twilio.
func notSent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// recordSent maps the SID back to the stanza, for delivery reports and for
// recognising the message at Twilio after a crash, then applies a delivery
// report that came before the record (see keepEarly). A failure here costs
// a receipt, not a message: log it.
func (a *Adapter) recordSent(ctx context.Context, m gateways.Outbound, sid string) {
	sr := sentRecord{Ref: m.ID, Key: m.Key, User: m.From, Contact: m.To, Receipt: m.Receipt}
	rec, _ := json.Marshal(sr)
	if _, err := a.msgs.Put(ctx, a.sidKey(sid), rec); err != nil {
		a.log.Warn("could not record sent message; its delivery report is kept but not applied", "sid", sid, "err", err)
		return
	}
	if err := a.applyEarly(ctx, sid, sr); err != nil {
		a.log.Warn("a delivery report that came before the message's record could not be applied", "sid", sid, "id", m.ID, "err", err)
	}
}
