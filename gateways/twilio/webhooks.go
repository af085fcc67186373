package twilio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/internal/tapback"
)

const (
	// maxWebhookBody: Twilio's webhooks are a few KB; anything near this is
	// not Twilio.
	maxWebhookBody = 64 << 10
	// mediaTTL is how long a media link handed to a user keeps working.
	mediaTTL = 7 * 24 * time.Hour
	// emptyTwiML tells Twilio we took the message and have no reply.
	emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`
)

// HTTPHandler serves Twilio's webhooks and the media links given to users:
//
//	POST <base>/sms          inbound SMS/MMS (signed)
//	POST <base>/status       delivery reports (signed)
//	GET  <base>/media/{token} media of an inbound MMS (unguessable, expiring)
func (a *Adapter) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+a.base+"/sms", a.signed(a.inbound))
	mux.HandleFunc("POST "+a.base+"/status", a.signed(a.status))
	mux.HandleFunc("GET "+a.base+"/media/{token}", a.serveMedia)
	return mux
}

// signed checks X-Twilio-Signature against the public URL Twilio called, and
// the account, before the handler sees the request.
func (a *Adapter) signed(next func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
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
		url := a.publicURL + r.URL.RequestURI()
		sig := r.Header.Get("X-Twilio-Signature")
		if sig == "" || !a.validator.Validate(url, params, sig) {
			a.log.Warn("webhook with a bad or missing signature refused", "path", r.URL.Path, "remote", r.RemoteAddr)
			http.Error(w, "invalid X-Twilio-Signature for "+url+" (is http.public_url the address Twilio calls?)", http.StatusForbidden)
			return
		}
		if sid := r.PostForm.Get("AccountSid"); sid != a.cfg.AccountSID {
			http.Error(w, "webhook for another account", http.StatusForbidden)
			return
		}
		if a.currentHost() == nil {
			http.Error(w, "gateway starting or stopping", http.StatusServiceUnavailable)
			return
		}
		next(w, r)
	}
}

// inbound stores an incoming message on the bus, then answers 200: once
// Twilio has its 200 it will not send the message again. A phone's
// rendering of a reaction to one of the user's recent messages is stored
// as that reaction instead (phoneReaction); it is deduplicated by the same
// MessageSid.
func (a *Adapter) inbound(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	sid := f.Get("MessageSid")
	from, to := f.Get("From"), f.Get("To")
	if sid == "" || from == "" || to == "" {
		http.Error(w, "MessageSid, From and To are required", http.StatusBadRequest)
		return
	}
	h := a.currentHost()
	if h == nil { // stopped since signed looked
		http.Error(w, "gateway starting or stopping", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	user, err := a.reg.UserFor(ctx, to)
	if err != nil {
		a.log.Error("inbound: number lookup failed", "sid", sid, "err", err)
		http.Error(w, "temporarily unable to store the message", http.StatusServiceUnavailable)
		return
	}
	if user == "" {
		// Nobody can read it. Twilio does not retry, so this log line is
		// the only trace: make it findable.
		a.log.Warn("inbound message to a number assigned to nobody; not delivered", "sid", sid, "to", to)
		writeTwiML(w)
		return
	}
	in := gateways.Inbound{ProviderID: sid, From: from, To: user, Body: f.Get("Body")}
	n, _ := strconv.Atoi(f.Get("NumMedia"))
	for i := 0; i < n && i < 10; i++ {
		mediaURL := f.Get(fmt.Sprintf("MediaUrl%d", i))
		if mediaURL == "" {
			continue
		}
		ctype := f.Get(fmt.Sprintf("MediaContentType%d", i))
		link, err := a.mediaLink(ctx, mediaURL, ctype)
		if err != nil {
			a.log.Error("inbound: could not store media link", "sid", sid, "err", err)
			http.Error(w, "temporarily unable to store the message", http.StatusServiceUnavailable)
			return
		}
		in.Media = append(in.Media, gateways.Media{URL: link, Type: ctype})
	}
	store, what := func() error { return h.Deliver(ctx, in) }, "message"
	// An MMS is never a reaction: a phone renders those as text alone.
	if mms := n > 0 || len(in.Media) > 0 || f.Get("MediaUrl0") != ""; !mms {
		if x, ok := a.phoneReaction(ctx, h, in); ok {
			store, what = func() error { return h.React(ctx, x) }, "reaction"
		}
	}
	if err := store(); err != nil {
		a.log.Error("inbound: could not store the "+what+" on the bus", "sid", sid, "err", err)
		status := http.StatusServiceUnavailable
		if bus.IsStorageFull(err) {
			status = http.StatusInsufficientStorage
		}
		http.Error(w, "temporarily unable to store the message", status)
		return
	}
	writeTwiML(w)
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
func (a *Adapter) phoneReaction(ctx context.Context, h gateways.Host, in gateways.Inbound) (x gateways.InboundReaction, ok bool) {
	r, ok := tapback.Parse(in.Body)
	if !ok {
		return x, false
	}
	rctx, cancel := context.WithTimeout(ctx, recentTimeout)
	recent, err := h.Recent(rctx, in.To, in.From)
	cancel()
	if err != nil {
		a.log.Warn("inbound: a reaction-like text is delivered as a message: the user's recent messages could not be read",
			"sid", in.ProviderID, "err", err)
		return x, false
	}
	texts := make([]string, len(recent))
	for i, m := range recent {
		texts[i] = m.Text
	}
	i := a.match(r, texts)
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
	a.log.Debug("inbound: a phone's reaction", "sid", in.ProviderID, "emoji", r.Emoji, "removed", r.Removed, "target", x.TargetXMPP)
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
func (a *Adapter) match(r tapback.Reaction, texts []string) int {
	if i := tapback.Match(r, texts); i >= 0 {
		return i
	}
	q := strings.TrimSpace(r.Quote)
	var bare []string
	if p := strings.TrimSpace(a.cfg.CorrectionPrefix); p != "" {
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

// status turns delivery reports into receipts and failures.
func (a *Adapter) status(w http.ResponseWriter, r *http.Request) {
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
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	e, err := a.msgs.Get(ctx, a.sidKey(sid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Twilio does not retry status callbacks: answering without
		// keeping it would lose the report for good.
		if err := a.keepEarly(ctx, sid, earlyStatus{State: st, Code: f.Get("ErrorCode"), At: time.Now().UTC()}); err != nil {
			a.log.Error("could not keep a delivery report that came before its message's record", "sid", sid, "status", state, "err", err)
			http.Error(w, "temporarily unable to process the report", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		http.Error(w, "temporarily unable to process the report", http.StatusServiceUnavailable)
		return
	}
	var rec sentRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		a.log.Error("corrupt sent-message record", "sid", sid, "err", err)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := a.report(ctx, rec, st, f.Get("ErrorCode")); err != nil {
		http.Error(w, "temporarily unable to process the report", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// report hands the host the receipt or failure st (bus.StateDelivered or
// bus.StateFailed, with Twilio's error code) of the message rec describes.
func (a *Adapter) report(ctx context.Context, rec sentRecord, st, code string) error {
	if st == bus.StateDelivered && !rec.Receipt {
		return nil
	}
	h := a.currentHost()
	if h == nil {
		return gateways.ErrNotConnected
	}
	report := gateways.Status{Ref: rec.Ref, Key: rec.Key, User: rec.User, Contact: rec.Contact, State: st}
	if st == bus.StateFailed {
		report.Code = code
		report.Reason = "the message was not delivered"
		if why, ok := deliveryErrors[code]; ok {
			report.Reason += ": " + why
		}
	}
	return h.Report(ctx, report)
}

// earlyStatus is a delivery report that came before its message's SID
// record: Twilio can call back before the create call's answer reached us
// and recordSent wrote the record, and the write may have failed. It is
// kept in the messages bucket (7 days) until recordSent applies it.
type earlyStatus struct {
	State string    `json:"state"` // bus.StateDelivered or bus.StateFailed
	Code  string    `json:"code,omitempty"`
	At    time.Time `json:"at"`
}

func (a *Adapter) earlyKey(sid string) string { return ID + "." + a.name + ".early." + sid }

// earlyGrace is how long a kept report may wait for its record before a
// warning says so; the record normally follows within a second.
const earlyGrace = time.Minute

// keepEarly stores a report whose SID record is missing, then looks for
// the record once more: recordSent may have written it (and found no
// report to apply) since the handler looked.
func (a *Adapter) keepEarly(ctx context.Context, sid string, s earlyStatus) error {
	v, _ := json.Marshal(s)
	if _, err := a.msgs.Put(ctx, a.earlyKey(sid), v); err != nil {
		return err
	}
	e, err := a.msgs.Get(ctx, a.sidKey(sid))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		a.log.Debug("delivery report came before its message's record; kept until the record is written", "sid", sid, "status", s.State)
		time.AfterFunc(earlyGrace, func() { a.warnIfOrphaned(sid) })
		return nil
	case err != nil:
		return nil // kept; recordSent applies it
	}
	var rec sentRecord
	if json.Unmarshal(e.Value(), &rec) != nil {
		return nil
	}
	return a.applyEarly(ctx, sid, rec)
}

// applyEarly reports a status kept by keepEarly for sid, if there is one,
// and removes it. Both recordSent and the status handler may apply the
// same report in a race; the runner drops the repeat (it deduplicates
// reports by message key and state).
func (a *Adapter) applyEarly(ctx context.Context, sid string, rec sentRecord) error {
	e, err := a.msgs.Get(ctx, a.earlyKey(sid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading an early delivery report: %w", err)
	}
	var s earlyStatus
	if err := json.Unmarshal(e.Value(), &s); err == nil {
		if err := a.report(ctx, rec, s.State, s.Code); err != nil {
			return fmt.Errorf("reporting an early delivery report: %w", err)
		}
	}
	_ = a.msgs.Delete(ctx, a.earlyKey(sid), jetstream.LastRevision(e.Revision()))
	return nil
}

// warnIfOrphaned says so when a kept report still has no record: its
// message's record was lost (or the SID is not ours), and the sender will
// not hear of it.
func (a *Adapter) warnIfOrphaned(sid string) {
	if a.currentHost() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := a.msgs.Get(ctx, a.earlyKey(sid))
	if err != nil {
		return // applied, or nothing to say
	}
	if _, err := a.msgs.Get(ctx, a.sidKey(sid)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		return
	}
	var s earlyStatus
	_ = json.Unmarshal(e.Value(), &s)
	a.log.Warn("delivery report for a message with no record; kept for 7 days in case the record appears, the sender has not been told",
		"sid", sid, "status", s.State, "code", s.Code, "since", s.At)
}

type mediaRecord struct {
	URL     string    `json:"url"`
	Type    string    `json:"type"`
	Expires time.Time `json:"exp"`
}

func (a *Adapter) mediaKey(token string) string { return ID + "." + a.name + ".media." + token }

// mediaLink stores a Twilio media URL behind a random token and returns the
// public URL users fetch it from. Twilio's URLs need our credentials.
func (a *Adapter) mediaLink(ctx context.Context, twilioURL, ctype string) (string, error) {
	b := make([]byte, 16) // 128 bits
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	rec, _ := json.Marshal(mediaRecord{URL: twilioURL, Type: ctype, Expires: time.Now().Add(mediaTTL)})
	if _, err := a.msgs.Put(ctx, a.mediaKey(token), rec); err != nil {
		return "", err
	}
	// An extension helps clients decide to show it inline.
	name := token
	if exts, _ := mime.ExtensionsByType(ctype); len(exts) > 0 {
		name += exts[len(exts)-1]
	}
	return a.publicURL + a.base + "/media/" + name, nil
}

// serveMedia proxies a stored media link to Twilio with our credentials.
func (a *Adapter) serveMedia(w http.ResponseWriter, r *http.Request) {
	token, _, _ := strings.Cut(r.PathValue("token"), ".")
	e, err := a.msgs.Get(r.Context(), a.mediaKey(token))
	if err != nil {
		http.Error(w, "no such media, or the link expired", http.StatusNotFound)
		return
	}
	var rec mediaRecord
	if json.Unmarshal(e.Value(), &rec) != nil || time.Now().After(rec.Expires) {
		http.Error(w, "no such media, or the link expired", http.StatusNotFound)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, rec.URL, nil)
	if err != nil {
		http.Error(w, "bad media record", http.StatusInternalServerError)
		return
	}
	// Credentials go to Twilio only, whatever a media URL says.
	if req.URL.Host == a.apiHost || req.URL.Host == twilioHost {
		req.SetBasicAuth(a.cfg.AccountSID, a.cfg.AuthToken)
	}
	resp, err := a.media.Do(req)
	if err != nil {
		http.Error(w, "could not fetch the media from the provider", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		http.Error(w, fmt.Sprintf("the provider answered %d for this media", resp.StatusCode), http.StatusBadGateway)
		return
	}
	ctype := resp.Header.Get("Content-Type")
	if ctype == "" {
		ctype = rec.Type
	}
	w.Header().Set("Content-Type", ctype)
	// Served from the gateway's own origin but chosen by whoever sent the
	// MMS: never let it run as a page there.
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	if major, _, _ := strings.Cut(ctype, "/"); major != "image" && major != "audio" && major != "video" {
		w.Header().Set("Content-Disposition", "attachment")
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		w.Header().Set("Content-Length", cl)
	}
	w.Header().Set("Cache-Control", "private, max-age=86400")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.Copy(w, resp.Body)
}

func writeTwiML(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, emptyTwiML)
}
