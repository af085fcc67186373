package telnyx

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways/sms"
)

// maxWebhookBody: Telnyx's webhooks are a few KB.
const maxWebhookBody = 256 << 10

// Event is a Telnyx webhook: {"data": {...}, "meta": {...}}.
type Event struct {
	Data struct {
		EventType  string  `json:"event_type"`
		ID         string  `json:"id"`
		OccurredAt string  `json:"occurred_at"`
		Payload    Message `json:"payload"`
		RecordType string  `json:"record_type"`
	} `json:"data"`
}

// Handler serves Telnyx's webhooks: POST <base>/webhook, every event.
func (t *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+t.base+"/webhook", t.webhook)
	return mux
}

// errSignature is any refusal of a webhook's signature.
var errSignature = errors.New("bad signature")

// verify checks telnyx-signature-ed25519 over "<telnyx-timestamp>|<body>"
// and the timestamp's age.
func (t *Provider) verify(r *http.Request, body []byte) error {
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get("telnyx-signature-ed25519"))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: telnyx-signature-ed25519 missing or not a base64 Ed25519 signature", errSignature)
	}
	ts := r.Header.Get("telnyx-timestamp")
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: telnyx-timestamp missing or not a number", errSignature)
	}
	signed := make([]byte, 0, len(ts)+1+len(body))
	signed = append(append(append(signed, ts...), '|'), body...)
	if !ed25519.Verify(t.key, signed, sig) {
		return fmt.Errorf("%w: telnyx-signature-ed25519 does not match (is public_key the account's?)", errSignature)
	}
	if age := t.now().Sub(time.Unix(secs, 0)); age > t.cfg.WebhookTolerance || age < -t.cfg.WebhookTolerance {
		return fmt.Errorf("%w: telnyx-timestamp is %s away from now, more than webhook_tolerance (%s): a replay, or a clock off", errSignature, age.Round(time.Second), t.cfg.WebhookTolerance)
	}
	return nil
}

// webhook verifies an event, then hands it to the gateway. Telnyx retries
// an event answered with an error status, so a 503 loses nothing.
func (t *Provider) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("request body over %d bytes", maxWebhookBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	if err := t.verify(r, body); err != nil {
		t.g.Log().Warn("webhook refused", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if !t.g.Active() {
		http.Error(w, "gateway starting or stopping", http.StatusServiceUnavailable)
		return
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "malformed event: "+err.Error(), http.StatusBadRequest)
		return
	}
	p := ev.Data.Payload
	switch ev.Data.EventType {
	case "message.received":
		in := sms.Received{ID: p.ID, From: p.From.PhoneNumber, Body: p.Text, MMS: p.Type == "MMS"}
		for _, to := range append(p.To, p.Cc...) {
			if to.PhoneNumber != "" {
				in.To = append(in.To, to.PhoneNumber)
			}
		}
		for _, m := range p.Media {
			if m.URL != "" {
				in.Media = append(in.Media, sms.ReceivedMedia{URL: m.URL, Type: m.ContentType})
			}
		}
		if in.ID == "" || in.From == "" || len(in.To) == 0 {
			http.Error(w, "message.received needs payload.id, from.phone_number and to[]", http.StatusBadRequest)
			return
		}
		err = t.g.Receive(r.Context(), t, in)
	case "message.sent", "message.finalized":
		if p.ID == "" {
			http.Error(w, ev.Data.EventType+" needs payload.id", http.StatusBadRequest)
			return
		}
		err = t.status(r, p)
	default: // message.queued and whatever Telnyx adds: nothing to do
	}
	if err != nil {
		http.Error(w, "temporarily unable to process the event", sms.WebhookStatus(err))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// status turns a message.sent or message.finalized event into what the
// gateway keeps: the attempt it settles (webhook_url's attempt), and for
// each recipient whose status is final a receipt or an error.
func (t *Provider) status(r *http.Request, p Message) error {
	attempt := r.URL.Query().Get("attempt")
	report := sms.StatusReport{ID: p.ID, Attempt: attempt, From: p.From.PhoneNumber, Text: p.Text}
	code := ""
	if len(p.Errors) > 0 {
		code = p.Errors[0].Code
	}
	reported := false
	for _, to := range p.To {
		st := ""
		switch to.Status {
		case "delivered":
			st = bus.StateDelivered
		case "delivery_failed", "sending_failed", "expired":
			st = bus.StateFailed
		default: // queued, sending, sent, delivery_unconfirmed: nothing final to tell
			continue
		}
		s := report
		s.State, s.Code, s.Recipient = st, code, to.PhoneNumber
		if err := t.g.Status(r.Context(), t, s); err != nil {
			return err
		}
		reported = true
	}
	if !reported && attempt != "" {
		return t.g.Status(r.Context(), t, report) // settles the attempt only
	}
	return nil
}
