package twilio_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/twilio"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

const (
	user    = "alice@example.com/phone"
	contact = "+15551234567"
)

// env is one adapter, started, with its webhooks served, and alice holding
// poolNumber.
type env struct {
	tw   *twiliotest.Server
	a    gateways.Adapter
	host *gatewaytest.Host
	url  string // where the webhooks are served (http.public_url)
}

// setup is what an option of start may change before the adapter starts.
type setup struct {
	cfg  *twilio.Config
	host gateways.Host // what the adapter is started with; e.host unless changed
}

func start(t *testing.T, requestTimeout time.Duration, opts ...func(*setup)) *env {
	t.Helper()
	info, _ := gateways.Lookup(twilio.ID)
	e := &env{tw: twiliotest.Start(t, accountSID, authToken), host: gatewaytest.NewHost()}
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	cfg := info.NewConfig().(*twilio.Config)
	cfg.AccountSID, cfg.AuthToken, cfg.APIURL = accountSID, authToken, e.tw.URL
	cfg.Pool = []string{poolNumber}
	cfg.MPS = 100
	cfg.RequestTimeout = requestTimeout
	s := &setup{cfg: cfg, host: e.host}
	for _, o := range opts {
		o(s)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	regs, msgs := buckets(t)
	a, err := info.New(gateways.Params{
		Name: "sms", Domain: "sms.example.com", Config: cfg, PublicURL: srv.URL,
		Registrations: regs, Messages: msgs,
	})
	if err != nil {
		t.Fatal(err)
	}
	handler = a.(gateways.HTTPProvider).HTTPHandler()
	if err := a.Start(t.Context(), s.host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	if _, err := a.(gateways.RegistrarProvider).Registrar().Register(t.Context(), gateways.BareJID(user)); err != nil {
		t.Fatal(err)
	}
	e.a = a
	return e
}

func outbound(key, body string) gateways.Outbound {
	return gateways.Outbound{ID: key, Key: key, From: user, To: contact, Body: body, Receipt: true, Attempt: 1}
}

// TestRetryFindsQueuedMessage: Twilio accepted the message but the answer
// never came (the client timed out), and the message is still queued
// behind the number's send rate, so Twilio shows no date_sent yet. The
// retry must find it — not a queued identical text of another stanza — and
// not create a second SMS.
func TestRetryFindsQueuedMessage(t *testing.T) {
	e := start(t, 300*time.Millisecond)
	e.tw.HoldSending() // a long queue: nothing is sent during the test

	ctx := t.Context()
	if _, err := e.a.Send(ctx, outbound("earlier", "same words")); err != nil {
		t.Fatalf("earlier message: %v", err)
	}
	e.tw.FailNext(twiliotest.Failure{Accept: true, Delay: time.Second})
	m := outbound("ambiguous", "same words")
	if _, err := e.a.Send(ctx, m); err == nil {
		t.Fatal("the first attempt succeeded although Twilio answered after request_timeout")
	}
	m.Attempt = 2
	sent, err := e.a.Send(ctx, m)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	got := e.tw.Messages()
	if len(got) != 2 || e.tw.Requests() != 2 {
		t.Fatalf("Twilio has %d messages after %d create calls, want 2 and 2: the queued message was sent again", len(got), e.tw.Requests())
	}
	if !got[1].Sent.IsZero() {
		t.Error("the fake sent a held message: the test proves nothing")
	}
	// The retry settled the first attempt as sent: what it became is the
	// message Twilio accepted then, not the identical earlier text.
	if want := (gateways.Sent{IDs: []string{got[1].SID}, Text: "same words"}); !sameSent(sent, want) {
		t.Errorf("the retry returned %+v, want %+v", sent, want)
	}
}

func sameSent(a, b gateways.Sent) bool { return slices.Equal(a.IDs, b.IDs) && a.Text == b.Text }

// TestRetryReadsLaterPages: the conversation went on after the attempt
// whose answer was lost, past a page of Twilio's list; the retry reads on
// to the next page and finds it.
func TestRetryReadsLaterPages(t *testing.T) {
	e := start(t, 300*time.Millisecond)
	e.tw.HoldSending()
	ctx := t.Context()
	e.tw.FailNext(twiliotest.Failure{Accept: true, Delay: time.Second})
	m := outbound("ambiguous", "sought")
	if _, err := e.a.Send(ctx, m); err == nil {
		t.Fatal("the first attempt succeeded although Twilio answered after request_timeout")
	}
	const later = 230 // more than a page
	for i := range later {
		if _, err := e.a.Send(ctx, outbound(fmt.Sprint("later-", i), fmt.Sprint("later ", i))); err != nil {
			t.Fatal(err)
		}
	}
	m.Attempt = 2
	sent, err := e.a.Send(ctx, m)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	msgs := e.tw.Messages()
	if len(msgs) != later+1 {
		t.Fatalf("Twilio has %d messages, want %d: the retry did not find the first attempt", len(msgs), later+1)
	}
	if want := (gateways.Sent{IDs: []string{msgs[0].SID}, Text: "sought"}); !sameSent(sent, want) {
		t.Errorf("the retry returned %+v, want %+v", sent, want)
	}
}
