package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// TestTwilioAmbiguousTimeout: Twilio accepts a message but answers after the
// client gave up. The retry must find the message at Twilio instead of
// sending a second SMS — and must not mistake an identical earlier text for
// it.
func TestTwilioAmbiguousTimeout(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{smsDomain: "secret"}})
	tw := twiliotest.Start(t, accountSID, authToken)
	cfg := strings.Replace(twilioConfig(srv.ComponentAddr(), tw.URL, "localhost"),
		"      mps: 4\n", "      mps: 100\n      request_timeout: 300ms\n", 1)
	g := startGateway(t, cfg)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")

	tests := []struct {
		name    string
		failure twiliotest.Failure
	}{
		// Stored at once, answered late.
		{"accepted, answer late", twiliotest.Failure{Delay: time.Second, Accept: true}},
		// Still being processed when the client gives up; stored later.
		{"stored after the timeout", twiliotest.Failure{Delay: time.Second}},
	}
	const reconciled = "did reach Twilio; not sending again"
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An identical text, sent normally first, must not count as the
			// timed-out message.
			n := len(tw.Messages())
			alice.SendChat(t, friendJID, "same words")
			tw.WaitMessages(t, n+1, wait)

			tw.FailNext(tt.failure)
			reqs := tw.Requests()
			alice.SendChat(t, friendJID, "same words")
			tw.WaitMessages(t, n+2, wait)
			// The retry asks Twilio (a list call), finds the message and
			// acknowledges it without a create: wait for that, then for a
			// marker, and count what reached Twilio.
			if !poll(wait, func() bool { return strings.Count(g.log.String(), reconciled) == i+1 }) {
				t.Fatalf("the retry never reconciled with Twilio; log:\n%s", g.log.String())
			}
			alice.SendChat(t, friendJID, "marker "+tt.name)
			msgs := tw.WaitMessages(t, n+3, wait)
			copies := 0
			for _, m := range msgs[n:] {
				if m.Body == "same words" {
					copies++
				}
			}
			if copies != 2 {
				t.Errorf("Twilio has %d copies of the two identical messages, want 2 (one each)", copies)
			}
			if creates := tw.Requests() - reqs; creates != 2 {
				t.Errorf("%d create calls for the timed-out message and the marker, want 2", creates)
			}
			for _, raw := range alice.Stanzas() {
				if strings.Contains(raw, `type="error"`) && strings.Contains(raw, friend) {
					t.Errorf("the sender was told of a failure: %s", raw)
				}
			}
		})
	}
}
