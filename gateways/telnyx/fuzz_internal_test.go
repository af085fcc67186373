package telnyx

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/sms"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

const (
	fuzzKey    = "KEY0123456789ABCDEF"
	fuzzNumber = "+15550009999"
	fuzzPublic = "https://gw.example.org"
)

// fuzzHost counts what the gateway stored.
type fuzzHost struct {
	mu                 sync.Mutex
	delivered, reports int
}

func (h *fuzzHost) Deliver(context.Context, gateways.Inbound) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered++
	return nil
}

func (h *fuzzHost) Report(context.Context, gateways.Status) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports++
	return nil
}

func (h *fuzzHost) Occupant(context.Context, gateways.Occupant) error         { return nil }
func (h *fuzzHost) React(context.Context, gateways.InboundReaction) error     { return nil }
func (h *fuzzHost) Retract(context.Context, gateways.InboundRetraction) error { return nil }
func (h *fuzzHost) Mark(context.Context, gateways.InboundMarker) error        { return nil }
func (h *fuzzHost) Type(context.Context, gateways.InboundTyping) error        { return nil }
func (h *fuzzHost) Recent(context.Context, string, string) ([]gateways.RecentMessage, error) {
	return nil, nil
}

var webhookStatuses = map[int]bool{200: true, 400: true, 403: true, 413: true, 503: true}

// FuzzWebhook posts correctly signed, otherwise arbitrary bodies (and
// attempt tokens) to the webhook: whatever comes, the answer is a known
// status, nothing is stored unless it is 200, and the API key is never
// in an answer.
func FuzzWebhook(f *testing.F) {
	for _, s := range []struct{ body, attempt string }{
		{`{"data":{"event_type":"message.received","payload":{"id":"m1","type":"SMS","from":{"phone_number":"+15551230001"},"to":[{"phone_number":"+15550009999"}],"text":"hi"}}}`, ""},
		{`{"data":{"event_type":"message.received","payload":{"id":"m2","type":"MMS","from":{"phone_number":"+15551230001"},"to":[{"phone_number":"+15550009999"},{"phone_number":"+15551230002"}],"text":"group","media":[{"url":"https://api.telnyx.com/v2/media/x","content_type":"image/png"}]}}}`, ""},
		{`{"data":{"event_type":"message.finalized","payload":{"id":"s1","from":{"phone_number":"+15550009999"},"to":[{"phone_number":"+15551230001","status":"delivered"}]}}}`, ""},
		{`{"data":{"event_type":"message.sent","payload":{"id":"s2","from":{"phone_number":"+15550009999"},"to":[{"phone_number":"+15551230001","status":"sent"}],"text":"x"}}}`, "0123456789abcdef0123456789abcdef"},
		{`{"data":{"event_type":"message.finalized","payload":{"id":"s3","to":[{"status":"delivery_failed"}],"errors":[{"code":"40001"}]}}}`, "a.b*>"},
		{`{"data":{"event_type":"message.received","payload":{"id":"","to":[]}}}`, ""},
		{`{"data":{"event_type":"other"}}`, ""},
		{`{`, ""},
		{``, ""},
		{`[]`, ""},
		{strings.Repeat("x", maxWebhookBody+1), ""},
	} {
		f.Add([]byte(s.body), s.attempt)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	b := bustest.Open(f)
	regs, _ := b.JetStream().KeyValue(context.Background(), bus.BucketRegistrations)
	msgs, _ := b.JetStream().KeyValue(context.Background(), bus.BucketMessages)
	cfg := newConfig().(*Config)
	cfg.APIKey, cfg.PublicKey, cfg.MessagingProfileID = fuzzKey, pub, "40017a5c-0000-4000-8000-000000000001"
	cfg.Numbers = map[string]string{fuzzNumber: "alice@localhost"}
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	a, err := New(gateways.Params{Name: "sms", Domain: "sms.localhost", Config: cfg, PublicURL: fuzzPublic, Registrations: regs, Messages: msgs})
	if err != nil {
		f.Fatal(err)
	}
	h := &fuzzHost{}
	if err := a.Start(context.Background(), h); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = a.Stop(context.Background()) })
	handler := a.(*sms.Rooms).HTTPHandler()
	f.Fuzz(func(t *testing.T, body []byte, attempt string) {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, append([]byte(ts+"|"), body...)))
		target := "/telnyx/sms/webhook"
		if attempt != "" {
			target += "?attempt=" + url.QueryEscape(attempt)
		}
		req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		req.Header.Set("telnyx-timestamp", ts)
		req.Header.Set("telnyx-signature-ed25519", sig)
		w := httptest.NewRecorder()
		h.mu.Lock()
		d0, r0 := h.delivered, h.reports
		h.mu.Unlock()
		handler.ServeHTTP(w, req)
		h.mu.Lock()
		d1, r1 := h.delivered, h.reports
		h.mu.Unlock()
		if !webhookStatuses[w.Code] {
			t.Fatalf("%q: status %d %q", body, w.Code, w.Body.String())
		}
		if strings.Contains(w.Body.String(), fuzzKey) {
			t.Fatalf("%q: the answer shows the API key", body)
		}
		if w.Code != http.StatusOK && (d1 != d0 || r1 != r0) {
			t.Fatalf("%q answered %d but stored %d messages, %d reports", body, w.Code, d1-d0, r1-r0)
		}
	})
}
