package e2e_test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

const (
	domain  = "sandbox.localhost"
	contact = "+15551234567@" + domain
	wait    = 15 * time.Second
)

func bare(j string) string {
	b, _, _ := strings.Cut(j, "/")
	return b
}

// roundTrip sends body to contact and waits for the sandbox's echo from it.
func roundTrip(t *testing.T, c *xmpptest.Client, body string) xmpptest.Stanza {
	t.Helper()
	c.SendChat(t, contact, body)
	return c.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && s.Type == "chat" && bare(s.From) == contact && s.Body == "echo: "+body
	})
}

// metric returns the value of the sample whose name-and-labels text starts
// with prefix (e.g. `xmppgw_component_connected{gateway="sandbox"}`), or -1.
func (g *gw) metric(t *testing.T, prefix string) float64 {
	t.Helper()
	code, body, err := g.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func (g *gw) waitMetric(t *testing.T, prefix string, cond func(float64) bool) float64 {
	t.Helper()
	var v float64
	if !poll(wait, func() bool { v = g.metric(t, prefix); return cond(v) }) {
		t.Fatalf("metric %s: last value %v did not reach the expected value within %v", prefix, v, wait)
	}
	return v
}

func TestEchoProsody(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{domain: "secret"}})
	testEcho(t, srv)
}

func TestEchoEjabberd(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartEjabberd(t, xmpptest.Options{Components: map[string]string{domain: "secret"}})
	testEcho(t, srv)
}

func testEcho(t *testing.T, srv *xmpptest.Server) {
	g := startGateway(t, sandboxConfig(srv.ComponentAddr(), domain, "secret"))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")

	t.Run("echo", func(t *testing.T) {
		s := roundTrip(t, alice, "hello from "+srv.Name())
		if s.To != alice.JID() && bare(s.To) != alice.BareJID() {
			t.Errorf("echo addressed to %q, want alice", s.To)
		}
	})

	t.Run("receipt", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='rcpt-1'><body>with receipt</body><request xmlns='urn:xmpp:receipts'/></message>`)
		alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && bare(s.From) == contact &&
				strings.Contains(s.Raw, "urn:xmpp:receipts") && strings.Contains(s.Raw, "received") && strings.Contains(s.Raw, "rcpt-1")
		})
		roundTripDone(t, alice, "with receipt")
	})

	t.Run("malformed number", func(t *testing.T) {
		alice.SendRaw(t, `<message to='12345@`+domain+`' type='chat' id='bad-1'><body>to nowhere</body></message>`)
		s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && s.Type == "error" && s.ID == "bad-1"
		})
		if s.ErrorCondition != "jid-malformed" || s.ErrorType != "modify" {
			t.Errorf("error = %s/%s, want modify/jid-malformed: %s", s.ErrorType, s.ErrorCondition, s.Raw)
		}
		if !strings.Contains(s.ErrorText, "E.164") || bare(s.From) != "12345@"+domain {
			t.Errorf("error text %q from %q: want an E.164 hint from the contact", s.ErrorText, s.From)
		}
	})

	t.Run("not network messages", func(t *testing.T) {
		before := g.metric(t, `xmppgw_messages_total{direction="out",gateway="sandbox",result="ignored"}`)
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='cs-1'><inactive xmlns='http://jabber.org/protocol/chatstates'/></message>`)
		alice.SendRaw(t, `<message to='`+contact+`' type='chat' id='empty-1'><body>  </body></message>`)
		alice.SendRaw(t, `<message to='`+contact+`' id='rc-1'><received xmlns='urn:xmpp:receipts' id='x'/></message>`)
		// An error stanza must not be answered (no loops).
		alice.SendRaw(t, `<message to='`+contact+`' type='error' id='err-1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
		// The component handles a stream's stanzas in order, so once this
		// echo is back the four above have been dealt with.
		roundTrip(t, alice, "after the non-messages")
		if before < 0 {
			before = 0
		}
		if got := g.metric(t, `xmppgw_messages_total{direction="out",gateway="sandbox",result="ignored"}`); got != before+3 {
			t.Errorf("ignored messages = %v, want %v", got, before+3)
		}
		for _, s := range alice.Stanzas() {
			if strings.Contains(s, "err-1") || strings.Contains(s, "cs-1") || strings.Contains(s, "empty-1") || strings.Contains(s, "echo: </body>") {
				t.Errorf("got a reply to a non-message: %s", s)
			}
		}
	})

	t.Run("message to the gateway itself", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+domain+`' type='chat' id='gw-1'><body>hello gateway</body></message>`)
		s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Type == "error" && s.ID == "gw-1" })
		if s.ErrorCondition != "service-unavailable" || !strings.Contains(s.ErrorText, "+15551234567@"+domain) {
			t.Errorf("got %s", s.Raw)
		}
	})

	iq := func(t *testing.T, to, id, payload string) xmpptest.Stanza {
		t.Helper()
		alice.SendRaw(t, `<iq to='`+to+`' type='get' id='`+id+`'>`+payload+`</iq>`)
		return alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == id })
	}
	t.Run("disco#info gateway", func(t *testing.T) {
		s := iq(t, domain, "disco-1", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
		for _, want := range []string{`category="gateway"`, `type="sms"`, `urn:xmpp:ping`, `http://jabber.org/protocol/disco#info`, `urn:xmpp:receipts`} {
			if s.Type != "result" || !strings.Contains(strings.ReplaceAll(s.Raw, "'", `"`), want) {
				t.Errorf("disco#info lacks %s: %s", want, s.Raw)
			}
		}
	})
	t.Run("disco#info contact", func(t *testing.T) {
		s := iq(t, contact, "disco-2", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
		raw := strings.ReplaceAll(s.Raw, "'", `"`)
		if s.Type != "result" || !strings.Contains(raw, `category="client"`) || !strings.Contains(raw, `type="sms"`) {
			t.Errorf("contact disco#info: %s", s.Raw)
		}
	})
	t.Run("ping", func(t *testing.T) {
		if s := iq(t, domain, "ping-1", `<ping xmlns='urn:xmpp:ping'/>`); s.Type != "result" {
			t.Errorf("ping: %s", s.Raw)
		}
	})
	t.Run("other iq", func(t *testing.T) {
		s := iq(t, domain, "ver-1", `<query xmlns='jabber:iq:version'/>`)
		if s.Type != "error" || s.ErrorCondition != "service-unavailable" {
			t.Errorf("jabber:iq:version: %s", s.Raw)
		}
	})
	t.Run("subscription", func(t *testing.T) {
		// The approval itself reaches only roster-interested resources (RFC
		// 6121 §3.2.3); the contact's available presence reaches every one.
		alice.SendRaw(t, `<presence to='`+contact+`' type='subscribe'/>`)
		alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return s.Kind == "presence" && bare(s.From) == contact && s.Type == ""
		})
	})
	t.Run("metrics", func(t *testing.T) {
		if v := g.metric(t, `xmppgw_component_connected{gateway="sandbox"}`); v != 1 {
			t.Errorf("xmppgw_component_connected = %v, want 1", v)
		}
		if v := g.metric(t, `xmppgw_messages_total{direction="out",gateway="sandbox",result="sent"}`); v < 3 {
			t.Errorf("sent = %v, want >= 3", v)
		}
		if v := g.metric(t, `xmppgw_bus_pending_messages{direction="out",gateway="sandbox",state="waiting"}`); v < 0 {
			t.Errorf("bus pending gauge missing")
		}
	})

	t.Run("shutdown", func(t *testing.T) {
		took := g.stop()
		if took > 5*time.Second {
			t.Errorf("SIGTERM to exit took %v, want under 5 s", took)
		}
		if g.exitErr != nil {
			t.Errorf("exit: %v", g.exitErr)
		}
		if !strings.Contains(g.log.String(), "component stream closed") {
			t.Errorf("no orderly stream close in the log")
		}
	})
}

