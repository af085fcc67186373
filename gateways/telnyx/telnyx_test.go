package telnyx_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/telnyx"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/telnyxtest"
)

const (
	apiKey     = "KEY0123456789ABCDEF"
	profile    = "40017a5c-0000-4000-8000-000000000001"
	user       = "alice@example.com/phone"
	contact    = "+15551234567"
	poolNumber = "+15550001111"
)

// env is one adapter, started, with its webhooks served, and alice holding
// poolNumber.
type env struct {
	tx   *telnyxtest.Server
	a    gateways.Adapter
	host *gatewaytest.Host
	url  string // http.public_url
}

func (e *env) hook() string { return e.url + "/telnyx/sms/webhook" }

func newConfig(tx *telnyxtest.Server, requestTimeout time.Duration) *telnyx.Config {
	info, _ := gateways.Lookup(telnyx.ID)
	cfg := info.NewConfig().(*telnyx.Config)
	cfg.APIKey, cfg.PublicKey, cfg.MessagingProfileID, cfg.APIURL = apiKey, tx.PublicKey, profile, tx.URL
	cfg.Pool = []string{poolNumber}
	cfg.MPS = 100
	cfg.RequestTimeout = requestTimeout
	return cfg
}

func start(t *testing.T, requestTimeout time.Duration) *env {
	t.Helper()
	info, _ := gateways.Lookup(telnyx.ID)
	e := &env{tx: telnyxtest.Start(t, apiKey), host: gatewaytest.NewHost()}
	e.tx.ProfileID = profile
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	cfg := newConfig(e.tx, requestTimeout)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	regs, msgs := buckets(t)
	a, err := info.New(gateways.Params{Name: "sms", Domain: "sms.example.com", Config: cfg, PublicURL: srv.URL,
		Registrations: regs, Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	handler = a.(gateways.HTTPProvider).HTTPHandler()
	if err := a.Start(t.Context(), e.host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	if _, err := a.(gateways.RegistrarProvider).Registrar().Register(t.Context(), gateways.BareJID(user)); err != nil {
		t.Fatal(err)
	}
	e.a = a
	return e
}

func buckets(t *testing.T) (regs, msgs jetstream.KeyValue) {
	t.Helper()
	b := bustest.Open(t)
	var err error
	if regs, err = b.JetStream().KeyValue(t.Context(), bus.BucketRegistrations); err != nil {
		t.Fatal(err)
	}
	if msgs, err = b.JetStream().KeyValue(t.Context(), bus.BucketMessages); err != nil {
		t.Fatal(err)
	}
	return regs, msgs
}

func outbound(key, body string) gateways.Outbound {
	return gateways.Outbound{ID: key, Key: key, From: user, To: contact, Body: body, Receipt: true, Attempt: 1}
}

// Telnyx is a network we cannot run here: the adapter talks to the fake,
// which copies the API; an outage is the fake refusing connections.
func TestConformance(t *testing.T) {
	info, _ := gateways.Lookup(telnyx.ID)
	tx := telnyxtest.Start(t, apiKey)
	// The outage check wants an outage that refuses the Send before it
	// is sent (its outcome known), not one that races a pooled
	// connection (its outcome unknown: settled by a webhook within two
	// minutes, longer than the check waits; seen once here under load).
	tx.CloseAfterEachAnswer()
	regs, msgs := buckets(t)
	gatewaytest.Run(t, gatewaytest.Harness{
		Info: info,
		New: func(t *testing.T) gateways.Adapter {
			cfg := newConfig(tx, 2*time.Second)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a, err := info.New(gateways.Params{Name: "sms", Domain: "sms.example.com", Config: cfg,
				PublicURL: "https://gw.example.com", Registrations: regs, Messages: msgs})
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		Contact: "+15551234567",
		Invalid: "not-a-number",
		// A group text with the pool number the user is given.
		Room: poolNumber + ",+15551234567,+15551234568",
		Prepare: func(t *testing.T, a gateways.Adapter) {
			if _, err := a.(gateways.RegistrarProvider).Registrar().Register(t.Context(), gateways.BareJID(gatewaytest.DefaultUser)); err != nil {
				t.Fatal(err)
			}
		},
		Disconnect: func(t *testing.T) {
			if err := tx.SetUnreachable(true); err != nil {
				t.Fatal(err)
			}
		},
		Reconnect: func(t *testing.T) {
			if err := tx.SetUnreachable(false); err != nil {
				t.Fatal(err)
			}
		},
		Received: func(_ *testing.T, body string) bool {
			for _, m := range tx.Messages() {
				if strings.HasSuffix(m.Text, body) {
					return true
				}
			}
			return false
		},
	})
}

// TestSend: what reaches Telnyx — from the user's number, to, text or
// media_urls, the messaging profile, and a webhook_url under the gateway's
// that names the attempt — and what Send says it became.
func TestSend(t *testing.T) {
	e := start(t, 2*time.Second)
	sent, err := e.a.Send(t.Context(), outbound("m1", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	m := e.tx.Messages()[0]
	if m.From != poolNumber || len(m.To) != 1 || m.To[0] != contact || m.Text != "hello" || m.ProfileID != profile || m.Group {
		t.Errorf("sent %+v", m)
	}
	if !strings.HasPrefix(m.WebhookURL, e.hook()+"?attempt=") {
		t.Errorf("webhook_url = %q, want %s?attempt=…", m.WebhookURL, e.hook())
	}
	if len(sent.IDs) != 1 || sent.IDs[0] != m.ID || sent.Text != "hello" {
		t.Errorf("Send returned %+v, want the message id %s", sent, m.ID)
	}
	mms := outbound("m2", "https://upload.example.org/cat.jpg")
	mms.Media = []gateways.Media{{URL: "https://upload.example.org/cat.jpg", Type: "image/jpeg"}}
	if _, err := e.a.Send(t.Context(), mms); err != nil {
		t.Fatal(err)
	}
	if m := e.tx.Messages()[1]; len(m.MediaURLs) != 1 || m.MediaURLs[0] != "https://upload.example.org/cat.jpg" || m.Text != "" {
		t.Errorf("MMS sent as %+v", m)
	}
}

// TestErrors: Telnyx's answers mapped to retry or report, and a refusal
// (nothing created) leaves no attempt record: the next try sends without
// waiting to settle anything.
func TestErrors(t *testing.T) {
	e := start(t, 2*time.Second)
	tests := []struct {
		name      string
		f         telnyxtest.Failure
		permanent bool
		cond      gateways.Condition
		text      string
	}{
		{"429", telnyxtest.Failure{Status: 429, Code: "10011"}, false, "", ""},
		{"500", telnyxtest.Failure{Status: 500, Code: "10007"}, false, "", ""},
		{"503", telnyxtest.Failure{Status: 503, Code: "10007"}, false, "", ""},
		{"40300 opted out", telnyxtest.Failure{Status: 400, Code: "40300"}, true, gateways.NotAllowed, "STOP"},
		{"40310 bad to", telnyxtest.Failure{Status: 400, Code: "40310"}, true, gateways.JIDMalformed, "not a number"},
		{"40001 not routable", telnyxtest.Failure{Status: 400, Code: "40001"}, true, gateways.NotAllowed, "not routable"},
		{"40003 spam", telnyxtest.Failure{Status: 400, Code: "40003"}, true, gateways.NotAllowed, "spam"},
		{"401", telnyxtest.Failure{Status: 401, Code: "10009"}, true, gateways.ServiceUnavailable, "API key"},
		{"other 4xx keeps Telnyx's title", telnyxtest.Failure{Status: 422, Code: "40321", Title: "Message too long", Detail: "The text is over 1600 characters."}, true, gateways.NotAcceptable, "Message too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.tx.FailNext(tt.f)
			m := outbound("err-"+tt.name, "hi")
			_, err := e.a.Send(t.Context(), m)
			if err == nil || errors.Is(err, gateways.ErrPermanent) != tt.permanent {
				t.Fatalf("Send = %v, want permanent %v", err, tt.permanent)
			}
			if tt.permanent {
				var ge *gateways.Error
				if !errors.As(err, &ge) || ge.Condition != tt.cond || ge.Code != tt.f.Code || !strings.Contains(ge.Text, tt.text) {
					t.Errorf("got %#v, want %s code %s text with %q", err, tt.cond, tt.f.Code, tt.text)
				}
				return
			}
			// Refused: a retry sends at once, without waiting to settle.
			began := time.Now()
			m.Attempt = 2
			if _, err := e.a.Send(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(began); d > time.Second {
				t.Errorf("the retry after a %s took %v: it waited to settle a refused attempt", tt.name, d)
			}
		})
	}
	// Telnyx's own validation, through the fake, as the user meets it.
	_, err := e.a.Send(t.Context(), gateways.Outbound{ID: "v1", Key: "v1", From: user, To: "+1", Body: "x"})
	var ge *gateways.Error
	if !errors.As(err, &ge) || ge.Condition != gateways.JIDMalformed {
		t.Errorf("to +1: %v", err)
	}
}

// TestAmbiguousSettledByWebhook: Telnyx accepted the message but the
// answer came after request_timeout. Its message.sent webhook names the
// attempt (webhook_url), so the retry knows the message went out and does
// not send it again.
func TestAmbiguousSettledByWebhook(t *testing.T) {
	e := start(t, 300*time.Millisecond)
	e.tx.SetSendWebhooks(true)
	e.tx.FailNext(telnyxtest.Failure{Accept: true, Delay: time.Second})
	m := outbound("amb", "only once")
	if _, err := e.a.Send(t.Context(), m); err == nil {
		t.Fatal("the first attempt succeeded although Telnyx answered after request_timeout")
	}
	m.Attempt = 2
	sent, err := e.a.Send(t.Context(), m)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	msgs := e.tx.Messages()
	if len(msgs) != 1 || e.tx.Requests() != 1 {
		t.Fatalf("Telnyx has %d messages after %d create calls, want 1 and 1", len(msgs), e.tx.Requests())
	}
	if len(sent.IDs) != 1 || sent.IDs[0] != msgs[0].ID {
		t.Errorf("the retry returned %+v, want id %s", sent, msgs[0].ID)
	}
	// Its delivery report reaches the sender as for any message.
	e.tx.PostWebhook(t, e.hook(), e.tx.Finalized(msgs[0], "delivered", ""))
	e.host.WaitReport(t, 5*time.Second, func(s gateways.Status) bool { return s.Ref == "amb" && s.State == bus.StateDelivered })
}

// TestAmbiguousUnsettled: no webhook names the attempt. The retry does not
// send blindly: it is put off while one may still come, and the sender is
// then told the outcome is unknown (Find).
func TestAmbiguousUnsettled(t *testing.T) {
	e := start(t, 300*time.Millisecond)
	e.tx.FailNext(telnyxtest.Failure{Accept: true, Delay: time.Second})
	m := outbound("amb", "maybe")
	if _, err := e.a.Send(t.Context(), m); err == nil {
		t.Fatal("the first attempt succeeded")
	}
	m.Attempt = 2
	_, err := e.a.Send(t.Context(), m)
	if err == nil || errors.Is(err, gateways.ErrPermanent) {
		t.Fatalf("retry within the webhook wait: %v, want a transient error", err)
	}
	if e.tx.Requests() != 1 {
		t.Fatalf("%d create calls, want 1: the retry sent blindly", e.tx.Requests())
	}
}

// TestWebhookSignature: only events signed with the account's key, over
// the raw body, within webhook_tolerance, are taken; the rest are 403 and
// store nothing.
func TestWebhookSignature(t *testing.T) {
	e := start(t, 2*time.Second)
	other := telnyxtest.Start(t, apiKey) // another key pair
	body := e.tx.Received("+15551230001", []string{poolNumber}, "forged")
	now := time.Now().Unix()
	tests := []struct {
		name string
		ts   int64
		sig  string
		body []byte
	}{
		{"another key", now, other.Sign(now, body), body},
		{"no signature", now, "", body},
		{"not base64", now, "%%%", body},
		{"replayed", now - 600, e.tx.Sign(now-600, body), body},
		{"from the future", now + 600, e.tx.Sign(now+600, body), body},
		{"timestamp changed", now - 1, e.tx.Sign(now, body), body},
		{"body changed", now, e.tx.Sign(now, body), bytes.Replace(body, []byte("forged"), []byte("forgeD"), 1)},
	}
	for _, tt := range tests {
		code, answer, err := telnyxtest.PostSigned(t.Context(), e.hook(), tt.ts, tt.sig, tt.body)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusForbidden {
			t.Errorf("%s: answered %d %q, want 403", tt.name, code, answer)
		}
	}
	if code, _ := e.tx.PostWebhook(t, e.hook(), e.tx.Received("+15551230001", []string{poolNumber}, "genuine")); code != 200 {
		t.Fatalf("genuine webhook answered %d", code)
	}
	e.host.WaitDelivered(t, 5*time.Second, func(m gateways.Inbound) bool { return m.Body == "genuine" })
	for _, m := range e.host.Delivered() {
		if m.Body != "genuine" {
			t.Errorf("delivered %+v from a refused webhook", m)
		}
	}
}

// TestInbound: message.received, SMS and MMS; the media fetched from
// Telnyx with the key and served through an opaque, expiring gateway URL;
// a redelivered event delivered once (the runner deduplicates on the id).
func TestInbound(t *testing.T) {
	e := start(t, 2*time.Second)
	e.tx.PostWebhook(t, e.hook(), e.tx.ReceivedID("msg-1", "+15551230001", []string{poolNumber}, "hi alice"))
	in := e.host.WaitDelivered(t, 5*time.Second, func(m gateways.Inbound) bool { return m.Body == "hi alice" })
	if in.ProviderID != "msg-1" || in.From != "+15551230001" || in.To != "alice@example.com" {
		t.Errorf("delivered %+v", in)
	}
	img := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 64)
	u := e.tx.AddMedia("image/png", img)
	e.tx.PostWebhook(t, e.hook(), e.tx.Received("+15551230001", []string{poolNumber}, "look", u))
	in = e.host.WaitDelivered(t, 5*time.Second, func(m gateways.Inbound) bool { return m.Body == "look" })
	if len(in.Media) != 1 || !strings.HasPrefix(in.Media[0].URL, e.url+"/telnyx/sms/media/") || strings.Contains(in.Media[0].URL, e.tx.URL) {
		t.Fatalf("media %+v: want an opaque gateway URL", in.Media)
	}
	resp, err := http.Get(in.Media[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, img) || resp.Header.Get("Content-Type") != "image/png" || e.tx.MediaFetches() != 1 {
		t.Errorf("media: %d %s, %d bytes, %d fetches", resp.StatusCode, resp.Header.Get("Content-Type"), len(got), e.tx.MediaFetches())
	}
	// Telnyx's media needs the key: the fake refuses it without.
	if resp, err := http.Get(u); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("media without the key: %v %v", resp.StatusCode, err)
	}
	// A number nobody holds: taken (200) and dropped.
	if code, _ := e.tx.PostWebhook(t, e.hook(), e.tx.Received("+15551230001", []string{"+15550000000"}, "nobody's")); code != 200 {
		t.Errorf("to nobody: %d", code)
	}
	// Malformed events.
	for _, b := range []string{`{`, `{"data":{"event_type":"message.received","payload":{"id":"x"}}}`} {
		if code, _ := e.tx.PostWebhook(t, e.hook(), []byte(b)); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", b, code)
		}
	}
}

// TestFinalized: message.finalized per recipient: delivered is a receipt,
// delivery_failed and sending_failed are errors explained; sent and
// queued say nothing; a report that comes before the message's record is
// kept until it is written.
func TestFinalized(t *testing.T) {
	e := start(t, 2*time.Second)
	for i, tt := range []struct {
		status, code string
		want         gateways.Status
	}{
		{"delivered", "", gateways.Status{Ref: "f-delivered", Key: "f-delivered", User: user, Contact: contact, State: bus.StateDelivered}},
		{"delivery_failed", "40001", gateways.Status{Ref: "f-delivery_failed", Key: "f-delivery_failed", User: user, Contact: contact, State: bus.StateFailed,
			Code: "40001", Reason: "the message was not delivered: the destination is a landline or a number that takes no texts"}},
		{"sending_failed", "40015", gateways.Status{Ref: "f-sending_failed", Key: "f-sending_failed", User: user, Contact: contact, State: bus.StateFailed,
			Code: "40015", Reason: "the message was not delivered: Telnyx's spam filter refused it"}},
	} {
		if _, err := e.a.Send(t.Context(), outbound("f-"+tt.status, "hello "+tt.status)); err != nil {
			t.Fatal(err)
		}
		m := e.tx.Messages()[i]
		if code, _ := e.tx.PostWebhook(t, e.hook(), e.tx.Sent(m)); code != 200 {
			t.Fatalf("message.sent answered %d", code)
		}
		if code, _ := e.tx.PostWebhook(t, e.hook(), e.tx.Finalized(m, tt.status, tt.code)); code != 200 {
			t.Fatalf("message.finalized answered %d", code)
		}
		var got []gateways.Status
		proctest.Poll(5*time.Second, 10*time.Millisecond, func() bool { got = e.host.Reports(); return len(got) > i })
		if len(got) != i+1 || got[i] != tt.want {
			t.Fatalf("reports %+v, want …%+v", got, tt.want)
		}
	}
	// Before the record: Telnyx answers late, the report comes first.
	e.tx.FailNext(telnyxtest.Failure{Accept: true, Delay: 500 * time.Millisecond})
	done := make(chan error, 1)
	go func() { _, err := e.a.Send(context.Background(), outbound("early", "early")); done <- err }()
	m := e.tx.WaitMessages(t, 4, 5*time.Second)[3]
	if code, _ := e.tx.PostWebhook(t, e.hook(), e.tx.Finalized(m, "delivered", "")); code != 200 {
		t.Fatalf("early report answered %d", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.host.WaitReport(t, 5*time.Second, func(s gateways.Status) bool { return s.Ref == "early" && s.State == bus.StateDelivered })
}

func TestConfigValidate(t *testing.T) {
	tx := telnyxtest.Start(t, apiKey)
	good := func() *telnyx.Config { return newConfig(tx, 2*time.Second) }
	if err := good().Validate(); err != nil {
		t.Fatalf("valid: %v", err)
	}
	tests := []struct {
		name   string
		change func(*telnyx.Config)
		want   string
	}{
		{"no key", func(c *telnyx.Config) { c.APIKey = "" }, "api_key: required"},
		{"bad key", func(c *telnyx.Config) { c.APIKey = "short key" }, "api_key: is not a Telnyx API key"},
		{"no public key", func(c *telnyx.Config) { c.PublicKey = "" }, "public_key: required"},
		{"public key not base64", func(c *telnyx.Config) { c.PublicKey = "not base64!" }, "public_key: \"not base64!\" is not base64"},
		{"public key too short", func(c *telnyx.Config) { c.PublicKey = "AAAA" }, "public_key: decodes to 3 bytes"},
		{"no profile", func(c *telnyx.Config) { c.MessagingProfileID = "" }, "messaging_profile_id: required"},
		{"bad profile", func(c *telnyx.Config) { c.MessagingProfileID = "abc" }, "messaging_profile_id: \"abc\" is not"},
		{"bad api_url", func(c *telnyx.Config) { c.APIURL = "127.0.0.1:9091" }, "api_url:"},
		{"tolerance", func(c *telnyx.Config) { c.WebhookTolerance = 0 }, "webhook_tolerance:"},
		{"bad number", func(c *telnyx.Config) { c.Numbers = map[string]string{"5550009999": "alice@localhost"} }, "numbers:"},
		{"mps", func(c *telnyx.Config) { c.MPS = 0 }, "mps:"},
		{"long request_timeout", func(c *telnyx.Config) { c.RequestTimeout = 20 * time.Second }, "a lookup at Telnyx"},
	}
	for _, tt := range tests {
		c := good()
		tt.change(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
		if c.APIKey != "" && err != nil && strings.Contains(err.Error(), c.APIKey) {
			t.Errorf("%s: the error shows the API key", tt.name)
		}
	}
}

// TestGroupText: a group MMS to two users of the gateway invites each to
// the group's room (held until they join); a join gives the occupants,
// the held message with its time, then the subject; a groupchat message
// is one group MMS to every other member, reflected to the sender.
func TestGroupText(t *testing.T) {
	e := start(t, 2*time.Second)
	const bobNumber, friend = "+15550002222", "+15551230001"
	reg := e.a.(gateways.RegistrarProvider).Registrar()
	if err := reg.Assign(t.Context(), "bob@example.com", bobNumber); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.tx.PostWebhook(t, e.hook(), e.tx.ReceivedID("g1", friend, []string{poolNumber, bobNumber}, "hi both")); code != 200 {
		t.Fatalf("webhook answered %d", code)
	}
	room := poolNumber + "," + bobNumber + "," + friend
	for _, u := range []string{"alice@example.com", "bob@example.com"} {
		inv := e.host.WaitDelivered(t, 5*time.Second, func(m gateways.Inbound) bool { return m.Invite != "" && m.To == u })
		if inv.Invite != room || inv.From != friend {
			t.Errorf("invitation %+v, want to %s from %s", inv, room, friend)
		}
	}
	ra := e.a.(gateways.RoomAdapter)
	if !ra.IsRoom(room) || ra.IsRoom(friend) {
		t.Fatal("IsRoom")
	}
	if err := ra.Join(t.Context(), gateways.Join{User: user, Room: room, Nick: "alice"}); err != nil {
		t.Fatal(err)
	}
	subject := e.host.WaitDelivered(t, 5*time.Second, func(m gateways.Inbound) bool { return m.Subject != nil && m.To == user })
	if !strings.Contains(*subject.Subject, friend) {
		t.Errorf("subject %q", *subject.Subject)
	}
	var nicks []string
	for _, o := range e.host.Occupants() {
		nicks = append(nicks, o.Nick)
	}
	if strings.Join(nicks, " ") != bobNumber+" "+friend+" alice" {
		t.Errorf("occupants %v, want the other numbers, then alice", nicks)
	}
	held := e.host.WaitDelivered(t, 5*time.Second, func(m gateways.Inbound) bool { return m.Groupchat && m.Body == "hi both" && m.To == user })
	if held.Nick != friend || held.From != room || held.Delay.IsZero() {
		t.Errorf("held message %+v", held)
	}

	m := gateways.Outbound{ID: "g-out", Key: "g-out", From: user, To: room, Body: "hello group", Groupchat: true, Attempt: 1}
	if _, err := e.a.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	sent := e.tx.Messages()[0]
	if !sent.Group || sent.From != poolNumber || strings.Join(sent.To, ",") != bobNumber+","+friend || sent.Text != "hello group" {
		t.Errorf("Telnyx got %+v", sent)
	}
	e.host.WaitDelivered(t, 5*time.Second, func(m gateways.Inbound) bool { return m.OriginID == "g-out" && m.Nick == "alice" && m.To == user })

	// A correction in the room is a group MMS too, after the prefix.
	ed := gateways.Edit{Outbound: gateways.Outbound{ID: "g-fix", Key: "g-fix", From: user, To: room, Body: "hello all", Groupchat: true, Attempt: 1}}
	if _, err := e.a.(gateways.Editor).Edit(t.Context(), ed); err != nil {
		t.Fatal(err)
	}
	if fix := e.tx.Messages()[1]; !fix.Group || fix.Text != "* hello all" {
		t.Errorf("correction sent as %+v", fix)
	}
}

// TestSettleNeedsItsOwnMessage: the attempt token in webhook_url is not
// covered by Telnyx's signature, so a genuine event of another message
// posted under an attempt's token (a replay within the tolerance) does not
// settle that attempt; the event of its own message does.
func TestSettleNeedsItsOwnMessage(t *testing.T) {
	e := start(t, 300*time.Millisecond)
	if _, err := e.a.Send(t.Context(), outbound("a", "message A")); err != nil {
		t.Fatal(err)
	}
	e.tx.FailNext(telnyxtest.Failure{Accept: true, Delay: time.Second})
	b := outbound("b", "message B")
	if _, err := e.a.Send(t.Context(), b); err == nil {
		t.Fatal("B's first attempt succeeded")
	}
	msgs := e.tx.WaitMessages(t, 2, 5*time.Second)
	hookB := msgs[1].WebhookURL
	if code, _ := e.tx.PostWebhook(t, hookB, e.tx.Sent(msgs[0])); code != 200 {
		t.Fatalf("webhook answered %d", code)
	}
	b.Attempt = 2
	if _, err := e.a.Send(t.Context(), b); err == nil {
		t.Fatal("A's event settled B's attempt")
	}
	if code, _ := e.tx.PostWebhook(t, hookB, e.tx.Sent(msgs[1])); code != 200 {
		t.Fatalf("webhook answered %d", code)
	}
	b.Attempt = 3
	sent, err := e.a.Send(t.Context(), b)
	if err != nil || len(sent.IDs) != 1 || sent.IDs[0] != msgs[1].ID {
		t.Fatalf("after B's own event: %+v, %v; want B's id", sent, err)
	}
	if e.tx.Requests() != 2 {
		t.Errorf("%d create calls, want 2", e.tx.Requests())
	}
}
