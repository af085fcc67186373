package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// Issue #12: ways a message or its failure was lost, doubled or hidden,
// end to end (the real binary, Prosody with offline storage, the fake
// Twilio API). The adapter- and component-level tests name the causes;
// these show what a user sees.
func TestSilentLosses(t *testing.T) {
	t.Parallel()
	e := startSMSOn(t, true)
	tw, alice, bob := e.tw, e.alice, e.bob
	bob.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='reg-1'><query xmlns='jabber:iq:register'/></iq>`)
	if s := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "reg-1" }); s.Type != "result" {
		t.Fatalf("register bob: %s", s.Raw)
	}

	// Clients number stanzas with counters: alice's and bob's message "5"
	// both fail, and both are told (bob's report was once dropped as a
	// repeat of alice's).
	t.Run("same stanza id from two users, both failures told", func(t *testing.T) {
		n := len(tw.Messages())
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='5'><body>alice's five</body></message>`)
		bob.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='5'><body>bob's five</body></message>`)
		for _, m := range tw.WaitMessages(t, n+2, wait)[n:] {
			if code, _ := tw.PostWebhook(t, e.webhook("status"), tw.StatusCallback(m, "undelivered", 30003)); code/100 != 2 {
				t.Fatalf("status webhook answered %d", code)
			}
		}
		for _, c := range []*xmpptest.Client{alice, bob} {
			if s := errorFor(t, c, "5"); !strings.Contains(s.ErrorText, "30003") {
				t.Errorf("%s told %s: %q", c.JID(), s.ErrorCondition, s.ErrorText)
			}
		}
	})

	// A message refused by the provider is sent again when the client
	// retries it under the same id, and Twilio gets it once more.
	t.Run("resend after a refusal is sent", func(t *testing.T) {
		n := len(tw.Messages())
		tw.FailNext(twiliotest.Failure{Status: 400, Code: 21408})
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='retry-1'><body>try me again</body></message>`)
		errorFor(t, alice, "retry-1")
		alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='retry-1'><body>try me again</body></message>`)
		if m := tw.WaitMessages(t, n+1, wait)[n]; m.Body != "try me again" {
			t.Errorf("Twilio got %+v, want the resend", m)
		}
	})

	// A delivery report minutes later finds the sending resource gone:
	// the user still learns of it, at their next login.
	t.Run("late failure told after the resource left", func(t *testing.T) {
		phone := xmpptest.Login(t, e.srv, "alice", "password")
		n := len(tw.Messages())
		phone.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='late-1'><body>are you there?</body></message>`)
		m := tw.WaitMessages(t, n+1, wait)[n]
		if err := phone.Close(); err != nil {
			t.Fatal(err)
		}
		if err := alice.Close(); err != nil { // every resource gone
			t.Fatal(err)
		}
		if code, _ := tw.PostWebhook(t, e.webhook("status"), tw.StatusCallback(m, "undelivered", 30003)); code/100 != 2 {
			t.Fatalf("status webhook answered %d", code)
		}
		later := xmpptest.Login(t, e.srv, "alice", "password")
		s := later.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return s.Type == "chat" && bare(s.From) == friendJID && strings.Contains(s.Raw, "urn:xmppgw:notice:0")
		})
		raw := strings.ReplaceAll(s.Raw, "'", `"`)
		for _, want := range []string{"not delivered", "30003", `id="late-1"`, "urn:xmpp:reply:0", fmt.Sprintf(`to="%s"`, phone.JID())} {
			if !strings.Contains(raw, want) {
				t.Errorf("notice %s lacks %s", s.Raw, want)
			}
		}
	})
}
