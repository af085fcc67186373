package e2e_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/telnyxtest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

const (
	telnyxKey     = "KEY0123456789ABCDEF"
	telnyxProfile = "40017a5c-0000-4000-8000-000000000001"
)

// telnyxConfig is issue 15's contract config plus a pool and an admin.
func telnyxConfig(componentAddr, apiURL, publicKey string) string {
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
    adapter: telnyx
    allowed_domains: [localhost]
    admins: [admin@localhost]
    telnyx:
      api_key: %s
      public_key: %s
      messaging_profile_id: %s
      api_url: %s
      numbers:
        "%s": alice@localhost
      pool: ["%s"]
`, componentAddr, telnyxKey, publicKey, telnyxProfile, apiURL, aliceNum, poolNum)
}

type telnyxEnv struct {
	srv          *xmpptest.Server
	tx           *telnyxtest.Server
	g            *gw
	alice, admin *xmpptest.Client
}

func (e *telnyxEnv) hook() string { return e.g.httpURL + "/telnyx/sms/webhook" }

func startTelnyx(t *testing.T) *telnyxEnv {
	t.Helper()
	e := &telnyxEnv{}
	e.srv = xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{smsDomain: "secret"},
		Users:      map[string]string{"alice": "password", "bob": "password", "admin": "password"},
	})
	e.tx = telnyxtest.Start(t, telnyxKey)
	e.tx.ProfileID = telnyxProfile
	e.g = startGateway(t, telnyxConfig(e.srv.ComponentAddr(), e.tx.URL, e.tx.PublicKey))
	e.g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	e.alice = xmpptest.Login(t, e.srv, "alice", "password")
	e.admin = xmpptest.Login(t, e.srv, "admin", "password")
	return e
}

// TestTelnyx: SMS and MMS both ways over Telnyx through Prosody, webhooks
// signed the Telnyx way, provider errors, receipts.
func TestTelnyx(t *testing.T) {
	t.Parallel()
	e := startTelnyx(t)
	tx, alice := e.tx, e.alice

	t.Run("outbound SMS", func(t *testing.T) {
		alice.SendChat(t, friendJID, "hello over telnyx")
		m := tx.WaitMessages(t, 1, wait)[0]
		if m.From != aliceNum || len(m.To) != 1 || m.To[0] != friend || m.Text != "hello over telnyx" || m.ProfileID != telnyxProfile {
			t.Errorf("sent %+v", m)
		}
		if !strings.HasPrefix(m.WebhookURL, e.hook()+"?attempt=") {
			t.Errorf("webhook_url = %q", m.WebhookURL)
		}
	})

	t.Run("outbound MMS", func(t *testing.T) {
		const u = "https://upload.example.org/abc/cat.jpg"
		n := len(tx.Messages())
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='tmms-1'><body>`+u+`</body><x xmlns='jabber:x:oob'><url>`+u+`</url></x></message>`)
		m := tx.WaitMessages(t, n+1, wait)[n]
		if len(m.MediaURLs) != 1 || m.MediaURLs[0] != u || m.Text != "" {
			t.Errorf("MMS sent as %+v", m)
		}
	})

	t.Run("inbound SMS", func(t *testing.T) {
		if code, body := tx.PostWebhook(t, e.hook(), tx.Received(friend, []string{aliceNum}, "hi alice from telnyx")); code != 200 {
			t.Fatalf("webhook answered %d %q", code, body)
		}
		chatFrom(t, alice, friendJID, "hi alice from telnyx")
	})

	t.Run("inbound MMS", func(t *testing.T) {
		img := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 100)
		tx.PostWebhook(t, e.hook(), tx.Received(friend, []string{aliceNum}, "a picture", tx.AddMedia("image/png", img)))
		chatFrom(t, alice, friendJID, "a picture")
		s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return bare(s.From) == friendJID && strings.Contains(s.Raw, "jabber:x:oob")
		})
		if !strings.HasPrefix(s.Body, e.g.httpURL+"/telnyx/sms/media/") || strings.Contains(s.Body, tx.URL) {
			t.Fatalf("media link %q is not an opaque gateway URL", s.Body)
		}
		resp, err := http.Get(s.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, img) || resp.Header.Get("Content-Type") != "image/png" {
			t.Errorf("media: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(got))
		}
	})

	t.Run("forged and replayed webhooks", func(t *testing.T) {
		forged := tx.Received(friend, []string{aliceNum}, "forged")
		other := telnyxtest.Start(t, telnyxKey)
		now := time.Now().Unix()
		for name, c := range map[string]struct {
			ts  int64
			sig string
		}{
			"another key": {now, other.Sign(now, forged)},
			"unsigned":    {now, ""},
			"replayed":    {now - 3600, tx.Sign(now-3600, forged)},
		} {
			code, _, err := telnyxtest.PostSigned(t.Context(), e.hook(), c.ts, c.sig, forged)
			if err != nil || code != http.StatusForbidden {
				t.Errorf("%s: answered %d (%v), want 403", name, code, err)
			}
		}
		tx.PostWebhook(t, e.hook(), tx.Received(friend, []string{aliceNum}, "genuine after forged"))
		chatFrom(t, alice, friendJID, "genuine after forged")
		for _, raw := range alice.Stanzas() {
			if strings.Contains(raw, ">forged<") {
				t.Errorf("a refused webhook was delivered: %s", raw)
			}
		}
	})

	t.Run("repeated event delivered once", func(t *testing.T) {
		ev := tx.ReceivedID("dup-1", friend, []string{aliceNum}, "only once over telnyx")
		for range 2 {
			if code, _ := tx.PostWebhook(t, e.hook(), ev); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
		}
		tx.PostWebhook(t, e.hook(), tx.Received(friend, []string{aliceNum}, "after the telnyx repeat"))
		chatFrom(t, alice, friendJID, "after the telnyx repeat")
		if n := strings.Count(strings.Join(alice.Stanzas(), "\n"), ">only once over telnyx<"); n != 1 {
			t.Errorf("delivered %d times, want once", n)
		}
	})

	// 429 and 5xx are retried: one message at Telnyx, the user told nothing.
	for _, f := range []telnyxtest.Failure{{Status: 429, Code: "10011"}, {Status: 500, Code: "10007"}, {Status: 503, Code: "10007"}} {
		t.Run(fmt.Sprint(f.Status, " then success"), func(t *testing.T) {
			n, reqs := len(tx.Messages()), tx.Requests()
			tx.FailNext(f)
			id := fmt.Sprint("t-retry-", f.Status)
			body := fmt.Sprint("after a ", f.Status)
			alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='`+id+`'><body>`+body+`</body></message>`)
			msgs := tx.WaitMessages(t, n+1, wait)
			// A marker behind it: once it is at Telnyx, nothing more of the
			// retried message can come.
			alice.SendChat(t, friendJID, "marker "+id)
			msgs = tx.WaitMessages(t, n+2, wait)
			if copies := countText(msgs[n:], body); copies != 1 {
				t.Fatalf("%d copies at Telnyx, want 1", copies)
			}
			if got := tx.Requests() - reqs; got != 3 {
				t.Errorf("%d create calls, want 3 (the %d, the retry, the marker)", got, f.Status)
			}
			for _, raw := range alice.Stanzas() {
				if strings.Contains(raw, id) && strings.Contains(raw, "error") {
					t.Errorf("the user heard about a retried failure: %s", raw)
				}
			}
		})
	}

	t.Run("40300 opted out", func(t *testing.T) {
		tx.FailNext(telnyxtest.Failure{Status: 400, Code: "40300"})
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='tstop-1'><body>are you there?</body></message>`)
		s := errorFor(t, alice, "tstop-1")
		if s.ErrorCondition != "not-allowed" || !strings.Contains(s.ErrorText, "STOP") || !strings.Contains(s.ErrorText, "40300") {
			t.Errorf("got %s: %q", s.ErrorCondition, s.ErrorText)
		}
	})

	t.Run("receipt on delivered, error on delivery_failed", func(t *testing.T) {
		n := len(tx.Messages())
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='trcpt-1'><body>did you get this?</body><request xmlns='urn:xmpp:receipts'/></message>`)
		m := tx.WaitMessages(t, n+1, wait)[n]
		tx.PostWebhook(t, e.hook(), tx.Sent(m))
		tx.PostWebhook(t, e.hook(), tx.Finalized(m, "delivered", ""))
		alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return bare(s.From) == friendJID && strings.Contains(s.Raw, "urn:xmpp:receipts") && strings.Contains(s.Raw, "trcpt-1")
		})
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='tfail-1'><body>to a landline</body></message>`)
		m = tx.WaitMessages(t, n+2, wait)[n+1]
		tx.PostWebhook(t, e.hook(), tx.Finalized(m, "delivery_failed", "40001"))
		s := errorFor(t, alice, "tfail-1")
		if !strings.Contains(s.ErrorText, "40001") || !strings.Contains(s.ErrorText, "landline") {
			t.Errorf("got %s: %q", s.ErrorCondition, s.ErrorText)
		}
	})
}

func countText(msgs []telnyxtest.Message, text string) int {
	n := 0
	for _, m := range msgs {
		if m.Text == text {
			n++
		}
	}
	return n
}
