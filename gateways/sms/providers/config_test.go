package providers_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/config"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/sms/providers"
	"github.com/xmppgw/xmppgw/gateways/telnyx"
	"github.com/xmppgw/xmppgw/gateways/twilio"
)

// issue3 is issue 3's contract configuration, as it stands there: every
// adapter: twilio gateway written to it must keep loading unchanged.
const issue3 = `xmpp:
  server: 127.0.0.1:5347
bus:
  data_dir: ./data
http:
  listen: 127.0.0.1:8080
  public_url: http://127.0.0.1:8080
gateways:
  sms:
    domain: sms.localhost
    secret: secret
    adapter: twilio
    allowed_domains: [localhost]
    twilio:
      account_sid: AC00000000000000000000000000000000
      auth_token: 0123456789abcdef0123456789abcdef
      api_url: http://127.0.0.1:9090
      default_region: US
      numbers:
        "+15550009999": alice@localhost
`

// issue15 is issue 15's contract configuration, the public key filled in.
const issue15 = `xmpp:
  server: 127.0.0.1:5347
bus:
  data_dir: ./data
http:
  listen: 127.0.0.1:8080
  public_url: http://127.0.0.1:8080
gateways:
  sms:
    domain: sms.localhost
    secret: secret
    adapter: telnyx
    allowed_domains: [localhost]
    telnyx:
      api_key: KEY0123456789ABCDEF
      public_key: PUBLICKEY
      messaging_profile_id: 40017a5c-0000-4000-8000-000000000001
      api_url: http://127.0.0.1:9091
      numbers:
        "+15550009999": alice@localhost
`

const mixed = `http:
  listen: 127.0.0.1:8080
gateways:
  sms:
    domain: sms.localhost
    secret: secret
    adapter: sms
    sms:
      default_region: US
      mps: 2
      twilio:
        account_sid: AC00000000000000000000000000000000
        auth_token: 0123456789abcdef0123456789abcdef
        numbers:
          "+15550009999": alice@localhost
        pool: ["+15550001111"]
      telnyx:
        api_key: KEY0123456789ABCDEF
        public_key: PUBLICKEY
        messaging_profile_id: 40017a5c-0000-4000-8000-000000000001
        numbers:
          "+15550008888": bob@localhost
        pool: ["+15550002222"]
`

func publicKey(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pub)
}

func load(t *testing.T, yaml string) (*config.Config, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "xmppgw.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load(config.Options{File: file, Env: []string{},
		AdapterSchema: func(id string) (func() any, bool) {
			info, ok := gateways.Lookup(id)
			return info.NewConfig, ok
		},
		KnownAdapters: gateways.IDs()})
}

// construct builds the gateway's adapter as the binary does.
func construct(t *testing.T, c *config.Config) interface{ ProviderOf(string) string } {
	t.Helper()
	g := c.Gateways["sms"]
	info, _ := gateways.Lookup(g.Adapter)
	a, err := info.New(gateways.Params{Name: "sms", Domain: g.Domain, Config: g.AdapterConfig, PublicURL: c.HTTP.PublicURL})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a.(interface{ ProviderOf(string) string })
}

// TestContractConfigs: issue 3's adapter: twilio configuration loads as it
// is, and issue 15's adapter: telnyx one; each number is at its provider.
func TestContractConfigs(t *testing.T) {
	c, err := load(t, issue3)
	if err != nil {
		t.Fatalf("issue 3's contract config: %v", err)
	}
	tc := c.Gateways["sms"].AdapterConfig.(*twilio.Config)
	if tc.AccountSID != "AC00000000000000000000000000000000" || tc.APIURL != "http://127.0.0.1:9090" || tc.DefaultRegion != "US" ||
		tc.Numbers["+15550009999"] != "alice@localhost" || tc.MPS != 1 || tc.MaxSegments != 10 || tc.RequestTimeout != 8*time.Second || tc.CorrectionPrefix != "* " {
		t.Errorf("decoded %+v", tc)
	}
	if g := construct(t, c); g.ProviderOf("+15550009999") != twilio.ID {
		t.Errorf("alice's number is at %s", g.ProviderOf("+15550009999"))
	}

	c, err = load(t, strings.Replace(issue15, "PUBLICKEY", publicKey(t), 1))
	if err != nil {
		t.Fatalf("issue 15's contract config: %v", err)
	}
	xc := c.Gateways["sms"].AdapterConfig.(*telnyx.Config)
	if xc.APIKey != "KEY0123456789ABCDEF" || xc.MessagingProfileID != "40017a5c-0000-4000-8000-000000000001" || xc.APIURL != "http://127.0.0.1:9091" ||
		xc.WebhookTolerance != telnyx.DefaultWebhookTolerance || xc.Numbers["+15550009999"] != "alice@localhost" {
		t.Errorf("decoded %+v", xc)
	}
	if g := construct(t, c); g.ProviderOf("+15550009999") != telnyx.ID {
		t.Errorf("alice's number is at %s", g.ProviderOf("+15550009999"))
	}
}

// TestMixedConfig: adapter sms holds numbers at both providers; each
// number is at the one that lists it, others at the default.
func TestMixedConfig(t *testing.T) {
	c, err := load(t, strings.Replace(mixed, "PUBLICKEY", publicKey(t), 1))
	if err != nil {
		t.Fatal(err)
	}
	mc := c.Gateways["sms"].AdapterConfig.(*providers.Config)
	if mc.MPS != 2 || mc.Twilio.APIURL != twilio.DefaultAPIURL || mc.Telnyx.APIURL != telnyx.DefaultAPIURL || mc.Telnyx.WebhookTolerance != telnyx.DefaultWebhookTolerance {
		t.Errorf("decoded %+v", mc)
	}
	g := construct(t, c)
	for n, want := range map[string]string{
		"+15550009999": twilio.ID, "+15550001111": twilio.ID,
		"+15550008888": telnyx.ID, "+15550002222": telnyx.ID,
		"+15557777777": twilio.ID, // listed nowhere: the default
	} {
		if got := g.ProviderOf(n); got != want {
			t.Errorf("%s is at %s, want %s", n, got, want)
		}
	}

	for _, tt := range []struct {
		name, from, to, want string
	}{
		{"an unknown key", "      twilio:\n", "      twilio_off:\n", "twilio_off"},
		{"a number at both", `"+15550008888": bob@localhost`, `"+15550009999": bob@localhost`, "is listed under twilio too"},
		{"a user at both", `"+15550008888": bob@localhost`, `"+15550008888": alice@localhost`, "one number per user"},
		{"bad default", "      mps: 2\n", "      mps: 2\n      default: nexmo\n", "default: \"nexmo\" is not a provider"},
		{"telnyx key missing", "        api_key: KEY0123456789ABCDEF\n", "", "sms.telnyx.api_key: required"},
	} {
		_, err := load(t, strings.Replace(strings.Replace(mixed, "PUBLICKEY", publicKey(t), 1), tt.from, tt.to, 1))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}
