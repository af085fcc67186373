package twilio

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways/sms"
)

const (
	// maxWebhookBody: Twilio's webhooks are a few KB; anything near this is
	// not Twilio.
	maxWebhookBody = 64 << 10
	// emptyTwiML tells Twilio we took the message and have no reply.
	emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`
)

// Bind records where the webhooks are served and whom they report to.
func (t *Provider) Bind(base string, g *sms.Gateway) { t.base, t.g = base, g }

// Handler serves Twilio's webhooks:
//
//	POST <base>/sms          inbound SMS/MMS (signed)
//	POST <base>/status       delivery reports (signed)
func (t *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+t.base+"/sms", t.signed(t.inbound))
	mux.HandleFunc("POST "+t.base+"/status", t.signed(t.status))
	return mux
}

// signed checks X-Twilio-Signature against the public URL Twilio called, and
// the account, before the handler sees the request.
func (t *Provider) signed(next func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBody)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("request body over %d bytes", maxWebhookBody), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "malformed form body: "+err.Error(), http.StatusBadRequest)
			return
		}
		params := make(map[string]string, len(r.PostForm))
		for k, v := range r.PostForm {
			if len(v) > 0 {
				params[k] = v[0]
			}
		}
		url := t.publicURL + r.URL.RequestURI()
		sig := r.Header.Get("X-Twilio-Signature")
		if sig == "" || !t.validator.Validate(url, params, sig) {
			t.g.Log().Warn("webhook with a bad or missing signature refused", "path", r.URL.Path, "remote", r.RemoteAddr)
			http.Error(w, "invalid X-Twilio-Signature for "+url+" (is http.public_url the address Twilio calls?)", http.StatusForbidden)
			return
		}
		if sid := r.PostForm.Get("AccountSid"); sid != t.cfg.AccountSID {
			http.Error(w, "webhook for another account", http.StatusForbidden)
			return
		}
		if !t.g.Active() {
			http.Error(w, "gateway starting or stopping", http.StatusServiceUnavailable)
			return
		}
		next(w, r)
	}
}

// inbound stores an incoming message on the bus, then answers 200: once
// Twilio has its 200 it will not send the message again.
func (t *Provider) inbound(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	sid := f.Get("MessageSid")
	from, to := f.Get("From"), f.Get("To")
	if sid == "" || from == "" || to == "" {
		http.Error(w, "MessageSid, From and To are required", http.StatusBadRequest)
		return
	}
	in := sms.Received{ID: sid, From: from, To: []string{to}, Body: f.Get("Body")}
	n, _ := strconv.Atoi(f.Get("NumMedia"))
	in.MMS = n > 0 || f.Get("MediaUrl0") != ""
	for i := 0; i < n && i < 10; i++ {
		mediaURL := f.Get(fmt.Sprintf("MediaUrl%d", i))
		if mediaURL == "" {
			continue
		}
		in.Media = append(in.Media, sms.ReceivedMedia{URL: mediaURL, Type: f.Get(fmt.Sprintf("MediaContentType%d", i))})
	}
	if err := t.g.Receive(r.Context(), t, in); err != nil {
		http.Error(w, "temporarily unable to store the message", sms.WebhookStatus(err))
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, emptyTwiML)
}

// status turns delivery reports into receipts and failures.
func (t *Provider) status(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	sid, state := f.Get("MessageSid"), f.Get("MessageStatus")
	if sid == "" || state == "" {
		http.Error(w, "MessageSid and MessageStatus are required", http.StatusBadRequest)
		return
	}
	var st string
	switch state {
	case "delivered":
		st = bus.StateDelivered
	case "failed", "undelivered":
		st = bus.StateFailed
	default: // queued, sending, sent, accepted, scheduled, read…: nothing to tell
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := t.g.Status(r.Context(), t, sms.StatusReport{ID: sid, State: st, Code: f.Get("ErrorCode")}); err != nil {
		http.Error(w, "temporarily unable to process the report", sms.WebhookStatus(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
