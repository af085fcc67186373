package twilio

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/internal/tapback"
	"github.com/xmppgw/xmppgw/gateways/sms"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

// recordingHost remembers what the adapter handed to the gateway.
type recordingHost struct {
	mu        sync.Mutex
	delivered []gateways.Inbound
	reported  []gateways.Status
	reacted   []gateways.InboundReaction
}

// fuzzRecent is alice's one recent message to every contact, so that a
// phone's reaction quoting it is one.
var fuzzRecent = gateways.RecentMessage{ID: "stanza-1", NetworkIDs: []string{fuzzSentSID}, Text: "See you at 7"}

func (h *recordingHost) Recent(context.Context, string, string) ([]gateways.RecentMessage, error) {
	return []gateways.RecentMessage{fuzzRecent}, nil
}

func (h *recordingHost) React(_ context.Context, x gateways.InboundReaction) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reacted = append(h.reacted, x)
	return nil
}

// Retract, Mark and Type: SMS has none of them, so the adapter must never
// call these.
func (h *recordingHost) Retract(context.Context, gateways.InboundRetraction) error {
	panic("Retract called by the SMS adapter")
}

func (h *recordingHost) Mark(context.Context, gateways.InboundMarker) error {
	panic("Mark called by the SMS adapter")
}

func (h *recordingHost) Type(context.Context, gateways.InboundTyping) error {
	panic("Type called by the SMS adapter")
}

func (h *recordingHost) Deliver(_ context.Context, m gateways.Inbound) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered = append(h.delivered, m)
	return nil
}

// Occupant: the adapter declares no rooms, so it must never call this.
func (h *recordingHost) Occupant(context.Context, gateways.Occupant) error {
	panic("Occupant called by an adapter without rooms")
}

func (h *recordingHost) Report(_ context.Context, s gateways.Status) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reported = append(h.reported, s)
	return nil
}

func (h *recordingHost) counts() (delivered, reported, reacted int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.delivered), len(h.reported), len(h.reacted)
}

const (
	fuzzSID       = "AC00000000000000000000000000000000"
	fuzzToken     = "0123456789abcdef0123456789abcdef"
	fuzzNumber    = "+15550009999"
	fuzzPublicURL = "https://gw.example.org"
	fuzzSentSID   = "SMffffffffffffffffffffffffffffffff" // has a sent record
)

