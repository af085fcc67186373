package scenario

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Twilio side both suites set up: the gateway's SMS domain and its
// account at the fake Twilio, alice's number (hers in every Config), and
// the friend on the other end of both numbered series.
const (
	SMSDomain   = "sms.localhost"
	AccountSID  = "AC00000000000000000000000000000000"
	AuthToken   = "0123456789abcdef0123456789abcdef"
	AliceNumber = "+15550009999"
	Friend      = "+15551230001"
	FriendJID   = Friend + "@" + SMSDomain
	// Conversations is how many friends the fault suite's outbound series
	// goes to, round robin (OutboundTo): a message waiting for its retry
	// holds its own conversation only, as a gateway with many users sees
	// it; one conversation would make every retry wait for the one before.
	Conversations = 8
	// WebhookPath is where the sms gateway of a Config takes Twilio's
	// webhooks, below its http.public_url.
	WebhookPath = "/twilio/sms/sms"
	// The Telnyx side, for a Config with TelnyxAPI: the account's key and
	// messaging profile, and where Telnyx's webhooks go.
	TelnyxKey         = "KEY0123456789ABCDEF"
	TelnyxProfile     = "40017a5c-0000-4000-8000-000000000001"
	TelnyxWebhookPath = "/telnyx/sms/webhook"
)

// Config is the xmppgw configuration the suites' gateway processes run:
// the Twilio gateway of the e2e tests on SMSDomain, with alice's static
// number, no per-user quota and an mps that does not throttle the run, and
// optionally a sandbox gateway beside it. The optional fields left zero
// leave their settings out, so that each suite's file says only what it
// sets.
type Config struct {
	// Role is the file's role; "" writes none (every role in one process).
	Role string
	// XMPPServer is where the components connect (xmpp.server): the tap.
	XMPPServer string
	// BusURL is an external NATS (bus.url); without it the embedded
	// server stores in BusDataDir (bus.data_dir).
	BusURL, BusDataDir string
	// BusReplicas is bus.replicas; 0 leaves the default.
	BusReplicas int
	// Listen is http.listen; PublicURL is http.public_url, the base of
	// the webhook URLs the gateway expects to be signed for (in a split
	// deployment, the ingress' URL in every process' file).
	Listen, PublicURL string
	// TwilioAPI is the fake Twilio's URL (twilio.api_url).
	TwilioAPI string
	// TelnyxAPI, when set, makes the sms gateway adapter: telnyx, at the
	// fake Telnyx at this URL whose webhook public key is TelnyxPublicKey,
	// instead of Twilio.
	TelnyxAPI, TelnyxPublicKey string
	// RequestTimeout is the provider's request_timeout; 0 leaves the default.
	RequestTimeout time.Duration
	// SandboxDomain, when set, adds a sandbox gateway on that domain.
	SandboxDomain string
}

// YAML is the configuration file.
func (c Config) YAML() string {
	var b strings.Builder
	if c.Role != "" {
		fmt.Fprintf(&b, "role: %s\n", c.Role)
	}
	fmt.Fprintf(&b, "xmpp:\n  server: %s\nbus:\n", c.XMPPServer)
	if c.BusURL != "" {
		fmt.Fprintf(&b, "  url: %s\n", c.BusURL)
	} else {
		fmt.Fprintf(&b, "  data_dir: %s\n", c.BusDataDir)
	}
	if c.BusReplicas > 0 {
		fmt.Fprintf(&b, "  replicas: %d\n", c.BusReplicas)
	}
	fmt.Fprintf(&b, `http:
  listen: %s
  public_url: %s
log:
  level: info
gateways:
  sms:
    domain: %s
    secret: secret
`, c.Listen, c.PublicURL, SMSDomain)
	if c.TelnyxAPI != "" {
		fmt.Fprintf(&b, `    adapter: telnyx
    quota:
      messages: 0
    telnyx:
      api_key: %s
      public_key: %s
      messaging_profile_id: %s
      api_url: %s
      default_region: US
      mps: 10000
`, TelnyxKey, c.TelnyxPublicKey, TelnyxProfile, c.TelnyxAPI)
	} else {
		fmt.Fprintf(&b, `    adapter: twilio
    quota:
      messages: 0
    twilio:
      account_sid: %s
      auth_token: %s
      api_url: %s
      default_region: US
      mps: 10000
`, AccountSID, AuthToken, c.TwilioAPI)
	}
	if c.RequestTimeout > 0 {
		fmt.Fprintf(&b, "      request_timeout: %s\n", c.RequestTimeout)
	}
	fmt.Fprintf(&b, "      numbers:\n        \"%s\": alice@localhost\n", AliceNumber)
	if c.SandboxDomain != "" {
		fmt.Fprintf(&b, `  sandbox:
    domain: %s
    secret: secret
    adapter: sandbox
    quota:
      messages: 0
`, c.SandboxDomain)
	}
	return b.String()
}

// Write writes the configuration as xmppgw.yaml in dir and returns the
// file's path; it fails the test if it cannot.
func (c Config) Write(t testing.TB, dir string) string {
	t.Helper()
	file := filepath.Join(dir, "xmppgw.yaml")
	if err := os.WriteFile(file, []byte(c.YAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// Get fetches url (a process' /readyz or /metrics) and returns the status
// and the body. The timeout is short: a process that cannot answer within
// it counts as not answering, and the callers poll.
func Get(url string) (status int, body string, err error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// SumMetric sums the samples of the metric name in a Prometheus text
// exposition whose labels contain every one of labels
// (`direction="out"`…). samples is how many matched; ok is false when one
// of them does not parse, and the sum is then 0.
func SumMetric(exposition, name string, labels ...string) (sum float64, samples int, ok bool) {
	for line := range strings.SplitSeq(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, 0, false
		}
		sum += v
		samples++
	}
	return sum, samples, true
}

// OutboundTo is the JID message i of the Out series goes to: friend
// 1 + i mod Conversations (Friend is friend 1).
func OutboundTo(i int) string { return OutboundToOf(i, Conversations) }

// OutboundToOf is OutboundTo over n conversations (n = 1: all to Friend).
func OutboundToOf(i, n int) string {
	return fmt.Sprintf("+1555123%04d@%s", 1+i%n, SMSDomain)
}
