package e2e_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

const (
	smsDomain  = "sms.localhost"
	accountSID = "AC00000000000000000000000000000000"
	authToken  = "0123456789abcdef0123456789abcdef"
	aliceNum   = "+15550009999"
	poolNum    = "+15550001111"
	friend     = "+15551230001"
	friendJID  = friend + "@" + smsDomain
)

// twilioConfig is the contract config plus a pool, an admin and a
// tight max_segments.
func twilioConfig(componentAddr, apiURL, allowed string) string {
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
    adapter: twilio
    allowed_domains: [%s]
    admins: [admin@localhost]
    twilio:
      account_sid: %s
      auth_token: %s
      api_url: %s
      default_region: US
      mps: 4
      max_segments: 3
      numbers:
        "%s": alice@localhost
      pool: ["%s"]
`, componentAddr, allowed, accountSID, authToken, apiURL, aliceNum, poolNum)
}

type smsEnv struct {
	srv        *xmpptest.Server
	tw         *twiliotest.Server
	g          *gw
	alice, bob *xmpptest.Client
	admin      *xmpptest.Client
}

func (e *smsEnv) webhook(path string) string { return e.g.httpURL + "/twilio/sms/" + path }

func startSMS(t *testing.T) *smsEnv {
	t.Helper()
	return startSMSOn(t, false)
}

// startSMSOn is startSMS with Prosody's offline storage on or off.
func startSMSOn(t *testing.T, offline bool) *smsEnv {
	t.Helper()
	e := &smsEnv{}
	e.srv = xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{smsDomain: "secret"},
		Users:      map[string]string{"alice": "password", "bob": "password", "admin": "password"},
		Offline:    offline,
	})
	e.tw = twiliotest.Start(t, accountSID, authToken)
	e.g = startGateway(t, twilioConfig(e.srv.ComponentAddr(), e.tw.URL, "localhost"))
	e.g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	e.alice = xmpptest.Login(t, e.srv, "alice", "password")
	e.bob = xmpptest.Login(t, e.srv, "bob", "password")
	e.admin = xmpptest.Login(t, e.srv, "admin", "password")
	return e
}

// errorFor waits for the error bounce of the stanza with id.
func errorFor(t *testing.T, c *xmpptest.Client, id string) xmpptest.Stanza {
	t.Helper()
	return c.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Type == "error" && s.ID == id })
}

func chatFrom(t *testing.T, c *xmpptest.Client, from, body string) xmpptest.Stanza {
	t.Helper()
	return c.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && s.Type == "chat" && bare(s.From) == from && s.Body == body
	})
}

func TestTwilio(t *testing.T) {
	t.Parallel()
	e := startSMS(t)
	tw, alice := e.tw, e.alice

	// 3. Outbound: From = the user's number, To, Body, StatusCallback.
	t.Run("outbound SMS", func(t *testing.T) {
		alice.SendChat(t, friendJID, "hello from xmpp")
		m := tw.WaitMessages(t, 1, wait)[0]
		if m.From != aliceNum || m.To != friend || m.Body != "hello from xmpp" {
			t.Errorf("sent %+v", m)
		}
		if want := e.webhook("status"); m.StatusCallback != want {
			t.Errorf("StatusCallback = %q, want %q", m.StatusCallback, want)
		}
	})

	t.Run("outbound MMS", func(t *testing.T) {
		const u = "https://upload.example.org/abc/cat.jpg"
		n := len(tw.Messages())
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='mms-1'><body>`+u+`</body><x xmlns='jabber:x:oob'><url>`+u+`</url></x></message>`)
		m := tw.WaitMessages(t, n+1, wait)[n]
		if len(m.MediaURLs) != 1 || m.MediaURLs[0] != u || m.Body != "" {
			t.Errorf("MMS sent as %+v; want MediaUrl %s and no body", m, u)
		}
	})

	t.Run("too many segments", func(t *testing.T) {
		// 200 characters, 204 UTF-16 units: UCS-2, 4 segments of 67.
		body := strings.Repeat("ж", 196) + strings.Repeat("😀", 4)
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='long-1'><body>`+body+`</body></message>`)
		s := errorFor(t, alice, "long-1")
		if s.ErrorCondition != "not-acceptable" || !strings.Contains(s.ErrorText, "4 SMS segments") {
			t.Errorf("got %s: %q", s.ErrorCondition, s.ErrorText)
		}
	})

	t.Run("unregistered sender", func(t *testing.T) {
		e.bob.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='bob-1'><body>hi</body></message>`)
		s := errorFor(t, e.bob, "bob-1")
		if s.ErrorCondition != "registration-required" || !strings.Contains(s.ErrorText, "register") {
			t.Errorf("got %s: %q", s.ErrorCondition, s.ErrorText)
		}
	})

	// 4. Provider errors.
	t.Run("429 then success", func(t *testing.T) {
		failed := e.g.metric(t, `xmppgw_messages_total{direction="out",gateway="sms",result="failed"}`)
		n, reqs := len(tw.Messages()), tw.Requests()
		tw.FailNext(twiliotest.Failure{Status: 429, Code: 20429})
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='rl-1'><body>after a 429</body></message>`)
		msgs := tw.WaitMessages(t, n+1, wait)
		if got := len(msgs) - n; got != 1 || msgs[n].Body != "after a 429" {
			t.Fatalf("%d messages sent after the 429, want 1", got)
		}
		if tw.Requests()-reqs != 2 {
			t.Errorf("%d API calls, want 2 (the 429 and the retry)", tw.Requests()-reqs)
		}
		if v := e.g.metric(t, `xmppgw_messages_total{direction="out",gateway="sms",result="failed"}`); v != failed {
			t.Errorf("failed count went from %v to %v", failed, v)
		}
		for _, raw := range alice.Stanzas() {
			if strings.Contains(raw, "rl-1") {
				t.Errorf("the user heard about a retried failure: %s", raw)
			}
		}
	})

	// XEP-0308: a phone cannot edit a text; the correction goes as a new
	// one, marked with correction_prefix (default "* ").
	t.Run("correction", func(t *testing.T) {
		n := len(tw.Messages())
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='typo-1'><body>see you at 8</body></message>`)
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='typo-2'><body>see you at 9</body>`+
			`<replace id='typo-1' xmlns='urn:xmpp:message-correct:0'/></message>`)
		msgs := tw.WaitMessages(t, n+2, wait)[n:]
		if msgs[0].Body != "see you at 8" || msgs[1].Body != "* see you at 9" {
			t.Errorf("phone got %q then %q, want the text then \"* see you at 9\"", msgs[0].Body, msgs[1].Body)
		}
	})

	// XEP-0424 as Conversations sends it: SMS cannot unsend, and the
	// fallback text never reaches the phone.
	t.Run("retraction refused", func(t *testing.T) {
		n := tw.Requests()
		alice.SendRaw(t, `<message type='chat' to='`+friendJID+`' id='retract-1'>`+
			`<retract id='rcpt-t1' xmlns='urn:xmpp:message-retract:1'/>`+
			`<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>`+
			`<body>This person attempted to retract a previous message, but it's unsupported by your client.</body></message>`)
		s := errorFor(t, alice, "retract-1")
		if s.ErrorCondition != "feature-not-implemented" || !strings.Contains(s.ErrorText, "cannot unsend") {
			t.Errorf("got %s: %q", s.ErrorCondition, s.ErrorText)
		}
		if tw.Requests() != n {
			t.Errorf("%d requests reached Twilio", tw.Requests()-n)
		}
	})

	t.Run("500 then success", func(t *testing.T) {
		n := len(tw.Messages())
		tw.FailNext(twiliotest.Failure{Status: 500, Code: 20500})
		alice.SendChat(t, friendJID, "after a 500")
		if m := tw.WaitMessages(t, n+1, wait)[n]; m.Body != "after a 500" {
			t.Errorf("sent %+v", m)
		}
	})

	t.Run("21610 STOP", func(t *testing.T) {
		tw.FailNext(twiliotest.Failure{Status: 400, Code: 21610})
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='stop-1'><body>are you there?</body></message>`)
		s := errorFor(t, alice, "stop-1")
		if !strings.Contains(s.ErrorText, "STOP") || !strings.Contains(s.ErrorText, "21610") || bare(s.From) != friendJID {
			t.Errorf("got %s from %s: %q", s.ErrorCondition, s.From, s.ErrorText)
		}
	})

	t.Run("other 4xx carries Twilio's code and message", func(t *testing.T) {
		tw.FailNext(twiliotest.Failure{Status: 400, Code: 21408})
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='region-1'><body>abroad</body></message>`)
		s := errorFor(t, alice, "region-1")
		if !strings.Contains(s.ErrorText, "21408") || !strings.Contains(s.ErrorText, "Permission to send an SMS") {
			t.Errorf("got %s: %q", s.ErrorCondition, s.ErrorText)
		}
	})

	t.Run("mps queues, never drops", func(t *testing.T) {
		n := len(tw.Messages())
		for i := range 3 {
			alice.SendChat(t, friendJID, fmt.Sprintf("paced %d", i))
		}
		msgs := tw.WaitMessages(t, n+3, wait)[n:]
		for i := 1; i < len(msgs); i++ {
			// mps 4: a token every 250 ms; allow for clock granularity.
			if gap := msgs[i].Created.Sub(msgs[i-1].Created); gap < 200*time.Millisecond {
				t.Errorf("sends %d and %d were %v apart; mps 4 allows one per 250 ms", i-1, i, gap)
			}
		}
	})

	// 5. Inbound.
	t.Run("inbound SMS", func(t *testing.T) {
		code, body := tw.PostWebhook(t, e.webhook("sms"), tw.InboundSMS(friend, aliceNum, "hi alice"))
		if code != http.StatusOK || !strings.Contains(body, "<Response") {
			t.Fatalf("webhook answered %d %q", code, body)
		}
		s := chatFrom(t, alice, friendJID, "hi alice")
		if bare(s.To) != "alice@localhost" {
			t.Errorf("delivered to %s", s.To)
		}
	})

	t.Run("bad signature", func(t *testing.T) {
		params := tw.InboundSMS(friend, aliceNum, "forged")
		code, _ := twiliotest.PostSigned(t, e.webhook("sms"), twiliotest.Sign("wrong-token", e.webhook("sms"), params), params)
		if code != http.StatusForbidden {
			t.Fatalf("forged webhook answered %d, want 403", code)
		}
		code, _ = twiliotest.PostSigned(t, e.webhook("sms"), "", params)
		if code != http.StatusForbidden {
			t.Fatalf("unsigned webhook answered %d, want 403", code)
		}
		tw.PostWebhook(t, e.webhook("sms"), tw.InboundSMS(friend, aliceNum, "genuine after forged"))
		chatFrom(t, alice, friendJID, "genuine after forged")
		for _, raw := range alice.Stanzas() {
			if strings.Contains(raw, ">forged<") {
				t.Errorf("the forged message was delivered: %s", raw)
			}
		}
	})

	t.Run("repeated MessageSid delivered once", func(t *testing.T) {
		params := tw.InboundSMS(friend, aliceNum, "only once")
		for range 2 {
			if code, _ := tw.PostWebhook(t, e.webhook("sms"), params); code != http.StatusOK {
				t.Fatalf("webhook answered %d", code)
			}
		}
		tw.PostWebhook(t, e.webhook("sms"), tw.InboundSMS(friend, aliceNum, "after the repeat"))
		chatFrom(t, alice, friendJID, "after the repeat")
		if n := strings.Count(strings.Join(alice.Stanzas(), "\n"), ">only once<"); n != 1 {
			t.Errorf("delivered %d times, want once", n)
		}
	})

	t.Run("inbound MMS", func(t *testing.T) {
		img := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 100)
		mediaURL := tw.AddMedia("image/png", img)
		tw.PostWebhook(t, e.webhook("sms"), tw.InboundSMS(friend, aliceNum, "look at this", mediaURL))
		chatFrom(t, alice, friendJID, "look at this")
		s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return bare(s.From) == friendJID && strings.Contains(s.Raw, "jabber:x:oob")
		})
		link := s.Body
		if !strings.HasPrefix(link, e.g.httpURL+"/twilio/sms/media/") || strings.Contains(link, accountSID) {
			t.Fatalf("media link %q is not an opaque gateway URL", link)
		}
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, img) || resp.Header.Get("Content-Type") != "image/png" {
			t.Errorf("media: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(got))
		}
		if tw.MediaFetches() != 1 {
			t.Errorf("media fetched %d times from the provider", tw.MediaFetches())
		}
		if code, _, _ := e.g.get("/twilio/sms/media/AAAAAAAAAAAAAAAAAAAAAA.png"); code != http.StatusNotFound {
			t.Errorf("a guessed media URL answered %d", code)
		}
	})

	t.Run("short code and alphanumeric senders", func(t *testing.T) {
		tw.PostWebhook(t, e.webhook("sms"), tw.InboundSMS("12345", aliceNum, "your code is 42"))
		chatFrom(t, alice, "12345@"+smsDomain, "your code is 42")
		tw.PostWebhook(t, e.webhook("sms"), tw.InboundSMS("ACME Bank", aliceNum, "balance low"))
		s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Body == "balance low" })
		if want := `acme\20bank@` + smsDomain; bare(s.From) != want {
			t.Errorf("alphanumeric sender arrived from %q, want %q (XEP-0106)", s.From, want)
		}
		alice.SendRaw(t, `<message to='`+bare(s.From)+`' type='chat' id='acme-1'><body>thanks</body></message>`)
		if s := errorFor(t, alice, "acme-1"); s.ErrorCondition != "not-acceptable" || !strings.Contains(s.ErrorText, "cannot receive") {
			t.Errorf("reply to alphanumeric: %s %q", s.ErrorCondition, s.ErrorText)
		}
		alice.SendRaw(t, `<message to='12345@`+smsDomain+`' type='chat' id='short-1'><body>STOP</body></message>`)
		if s := errorFor(t, alice, "short-1"); s.ErrorCondition != "not-acceptable" || !strings.Contains(s.ErrorText, "short code") {
			t.Errorf("reply to short code: %s %q", s.ErrorCondition, s.ErrorText)
		}
	})

	// 6. Delivery status.
	t.Run("receipt on delivered", func(t *testing.T) {
		n := len(tw.Messages())
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='rcpt-t1'><body>did you get this?</body><request xmlns='urn:xmpp:receipts'/></message>`)
		m := tw.WaitMessages(t, n+1, wait)[n]
		if code, _ := tw.PostWebhook(t, e.webhook("status"), tw.StatusCallback(m, "sent", 0)); code/100 != 2 {
			t.Fatalf("status webhook answered %d", code)
		}
		tw.PostWebhook(t, e.webhook("status"), tw.StatusCallback(m, "delivered", 0))
		alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return bare(s.From) == friendJID && strings.Contains(s.Raw, "urn:xmpp:receipts") && strings.Contains(s.Raw, "rcpt-t1")
		})
	})

	t.Run("error on undelivered", func(t *testing.T) {
		n := len(tw.Messages())
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='undeliv-1'><body>to a phone that is off</body></message>`)
		m := tw.WaitMessages(t, n+1, wait)[n]
		tw.PostWebhook(t, e.webhook("status"), tw.StatusCallback(m, "undelivered", 30003))
		s := errorFor(t, alice, "undeliv-1")
		if !strings.Contains(s.ErrorText, "30003") || !strings.Contains(s.ErrorText, "unreachable") {
			t.Errorf("got %s: %q", s.ErrorCondition, s.ErrorText)
		}
	})

	// 2. Addresses: XEP-0100 jabber:iq:gateway.
	t.Run("jabber:iq:gateway", func(t *testing.T) {
		alice.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='gw-t1'><query xmlns='jabber:iq:gateway'><prompt>(555) 123-4567</prompt></query></iq>`)
		s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "gw-t1" })
		if s.Type != "result" || !strings.Contains(s.Raw, "+15551234567@"+smsDomain) {
			t.Errorf("got %s", s.Raw)
		}
		alice.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='gw-t2'><query xmlns='jabber:iq:gateway'><prompt>+44 20 7946 0958</prompt></query></iq>`)
		if s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "gw-t2" }); !strings.Contains(s.Raw, "+442079460958@"+smsDomain) {
			t.Errorf("got %s", s.Raw)
		}
		alice.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='gw-t3'><query xmlns='jabber:iq:gateway'><prompt>call me</prompt></query></iq>`)
		if s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "gw-t3" }); s.ErrorCondition != "jid-malformed" || s.ErrorText == "" {
			t.Errorf("got %s", s.Raw)
		}
	})

	// 7. Registration from the pool, ad-hoc commands.
	t.Run("registration", func(t *testing.T) {
		bob := e.bob
		bob.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='reg-1'><query xmlns='jabber:iq:register'/></iq>`)
		if s := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "reg-1" }); s.Type != "result" {
			t.Fatalf("register: %s", s.Raw)
		}
		bob.SendRaw(t, `<iq to='`+smsDomain+`' type='get' id='reg-2'><query xmlns='jabber:iq:register'/></iq>`)
		if s := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "reg-2" }); !strings.Contains(s.Raw, "<registered") || !strings.Contains(s.Raw, poolNum) {
			t.Fatalf("register form: %s", s.Raw)
		}
		n := len(tw.Messages())
		bob.SendChat(t, friendJID, "bob has a number now")
		if m := tw.WaitMessages(t, n+1, wait)[n]; m.From != poolNum {
			t.Errorf("bob sent from %q, want %s", m.From, poolNum)
		}
		tw.PostWebhook(t, e.webhook("sms"), tw.InboundSMS(friend, poolNum, "hi bob"))
		chatFrom(t, bob, friendJID, "hi bob")

		// The pool has one number: a second user gets resource-constraint.
		e.admin.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='reg-3'><query xmlns='jabber:iq:register'/></iq>`)
		if s := e.admin.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "reg-3" }); s.ErrorCondition != "resource-constraint" {
			t.Errorf("second registration: %s", s.Raw)
		}

		e.admin.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='cmd-1'><command xmlns='http://jabber.org/protocol/commands' node='list-registrations' action='execute'/></iq>`)
		s := e.admin.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "cmd-1" })
		for _, want := range []string{"alice@localhost", aliceNum, "bob@localhost", poolNum} {
			if !strings.Contains(s.Raw, want) {
				t.Errorf("list-registrations lacks %s: %s", want, s.Raw)
			}
		}
		alice.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='cmd-2'><command xmlns='http://jabber.org/protocol/commands' node='show-number' action='execute'/></iq>`)
		if s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "cmd-2" }); !strings.Contains(s.Raw, aliceNum) {
			t.Errorf("show-number: %s", s.Raw)
		}

		bob.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='reg-4'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
		if s := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "reg-4" }); s.Type != "result" {
			t.Fatalf("unregister: %s", s.Raw)
		}
		bob.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='bob-2'><body>gone</body></message>`)
		if s := errorFor(t, bob, "bob-2"); s.ErrorCondition != "registration-required" {
			t.Errorf("after unregistering: %s", s.Raw)
		}
	})
}

