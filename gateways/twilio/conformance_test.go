package twilio_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/twilio"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

const (
	accountSID = "AC00000000000000000000000000000000"
	authToken  = "0123456789abcdef0123456789abcdef"
	poolNumber = "+15550001111"
)

// Twilio is the one network we cannot run here, so the adapter talks to
// twiliotest's fake, which copies Twilio's API; an outage is the fake
// refusing connections.
func TestConformance(t *testing.T) {
	info, ok := gateways.Lookup(twilio.ID)
	if !ok {
		t.Fatal("the twilio adapter is not registered")
	}
	tw := twiliotest.Start(t, accountSID, authToken)
	regs, msgs := buckets(t)

	gatewaytest.Run(t, gatewaytest.Harness{
		Info: info,
		New: func(t *testing.T) gateways.Adapter {
			cfg := info.NewConfig().(*twilio.Config)
			cfg.AccountSID, cfg.AuthToken, cfg.APIURL = accountSID, authToken, tw.URL
			cfg.Pool = []string{poolNumber}
			cfg.MPS = 100
			// Short, so that a retry after an outage (whose outcome the
			// adapter cannot know) is checked at Twilio soon.
			cfg.RequestTimeout = 2 * time.Second
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a, err := info.New(gateways.Params{
				Name: "sms", Domain: "sms.example.com", Config: cfg, PublicURL: "https://gw.example.com",
				Registrations: regs, Messages: msgs,
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return a
		},
		Contact: "+15551234567",
		Invalid: "not-a-number",
		// Users send from a number of their own.
		Prepare: func(t *testing.T, a gateways.Adapter) {
			user := gateways.BareJID(gatewaytest.DefaultUser)
			if _, err := a.(gateways.RegistrarProvider).Registrar().Register(t.Context(), user); err != nil {
				t.Fatalf("Register(%s): %v", user, err)
			}
		},
		Disconnect: func(t *testing.T) {
			if err := tw.SetUnreachable(true); err != nil {
				t.Fatal(err)
			}
		},
		Reconnect: func(t *testing.T) {
			if err := tw.SetUnreachable(false); err != nil {
				t.Fatal(err)
			}
		},
		// A correction reaches the phone after its prefix, a reply under
		// its quote line: the text the user wrote ends the SMS.
		Received: func(_ *testing.T, body string) bool {
			for _, m := range tw.Messages() {
				if strings.HasSuffix(m.Body, body) {
					return true
				}
			}
			return false
		},
	})
}

// buckets are the KV buckets of an embedded bus of the test's own.
func buckets(t *testing.T) (regs, msgs jetstream.KeyValue) {
	t.Helper()
	ctx := t.Context()
	b := bustest.Open(t)
	var err error
	if regs, err = b.JetStream().KeyValue(ctx, bus.BucketRegistrations); err != nil {
		t.Fatal(err)
	}
	if msgs, err = b.JetStream().KeyValue(ctx, bus.BucketMessages); err != nil {
		t.Fatal(err)
	}
	return regs, msgs
}
