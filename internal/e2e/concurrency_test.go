package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// concurrencyConfig is the Twilio gateway with max_concurrency set and a
// sending rate high enough that only concurrency limits it.
func concurrencyConfig(componentAddr, apiURL string, maxConcurrency int) string {
	cfg := twilioConfig(componentAddr, apiURL, "localhost")
	cfg = strings.Replace(cfg, "    adapter: twilio\n", fmt.Sprintf("    adapter: twilio\n    max_concurrency: %d\n", maxConcurrency), 1)
	return strings.Replace(cfg, "mps: 4", "mps: 10000", 1)
}

// concurrencyRun sends n messages from alice to contacts different
// contacts through a provider that takes latency per request and refuses
// (429) more than limit at once. It returns when all n reached the fake.
func concurrencyRun(t testing.TB, maxConcurrency, limit, n, contacts int, latency time.Duration) (*twiliotest.Server, time.Duration) {
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{smsDomain: "secret"},
		Users:      map[string]string{"alice": "password"},
	})
	tw := twiliotest.Start(t, accountSID, authToken)
	tw.SetLatency(latency)
	tw.SetConcurrencyLimit(limit)
	g := startGateway(t, concurrencyConfig(srv.ComponentAddr(), tw.URL, maxConcurrency))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")
	began := time.Now()
	for i := range n {
		alice.SendChat(t, fmt.Sprintf("+1555123%04d@%s", i%contacts, smsDomain), fmt.Sprintf("c%d", i))
	}
	tw.WaitMessages(t, n, 2*time.Minute)
	return tw, time.Since(began)
}

// max_concurrency is never exceeded, so a provider with a concurrency
// limit never answers 429; sends share pooled connections (one handshake
// per connection, not per message); nothing is lost or sent twice.
func TestMaxConcurrency(t *testing.T) {
	t.Parallel()
	const maxConc, n = 4, 80
	tw, _ := concurrencyRun(t, maxConc, maxConc, n, 20, 50*time.Millisecond)
	if th := tw.Throttled(); th != 0 {
		t.Errorf("the provider refused %d sends for concurrency: max_concurrency %d was exceeded", th, maxConc)
	}
	if peak := tw.MaxInFlight(); peak > maxConc || peak < 2 {
		t.Errorf("peak concurrent sends %d, want 2..%d", peak, maxConc)
	}
	if c := tw.Connections(); c > maxConc {
		t.Errorf("%d connections to the provider for %d sends; want at most one per concurrent send (%d)", c, n, maxConc)
	}
	seen := map[string]int{}
	for _, m := range tw.Messages() {
		seen[m.Body]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("c%d", i)]; c != 1 {
			t.Errorf("message c%d sent %d times", i, c)
		}
	}
}