// webhookAdapter is a real adapter on a real embedded bus, started with a
// recording host.
func webhookAdapter(f *testing.F) (*sms.Rooms, *recordingHost) {
	dir, err := os.MkdirTemp("", "xmppgw-twilio-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{DataDir: dir})
	if err != nil {
		f.Fatalf("bus.Open: %v", err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	regs, err := b.JetStream().KeyValue(ctx, bus.BucketRegistrations)
	if err != nil {
		f.Fatal(err)
	}
	msgs, err := b.JetStream().KeyValue(ctx, bus.BucketMessages)
	if err != nil {
		f.Fatal(err)
	}
	cfg := newConfig().(*Config)
	cfg.AccountSID, cfg.AuthToken = fuzzSID, fuzzToken
	cfg.Numbers = map[string]string{fuzzNumber: "alice@localhost"}
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	ad, err := New(gateways.Params{Name: "sms", Domain: "sms.localhost", Config: cfg, PublicURL: fuzzPublicURL,
		Registrations: regs, Messages: msgs})
	if err != nil {
		f.Fatal(err)
	}
	a := ad.(*sms.Rooms)
	h := &recordingHost{}
	if err := a.Start(ctx, h); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = a.Stop(context.Background()) })
	// A message sent earlier, with a receipt requested, so that status
	// callbacks can reach Report.
	rec, _ := json.Marshal(map[string]any{"ref": "stanza-1", "user": "alice@localhost/phone", "contact": "+15551234567", "receipt": true})
	if _, err := msgs.Put(ctx, ID+".sms.sid."+fuzzSentSID, rec); err != nil {
		f.Fatal(err)
	}
	return a, h
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

var webhookStatuses = map[int]bool{200: true, 204: true, 400: true, 403: true, 413: true, 503: true}

// FuzzWebhook POSTs correctly signed, otherwise arbitrary forms to the
// webhooks: whatever Twilio (or whoever holds the token) sends, the handler
// answers with a known status, delivers a stored message exactly once, and
// never echoes the token.
func FuzzWebhook(f *testing.F) {
	inbound := []string{"AccountSid", fuzzSID, "MessageSid", "SM00000000000000000000000000000001", "From", "+15551230001", "To", fuzzNumber}
	seeds := []struct {
		body   string
		status bool
	}{
		{form(append(inbound, "Body", "hi alice", "NumMedia", "0", "SmsStatus", "received")...), false},
		{form(append(inbound, "Body", "look", "NumMedia", "2",
			"MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/"+fuzzSID+"/Messages/MM1/Media/ME1", "MediaContentType0", "image/png",
			"MediaUrl1", "https://evil.example/x", "MediaContentType1", "text/html")...), false},
		{form(append(inbound, "NumMedia", "99999999999999999999", "MediaUrl0", "x")...), false},
		{form(append(inbound, "NumMedia", "-1")...), false},
		// A phone's reactions to alice's recent message, and texts that
		// only look like one.
		{form(append(inbound, "Body", "Liked “See you at 7”", "NumMedia", "0")...), false},
		{form(append(inbound, "Body", `Removed a heart from "See you…`, "NumMedia", "0")...), false},
		{form(append(inbound, "Body", "Reacted 🥹 to “See you at 7”")...), false},
		{form(append(inbound, "Body", "Liked “See you at 8”", "NumMedia", "0")...), false},
		{form(append(inbound, "Body", "Liked “* See you at 7”", "NumMedia", "0")...), false},
		{form(append(inbound, "Body", "Loved “> Are we on?\nSee you at 7”", "NumMedia", "0")...), false},
		{form(append(inbound, "Body", "Loved “> Are we on? See you at 7”", "NumMedia", "0")...), false},
		{form(append(inbound, "Body", "Liked “See you at 7”", "NumMedia", "1",
			"MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/"+fuzzSID+"/Messages/MM1/Media/ME1", "MediaContentType0", "image/png")...), false},
		{form("AccountSid", fuzzSID, "MessageSid", "SM2", "From", "ACME Bank", "To", "+15550000000", "Body", "nobody's"), false},
		{form("AccountSid", fuzzSID, "MessageSid", "SM3", "From", "12345", "To", "+1.*>"), false},
		{form("AccountSid", fuzzSID, "From", "+15551230001", "To", fuzzNumber), false},
		{form("AccountSid", "AC11111111111111111111111111111111", "MessageSid", "SM4", "From", "+15551230001", "To", fuzzNumber), false},
		{form(append(inbound, "To", "+15550000000", "Body", "two To values")...), false},
		{"MessageSid=SM5&From=%2B1&To=%2B15550009999&AccountSid=" + fuzzSID + "&Body=%00%ff%3Cx%3E", false},
		{"", false},
		{form(append(inbound, "Body", strings.Repeat("x", maxWebhookBody))...), false}, // 413
		{form("AccountSid", fuzzSID, "MessageSid", fuzzSentSID, "MessageStatus", "delivered"), true},
		{form("AccountSid", fuzzSID, "MessageSid", fuzzSentSID, "MessageStatus", "undelivered", "ErrorCode", "30003"), true},
		{form("AccountSid", fuzzSID, "MessageSid", fuzzSentSID, "MessageStatus", "failed", "ErrorCode", "99999"), true},
		{form("AccountSid", fuzzSID, "MessageSid", fuzzSentSID, "MessageStatus", "sent"), true},
		{form("AccountSid", fuzzSID, "MessageSid", "SMunknown", "MessageStatus", "delivered"), true},
		{form("AccountSid", fuzzSID, "MessageSid", "a b.*>", "MessageStatus", "failed"), true},
		{form("AccountSid", fuzzSID, "MessageStatus", "failed"), true},
	}
	for _, s := range seeds {
		f.Add(s.body, s.status)
	}
	a, host := webhookAdapter(f)
	const base = "/" + ID + "/sms"
	handler := a.HTTPHandler()
	f.Fuzz(func(t *testing.T, body string, status bool) {
		values, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		path := base + "/sms"
		if status {
			path = base + "/status"
		}
		// twilio-go's validator signs the first value of each key (see
		// twiliotest.Sign); sign what it checks so repeated keys get in too.
		first := url.Values{}
		for k, v := range values {
			first.Set(k, v[0])
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", twiliotest.Sign(fuzzToken, fuzzPublicURL+path, first))
		w := httptest.NewRecorder()
		d0, r0, x0 := host.counts()
		handler.ServeHTTP(w, req)
		d1, r1, x1 := host.counts()

		code, answer := w.Code, w.Body.String()
		if !webhookStatuses[code] {
			t.Fatalf("%s %q: status %d %q", path, body, code, answer)
		}
		if strings.Contains(answer, fuzzToken) {
			t.Fatalf("%s %q: the answer contains the auth token: %q", path, body, answer)
		}
		if values.Get("AccountSid") != fuzzSID && code != http.StatusForbidden && code != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s %q: a webhook for another account answered %d", path, body, code)
		}
		if status {
			if d1 != d0 || x1 != x0 {
				t.Fatalf("a status callback delivered a message or a reaction: %q", body)
			}
			if r1 != r0 {
				if r1 != r0+1 || code != http.StatusNoContent {
					t.Fatalf("status %q: %d reports, answer %d", body, r1-r0, code)
				}
				host.mu.Lock()
				rep := host.reported[r1-1]
				host.mu.Unlock()
				if rep.Ref != "stanza-1" || (rep.State != bus.StateDelivered && rep.State != bus.StateFailed) {
					t.Fatalf("status %q reported %+v", body, rep)
				}
			}
			return
		}
		if r1 != r0 {
			t.Fatalf("an inbound message made a report: %q", body)
		}
		if code != http.StatusOK {
			if d1 != d0 || x1 != x0 {
				t.Fatalf("inbound %q answered %d but was delivered", body, code)
			}
			return
		}
		sid := values.Get("MessageSid")
		if sid == "" || values.Get("From") == "" || values.Get("To") != fuzzNumber {
			if d1 != d0 || x1 != x0 {
				t.Fatalf("inbound %q delivered though it is not for alice", body)
			}
			return
		}
		if d1-d0+x1-x0 != 1 {
			t.Fatalf("inbound %q: 200 after %d deliveries and %d reactions, want 1 in all", body, d1-d0, x1-x0)
		}
		// A reaction exactly when the body is a phone's reaction quoting
		// alice's recent message, and no media came with it.
		n, _ := strconv.Atoi(values.Get("NumMedia"))
		r, isReaction := tapback.Parse(values.Get("Body"))
		isReaction = isReaction && n <= 0 && values.Get("MediaUrl0") == "" &&
			a.QuoteIndex(r, []string{fuzzRecent.Text}) == 0
		if reacted := x1 != x0; reacted != isReaction {
			t.Fatalf("inbound %q: stored as a reaction: %v, want %v", body, reacted, isReaction)
		}
		if isReaction {
			host.mu.Lock()
			x := host.reacted[x1-1]
			host.mu.Unlock()
			want := gateways.InboundReaction{User: "alice@localhost", Contact: values.Get("From"), TargetXMPP: fuzzRecent.ID,
				ProviderID: sid, Fallback: values.Get("Body")}
			if r.Removed {
				want.Remove = r.Emoji
			} else {
				want.Full, want.Emoji = true, []string{r.Emoji}
			}
			if !reflect.DeepEqual(x, want) {
				t.Fatalf("inbound %q: reaction %+v, want %+v", body, x, want)
			}
			return
		}
		host.mu.Lock()
		in := host.delivered[d1-1]
		host.mu.Unlock()
		if in.ProviderID != sid || in.To != "alice@localhost" || in.From != values.Get("From") || in.Body != values.Get("Body") {
			t.Fatalf("inbound %q delivered as %+v", body, in)
		}
		for _, m := range in.Media {
			if !strings.HasPrefix(m.URL, fuzzPublicURL+base+"/media/") || strings.Contains(m.URL, fuzzSID) {
				t.Fatalf("inbound %q: media link %q is not an opaque gateway URL", body, m.URL)
			}
		}
		if len(in.Media) > 10 {
			t.Fatalf("inbound %q: %d media items", body, len(in.Media))
		}
	})
}