// roundTripDone waits for the echo of a message already sent.
func roundTripDone(t *testing.T, c *xmpptest.Client, body string) {
	t.Helper()
	c.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return s.Kind == "message" && s.Type == "chat" && bare(s.From) == contact && s.Body == "echo: "+body
	})
}

// TestProsodyRestart: the component reconnects by itself, /readyz follows the
// stream, and messages flow again.
func TestProsodyRestart(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{domain: "secret"}})
	g := startGateway(t, sandboxConfig(srv.ComponentAddr(), domain, "secret"))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")
	roundTrip(t, alice, "before restart")

	srv.Stop(t)
	body := g.waitHTTP("/readyz", http.StatusServiceUnavailable, `gateways.sandbox`, wait)
	t.Logf("while down: %s", body)
	g.waitLog("component stream lost", wait)

	srv.Start(t)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, 45*time.Second)
	alice = xmpptest.Login(t, srv, "alice", "password")
	roundTrip(t, alice, "after restart")
	if n := strings.Count(g.log.String(), "component stream lost"); n != 1 {
		t.Errorf("logged the loss %d times, want once", n)
	}
}

// TestWrongSecret: a clear error, 503 with the reason, retries that back off,
// and a process that keeps running.
func TestWrongSecret(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{domain: "secret"}})
	g := startGateway(t, sandboxConfig(srv.ComponentAddr(), domain, "not-the-secret"))

	g.waitLog("rejected the handshake", wait)
	body := g.waitHTTP("/readyz", http.StatusServiceUnavailable, "not-authorized", wait)
	if !strings.Contains(body, "gateways.sandbox") || !strings.Contains(body, "secret") {
		t.Errorf("readyz reason should name the gateway and the secret: %s", body)
	}
	const failures = `xmppgw_component_connect_failures_total{gateway="sandbox"}`
	g.waitMetric(t, failures, func(v float64) bool { return v >= 1 })
	start := time.Now()
	first := g.metric(t, failures)
	g.waitMetric(t, failures, func(v float64) bool { return v >= first+3 })
	// Three waits with exponential backoff from 0.5 s and jitter in [d/2, d]
	// take at least 0.25+0.5+1 s; a tight loop would take milliseconds.
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("3 retries took %v: not backing off", took)
	}
	if n := strings.Count(g.log.String(), "rejected the handshake"); n != 1 {
		t.Errorf("the same failure was logged %d times, want once (per state change)", n)
	}
	if !g.running() {
		t.Fatalf("xmppgw exited: %v", g.exitErr)
	}
}
