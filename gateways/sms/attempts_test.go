package sms_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/sms"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

// stub is a provider whose sends time out (the outcome unknown) and which
// can tell nothing afterwards, or finds the message, as set.
type stub struct {
	sends   int
	found   string // Find's answer; "" with unknown set: ErrOutcomeUnknown
	unknown bool
}

func (s *stub) ID() string                { return "stub" }
func (s *stub) Name() string              { return "Stub" }
func (s *stub) Bind(string, *sms.Gateway) {}
func (s *stub) Handler() http.Handler     { return http.NotFoundHandler() }
func (s *stub) Explain(string) string     { return "" }
func (s *stub) Close()                    {}
func (s *stub) Fetch(context.Context, string) (*http.Response, error) {
	return nil, errors.New("no media")
}

func (s *stub) Send(context.Context, sms.Message) (string, error) {
	s.sends++
	return "", context.DeadlineExceeded // the request left; no answer
}

func (s *stub) Find(context.Context, sms.Attempt) (string, error) {
	if s.unknown {
		return "", sms.ErrOutcomeUnknown
	}
	return s.found, nil
}

// TestUnknownOutcome: after a send whose outcome is unknown, the retry
// asks the provider; found, it is not sent again; when the provider
// cannot tell, the sender is told so (permanent remote-server-timeout
// saying it may still be delivered) and nothing is sent again.
func TestUnknownOutcome(t *testing.T) {
	for _, tt := range []struct {
		name    string
		p       *stub
		wantErr bool
	}{
		{"found", &stub{found: "ID1"}, false},
		{"unknown", &stub{unknown: true}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := bustest.Open(t)
			regs, _ := b.JetStream().KeyValue(t.Context(), bus.BucketRegistrations)
			msgs, _ := b.JetStream().KeyValue(t.Context(), bus.BucketMessages)
			set := sms.DefaultSettings()
			set.RequestTimeout = 100 * time.Millisecond
			g, err := sms.New(sms.Options{ID: "stub", Settings: set,
				Params:   gateways.Params{Name: "sms", Domain: "sms.example.com", PublicURL: "https://gw.example", Registrations: regs, Messages: msgs},
				Accounts: []sms.Account{{Provider: tt.p, Numbers: sms.Holdings{Numbers: map[string]string{"+15550009999": "alice@example.com"}}}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Start(t.Context(), gatewaytest.NewHost()); err != nil {
				t.Fatal(err)
			}
			m := gateways.Outbound{ID: "m1", Key: "m1", From: "alice@example.com/phone", To: "+15551234567", Body: "hi", Attempt: 1}
			if _, err := g.Send(t.Context(), m); err == nil || errors.Is(err, gateways.ErrPermanent) {
				t.Fatalf("first attempt: %v, want a transient error", err)
			}
			m.Attempt = 2
			sent, err := g.Send(t.Context(), m)
			if tt.p.sends != 1 {
				t.Errorf("%d sends, want 1: the retry sent again", tt.p.sends)
			}
			if !tt.wantErr {
				if err != nil || len(sent.IDs) != 1 || sent.IDs[0] != "ID1" {
					t.Errorf("retry = %+v, %v; want the message found as ID1", sent, err)
				}
				return
			}
			var ge *gateways.Error
			if !errors.As(err, &ge) || !ge.Permanent || ge.Condition != gateways.RemoteServerTimeout || !strings.Contains(ge.Text, "may still be delivered") {
				t.Errorf("retry = %v, want a permanent remote-server-timeout saying it may still be delivered", err)
			}
		})
	}
}