// TestTwilioForeignSender: users of other domains are refused; the gateway is
// not an open relay.
func TestTwilioForeignSender(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{smsDomain: "secret"}})
	tw := twiliotest.Start(t, accountSID, authToken)
	g := startGateway(t, twilioConfig(srv.ComponentAddr(), tw.URL, "example.org"))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")
	alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='foreign-1'><body>relay me</body></message>`)
	s := errorFor(t, alice, "foreign-1")
	if s.ErrorCondition != "forbidden" || !strings.Contains(s.ErrorText, "example.org") {
		t.Errorf("got %s: %q", s.ErrorCondition, s.ErrorText)
	}
	if tw.Requests() != 0 {
		t.Errorf("%d requests reached Twilio", tw.Requests())
	}
}

// TestTwilioStateSurvivesRestart: registrations live in JetStream KV.
func TestTwilioStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{smsDomain: "secret"}})
	tw := twiliotest.Start(t, accountSID, authToken)
	dir, addr := t.TempDir(), proctest.FreeAddr(t)
	cfg := twilioConfig(srv.ComponentAddr(), tw.URL, "localhost")
	g := startGatewayIn(t, dir, addr, cfg)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	bob := xmpptest.Login(t, srv, "bob", "password")
	bob.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='reg-1'><query xmlns='jabber:iq:register'/></iq>`)
	if s := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "reg-1" }); s.Type != "result" {
		t.Fatalf("register: %s", s.Raw)
	}
	if g.stop(); g.exitErr != nil {
		t.Fatalf("first gateway exit: %v", g.exitErr)
	}

	g = startGatewayIn(t, dir, addr, cfg)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	bob.SendChat(t, friendJID, "still registered?")
	if m := tw.WaitMessages(t, 1, wait)[0]; m.From != poolNum {
		t.Errorf("after restart bob sent from %q, want %s", m.From, poolNum)
	}
}
