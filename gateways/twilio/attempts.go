package twilio

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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

// maxLookup bounds how many messages one lookup reads at Twilio.
const maxLookup = 20000

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
// records its SID if so. The record is consulted on every attempt, not only
// when the bus counts a redelivery: a disk fault can lose the consumer's
// state (its acknowledgements and delivery counts) while the attempt record,
// written before the call, survived — the message then comes back as a
// "first" delivery although Twilio already has it. A missing record costs
// one KV read.
func (a *Adapter) alreadySent(ctx context.Context, m gateways.Outbound, from, body string) (bool, error) {
	e, err := a.msgs.Get(ctx, a.attemptKey(m))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the attempt record: %w", err)
	}
	var rec attempt
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return false, nil // unreadable: behave as if there were none
	}
	if rec.SID != "" {
		a.log.Info("redelivered message was already accepted by Twilio; not sending it again", "id", m.ID, "sid", rec.SID)
		return true, nil
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
			return false, fmt.Errorf("waiting for an earlier attempt to settle: %w", ctx.Err())
		}
	}
	sid, err := a.findSent(ctx, m, rec, from, body)
	if err != nil {
		return false, err
	}
	if sid == "" {
		return false, nil
	}
	a.log.Info("an earlier attempt with an unknown outcome did reach Twilio; not sending again", "id", m.ID, "sid", sid)
	a.recordSent(ctx, m, sid)
	return true, nil
}

// findSent looks for the message at Twilio: same From and To, same body,
// created no earlier than the attempt began, and not known to be another
// stanza's message.
func (a *Adapter) findSent(ctx context.Context, m gateways.Outbound, rec attempt, from, body string) (string, error) {
	// Everything this conversation sent since the attempt began (paged):
	// under load hundreds of newer messages can come after the one sought.
	p := &openapi.ListMessageParams{}
	p.SetFrom(from)
	p.SetTo(m.To)
	p.SetDateSentAfter(rec.Started.Add(-clockSkew))
	p.SetPageSize(1000)
	p.SetLimit(maxLookup)
	list, err := a.list(ctx, p)
	if err != nil {
		return "", fmt.Errorf("asking Twilio whether an earlier attempt was sent: %w", err)
	}
	for _, msg := range list {
		if msg.Sid == nil || msg.Body == nil || *msg.Body != body || msg.DateCreated == nil {
			continue
		}
		created, err := time.Parse(time.RFC1123Z, *msg.DateCreated)
		if err != nil || created.Before(rec.Started.Add(-clockSkew)) {
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
	return "", nil
}

func (a *Adapter) list(ctx context.Context, p *openapi.ListMessageParams) ([]openapi.ApiV2010Message, error) {
	return withContext(ctx, func() ([]openapi.ApiV2010Message, error) { return a.api.ListMessage(p) })
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
// recognising the message at Twilio after a crash. A failure here costs a
// receipt, not a message: log it.
func (a *Adapter) recordSent(ctx context.Context, m gateways.Outbound, sid string) {
	rec, _ := json.Marshal(sentRecord{Ref: m.ID, Key: m.Key, User: m.From, Contact: m.To, Receipt: m.Receipt})
	if _, err := a.msgs.Put(ctx, a.sidKey(sid), rec); err != nil {
		a.log.Warn("could not record sent message; its delivery report will be ignored", "sid", sid, "err", err)
	}
}
