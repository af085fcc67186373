package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/xmppgw/xmppgw/internal/telnyxtest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// mixedConfig is one SMS domain with numbers at Twilio (alice's) and at
// Telnyx (the pool bob registers from).
func mixedConfig(componentAddr, twilioURL, telnyxURL, publicKey string) string {
	return fmt.Sprintf(`xmpp:
  server: %s
bus:
  data_dir: %%DATA%%
http:
  listen: %%HTTP%%
  public_url: http://%%HTTP%%
gateways:
  sms:
    domain: sms.localhost
    secret: secret
    adapter: sms
    allowed_domains: [localhost]
    admins: [admin@localhost]
    sms:
      default_region: US
      mps: 4
      twilio:
        account_sid: %s
        auth_token: %s
        api_url: %s
        numbers:
          "%s": alice@localhost
      telnyx:
        api_key: %s
        public_key: %s
        messaging_profile_id: %s
        api_url: %s
        pool: ["%s"]
`, componentAddr, accountSID, authToken, twilioURL, aliceNum, telnyxKey, publicKey, telnyxProfile, telnyxURL, poolNum)
}

// TestSMSTwoProviders: a Twilio number and a Telnyx number used by two
// users of one domain at the same time; each sends and receives through
// its own provider; registration hands out a Telnyx pool number; the
// admin command shows the providers.
func TestSMSTwoProviders(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{smsDomain: "secret"},
		Users:      map[string]string{"alice": "password", "bob": "password", "admin": "password"},
	})
	tw := twiliotest.Start(t, accountSID, authToken)
	tx := telnyxtest.Start(t, telnyxKey)
	g := startGateway(t, mixedConfig(srv.ComponentAddr(), tw.URL, tx.URL, tx.PublicKey))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")
	bob := xmpptest.Login(t, srv, "bob", "password")
	admin := xmpptest.Login(t, srv, "admin", "password")

	bob.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='mreg-1'><query xmlns='jabber:iq:register'/></iq>`)
	if s := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "mreg-1" }); s.Type != "result" {
		t.Fatalf("register: %s", s.Raw)
	}

	// Both at once, several each.
	const each = 5
	var wg sync.WaitGroup
	for _, c := range []struct {
		who *xmpptest.Client
		tag string
	}{{alice, "alice"}, {bob, "bob"}} {
		wg.Go(func() {
			for i := range each {
				c.who.SendChat(t, friendJID, fmt.Sprintf("%s %d", c.tag, i))
			}
		})
	}
	wg.Wait()
	twMsgs := tw.WaitMessages(t, each, wait)
	txMsgs := tx.WaitMessages(t, each, wait)
	for _, m := range twMsgs {
		if m.From != aliceNum || !strings.HasPrefix(m.Body, "alice ") {
			t.Errorf("Twilio got %s from %s", m.Body, m.From)
		}
	}
	for _, m := range txMsgs {
		if m.From != poolNum || !strings.HasPrefix(m.Text, "bob ") {
			t.Errorf("Telnyx got %s from %s", m.Text, m.From)
		}
	}
	if len(tw.Messages()) != each || len(tx.Messages()) != each {
		t.Errorf("Twilio has %d, Telnyx %d; want %d each", len(tw.Messages()), len(tx.Messages()), each)
	}

	// Inbound through each provider's own webhook.
	tw.PostWebhook(t, g.httpURL+"/sms/sms/twilio/sms", tw.InboundSMS(friend, aliceNum, "to alice via twilio"))
	chatFrom(t, alice, friendJID, "to alice via twilio")
	if code, _ := tx.PostWebhook(t, g.httpURL+"/sms/sms/telnyx/webhook", tx.Received(friend, []string{poolNum}, "to bob via telnyx")); code != 200 {
		t.Fatalf("telnyx webhook answered %d", code)
	}
	chatFrom(t, bob, friendJID, "to bob via telnyx")
	// Receipts come back through each.
	alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='mr-a'><body>receipt a</body><request xmlns='urn:xmpp:receipts'/></message>`)
	bob.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='mr-b'><body>receipt b</body><request xmlns='urn:xmpp:receipts'/></message>`)
	ma := tw.WaitMessages(t, each+1, wait)[each]
	mb := tx.WaitMessages(t, each+1, wait)[each]
	tw.PostWebhook(t, g.httpURL+"/sms/sms/twilio/status", tw.StatusCallback(ma, "delivered", 0))
	tx.PostWebhook(t, g.httpURL+"/sms/sms/telnyx/webhook", tx.Finalized(mb, "delivered", ""))
	for _, c := range []struct {
		who *xmpptest.Client
		id  string
	}{{alice, "mr-a"}, {bob, "mr-b"}} {
		c.who.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return strings.Contains(s.Raw, "urn:xmpp:receipts") && strings.Contains(s.Raw, c.id)
		})
	}

	admin.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='mcmd-1'><command xmlns='http://jabber.org/protocol/commands' node='sms-numbers' action='execute'/></iq>`)
	s := admin.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "mcmd-1" })
	for _, want := range []string{aliceNum + "  Twilio  alice@localhost", poolNum + "  Telnyx  bob@localhost"} {
		if !strings.Contains(s.Raw, want) {
			t.Errorf("sms-numbers lacks %q: %s", want, s.Raw)
		}
	}
}
