package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/spf13/pflag"

	"github.com/xmppgw/xmppgw/config"
)

// twilioConfig stands in for an adapter's typed config block.
type twilioConfig struct {
	AccountSID          string            `koanf:"account_sid"`
	AuthToken           string            `koanf:"auth_token" secret:"true"`
	AuthTokenFile       string            `koanf:"auth_token_file"`
	MessagingServiceSID string            `koanf:"messaging_service_sid"`
	APIURL              string            `koanf:"api_url"`
	DefaultRegion       string            `koanf:"default_region"`
	Numbers             map[string]string `koanf:"numbers"`
	Pool                []string          `koanf:"pool"`
	MPS                 int               `koanf:"mps"`
	MaxSegments         int               `koanf:"max_segments"`
	Limits              struct {
		PerSecond int `koanf:"per_second"`
	} `koanf:"limits"`
}

func (c *twilioConfig) Validate() error {
	var errs []error
	if c.AccountSID == "" {
		errs = append(errs, errors.New("account_sid: is required"))
	}
	if c.AuthToken == "" {
		errs = append(errs, errors.New("auth_token: is required"))
	}
	if c.MPS < 1 {
		errs = append(errs, errors.New("mps: must be at least 1"))
	}
	return errors.Join(errs...)
}

func schema(id string) (func() any, bool) {
	switch id {
	case "sandbox":
		return nil, true
	case "twilio":
		return func() any { return &twilioConfig{MPS: 1, MaxSegments: 10} }, true
	}
	return nil, false
}

const sandboxYAML = `
xmpp:
  server: 127.0.0.1:5347
bus:
  data_dir: ./data
http:
  listen: 127.0.0.1:8080
  public_url: http://127.0.0.1:8080
log:
  level: info
gateways:
  sandbox:
    domain: sandbox.localhost
    secret: secret
    adapter: sandbox
`

const twilioYAML = `
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

// minimalYAML is the smallest valid file, for tests that add to it.
const minimalYAML = `
gateways:
  sandbox:
    domain: sandbox.localhost
    secret: secret
    adapter: sandbox
`

type input struct {
	yaml string   // file content; "" means no file
	env  []string // nil means an empty environment
	args []string // command line
}

// wantLoadError checks that Load failed with an error naming every piece of
// want and none of not.
func wantLoadError(t *testing.T, err error, want, not []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load succeeded, want error containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	for _, n := range not {
		if strings.Contains(err.Error(), n) {
			t.Errorf("error contains %q:\n%v", n, err)
		}
	}
}

func load(t *testing.T, in input) (*config.Config, error) {
	t.Helper()
	fset := pflag.NewFlagSet("xmppgw", pflag.ContinueOnError)
	config.RegisterFlags(fset)
	if err := fset.Parse(in.args); err != nil {
		t.Fatalf("parse flags %q: %v", in.args, err)
	}
	opts := config.Options{
		Env:           in.env,
		Flags:         fset,
		AdapterSchema: schema,
		KnownAdapters: []string{"twilio", "sandbox"},
	}
	if opts.Env == nil {
		opts.Env = []string{}
	}
	if in.yaml != "" && config.ConfigFile(fset) == "" {
		opts.File = writeFile(t, "config.yaml", in.yaml)
	}
	return config.Load(opts)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadExamples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *config.Config)
	}{
		{
			name: "sandbox",
			yaml: sandboxYAML,
			check: func(t *testing.T, c *config.Config) {
				g := c.Gateways["sandbox"]
				if g.AdapterConfig != nil {
					t.Errorf("AdapterConfig = %#v, want nil", g.AdapterConfig)
				}
				if got := g.ServerAddr(*c); got != "127.0.0.1:5347" {
					t.Errorf("ServerAddr = %q", got)
				}
				if c.HTTP.PublicURL != "http://127.0.0.1:8080" {
					t.Errorf("public_url = %q", c.HTTP.PublicURL)
				}
			},
		},
		{
			name: "twilio",
			yaml: twilioYAML,
			check: func(t *testing.T, c *config.Config) {
				tc, ok := c.Gateways["sms"].AdapterConfig.(*twilioConfig)
				if !ok {
					t.Fatalf("AdapterConfig = %T, want *twilioConfig", c.Gateways["sms"].AdapterConfig)
				}
				if got := tc.Numbers["+15550009999"]; got != "alice@localhost" {
					t.Errorf("numbers[+15550009999] = %q, want alice@localhost (numbers = %v)", got, tc.Numbers)
				}
				if tc.AccountSID != "AC00000000000000000000000000000000" || tc.DefaultRegion != "US" {
					t.Errorf("adapter config = %+v", tc)
				}
				if tc.MPS != 1 || tc.MaxSegments != 10 {
					t.Errorf("constructor defaults lost: mps=%d max_segments=%d", tc.MPS, tc.MaxSegments)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, input{yaml: tc.yaml})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func TestLoadLayers(t *testing.T) {
	t.Parallel()
	secretFile := writeFile(t, "secret", "fromfile\r\n")
	tokenFile := writeFile(t, "token", "tokenfromfile\n")
	flagFile := writeFile(t, "flag.yaml", minimalYAML+"xmpp:\n  server: xmpp.example.com:5347\n")

	for _, tc := range []struct {
		name string
		in   input
		get  func(c *config.Config) any
		want any
	}{
		{
			name: "default xmpp.server",
			in:   input{yaml: minimalYAML},
			get:  func(c *config.Config) any { return c.XMPP.Server },
			want: "127.0.0.1:5347",
		},
		{
			name: "default bus",
			in:   input{yaml: minimalYAML},
			get:  func(c *config.Config) any { return c.Bus },
			want: config.Bus{DataDir: "./data", Replicas: 1, SyncAlways: true, IDMapTTL: 720 * time.Hour},
		},
		{
			name: "default log",
			in:   input{yaml: minimalYAML},
			get:  func(c *config.Config) any { return c.Log },
			want: config.Log{Level: "info", Format: "text"},
		},
		{
			name: "default allowed_domains is the parent domain",
			in:   input{yaml: minimalYAML},
			get:  func(c *config.Config) any { return c.Gateways["sandbox"].AllowedDomains },
			want: []string{"localhost"},
		},
		{
			name: "null section keeps defaults",
			in:   input{yaml: minimalYAML + "bus:\nlog:\n  level:\n"},
			get:  func(c *config.Config) any { return []any{c.Bus.DataDir, c.Bus.Replicas, c.Log.Level} },
			want: []any{"./data", 1, "info"},
		},
		{
			name: "default role",
			in:   input{yaml: minimalYAML},
			get:  func(c *config.Config) any { return c.Role },
			want: config.RoleAll,
		},
		{
			name: "role from the file",
			in:   input{yaml: "role: adapters\nbus:\n  url: nats://n1:4222\n" + minimalYAML},
			get:  func(c *config.Config) any { return c.Role },
			want: config.RoleAdapters,
		},
		{
			name: "--role overrides the file",
			in:   input{yaml: "role: adapters\nbus:\n  url: nats://n1:4222\n" + minimalYAML, args: []string{"--role", "component"}},
			get:  func(c *config.Config) any { return c.Role },
			want: config.RoleComponent,
		},
		{
			name: "split role on another process' embedded bus",
			in:   input{yaml: minimalYAML + "bus:\n  listen: 127.0.0.1:4222\n", env: []string{"XMPPGW_ROLE=component"}},
			get:  func(c *config.Config) any { return c.Role },
			want: config.RoleComponent,
		},
		{
			name: "a worker's public_url is the ingress', not derived from its listener",
			in:   input{yaml: "role: adapters\nbus:\n  url: nats://n1:4222\nhttp:\n  listen: :9090\n" + minimalYAML},
			get:  func(c *config.Config) any { return c.HTTP.PublicURL },
			want: "",
		},
		{
			name: "a worker names the ingress' public_url without a listener",
			in:   input{yaml: "role: adapters\nbus:\n  url: nats://n1:4222\nhttp:\n  public_url: https://gw.example.com\n" + minimalYAML},
			get:  func(c *config.Config) any { return c.HTTP.PublicURL },
			want: "https://gw.example.com",
		},
		{
			name: "default public_url from listen",
			in:   input{yaml: minimalYAML + "http:\n  listen: 127.0.0.1:8080\n"},
			get:  func(c *config.Config) any { return c.HTTP.PublicURL },
			want: "http://127.0.0.1:8080",
		},
		{
			name: "default public_url for all interfaces",
			in:   input{yaml: minimalYAML + "http:\n  listen: :8080\n"},
			get:  func(c *config.Config) any { return c.HTTP.PublicURL },
			want: "http://localhost:8080",
		},
		{
			name: "env overrides file",
			in:   input{yaml: minimalYAML, env: []string{"XMPPGW_GATEWAYS__SANDBOX__SECRET=fromenv"}},
			get:  func(c *config.Config) any { return c.Gateways["sandbox"].Secret },
			want: "fromenv",
		},
		{
			name: "env key with single underscore",
			in:   input{yaml: minimalYAML, env: []string{"XMPPGW_BUS__DATA_DIR=/var/lib/xmppgw", "OTHER_BUS__DATA_DIR=x"}},
			get:  func(c *config.Config) any { return c.Bus.DataDir },
			want: "/var/lib/xmppgw",
		},
		{
			name: "env list is comma-separated",
			in:   input{yaml: minimalYAML, env: []string{"XMPPGW_GATEWAYS__SANDBOX__ALLOWED_DOMAINS=a.com, b.com"}},
			get:  func(c *config.Config) any { return c.Gateways["sandbox"].AllowedDomains },
			want: []string{"a.com", "b.com"},
		},
		{
			name: "env int",
			in:   input{yaml: minimalYAML, env: []string{"XMPPGW_BUS__URL=nats://a:4222,nats://b:4222", "XMPPGW_BUS__REPLICAS=3"}},
			get:  func(c *config.Config) any { return c.Bus.Replicas },
			want: 3,
		},
		{
			name: "env alone defines a gateway",
			in: input{env: []string{
				"XMPPGW_GATEWAYS__SMS__DOMAIN=sms.example.com",
				"XMPPGW_GATEWAYS__SMS__SECRET=s",
				"XMPPGW_GATEWAYS__SMS__ADAPTER=sandbox",
			}},
			get:  func(c *config.Config) any { return c.Gateways["sms"].Domain },
			want: "sms.example.com",
		},
		{
			name: "flag beats env and file",
			in: input{
				yaml: minimalYAML + "log:\n  level: warn\n",
				env:  []string{"XMPPGW_LOG__LEVEL=error"},
				args: []string{"--log-level", "debug"},
			},
			get:  func(c *config.Config) any { return c.Log.Level },
			want: "debug",
		},
		{
			name: "--set beats env and file",
			in: input{
				yaml: minimalYAML,
				env:  []string{"XMPPGW_GATEWAYS__SANDBOX__SECRET=fromenv"},
				args: []string{"--set", "gateways.sandbox.secret=x"},
			},
			get:  func(c *config.Config) any { return c.Gateways["sandbox"].Secret },
			want: "x",
		},
		{
			name: "--set beats a named flag",
			in:   input{yaml: minimalYAML, args: []string{"--set", "log.level=error", "--log-level", "debug"}},
			get:  func(c *config.Config) any { return c.Log.Level },
			want: "error",
		},
		{
			name: "--set list",
			in:   input{yaml: minimalYAML, args: []string{"--set", "gateways.sandbox.admins=a@localhost,b@localhost"}},
			get:  func(c *config.Config) any { return c.Gateways["sandbox"].Admins },
			want: []string{"a@localhost", "b@localhost"},
		},
		{
			name: "unset flag does not override file",
			in: input{
				yaml: minimalYAML + "xmpp:\n  server: xmpp.example.com:5347\nbus:\n  data_dir: /srv\n",
				args: []string{"--log-level", "debug"},
			},
			get:  func(c *config.Config) any { return []string{c.XMPP.Server, c.Bus.DataDir} },
			want: []string{"xmpp.example.com:5347", "/srv"},
		},
		{
			name: "unset flag does not override env",
			in:   input{yaml: minimalYAML, env: []string{"XMPPGW_LOG__FORMAT=json"}},
			get:  func(c *config.Config) any { return c.Log.Format },
			want: "json",
		},
		{
			name: "config file from -c",
			in:   input{args: []string{"-c", flagFile}},
			get:  func(c *config.Config) any { return c.XMPP.Server },
			want: "xmpp.example.com:5347",
		},
		{
			name: "secret from secret_file",
			in:   input{yaml: strings.Replace(minimalYAML, "secret: secret", "secret_file: "+secretFile, 1)},
			get:  func(c *config.Config) any { return c.Gateways["sandbox"].Secret },
			want: "fromfile",
		},
		{
			name: "adapter secret from file",
			in:   input{yaml: strings.Replace(twilioYAML, "auth_token: 0123456789abcdef0123456789abcdef", "auth_token_file: "+tokenFile, 1)},
			get:  func(c *config.Config) any { return c.Gateways["sms"].AdapterConfig.(*twilioConfig).AuthToken },
			want: "tokenfromfile",
		},
		{
			name: "per-gateway server",
			in:   input{yaml: minimalYAML + "    server: other.example.com:5347\n"},
			get:  func(c *config.Config) any { return c.Gateways["sandbox"].ServerAddr(*c) },
			want: "other.example.com:5347",
		},
		{
			name: "adapter map key with dots",
			in:   input{yaml: twilioYAML + "        \"alice.smith@example.com\": x\n"},
			get: func(c *config.Config) any {
				return c.Gateways["sms"].AdapterConfig.(*twilioConfig).Numbers["alice.smith@example.com"]
			},
			want: "x",
		},
		{
			name: "adapter block from env",
			in:   input{yaml: twilioYAML, env: []string{"XMPPGW_GATEWAYS__SMS__TWILIO__POOL=+15550000001,+15550000002"}},
			get:  func(c *config.Config) any { return c.Gateways["sms"].AdapterConfig.(*twilioConfig).Pool },
			want: []string{"+15550000001", "+15550000002"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tc.in)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tc.get(c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	secretFile := writeFile(t, "secret", "s\n")
	missing := filepath.Join(t.TempDir(), "missing")

	for _, tc := range []struct {
		name   string
		in     input
		file   string // Options.File instead of in.yaml
		want   []string
		not    []string
		wantIs error
	}{
		{
			name: "unknown top-level key",
			in:   input{yaml: minimalYAML + "xmppp:\n  server: x\n"},
			want: []string{`unknown key "xmppp"`},
		},
		{
			name: "unknown nested key",
			in:   input{yaml: minimalYAML + "bus:\n  data_dri: /x\n"},
			want: []string{`unknown key "bus.data_dri"`},
		},
		{
			name: "unknown gateway key",
			in:   input{yaml: minimalYAML + "    secrte: x\n"},
			want: []string{`unknown key "gateways.sandbox.secrte"`},
		},
		{
			name: "unknown key from env",
			in:   input{yaml: minimalYAML, env: []string{"XMPPGW_BUS__DATA_DRI=/x"}},
			want: []string{`unknown key "bus.data_dri"`},
		},
		{
			name: "unknown key from --set",
			in:   input{yaml: minimalYAML, args: []string{"--set", "gateways.sandbox.secrte=x"}},
			want: []string{`unknown key "gateways.sandbox.secrte"`},
		},
		{
			name: "unknown key in adapter block",
			in:   input{yaml: strings.Replace(twilioYAML, "account_sid", "acount_sid", 1)},
			want: []string{
				`unknown key "gateways.sms.twilio.acount_sid"`,
				"gateways.sms.twilio.account_sid: is required",
			},
		},
		{
			name: "unknown key in nested adapter struct",
			in:   input{yaml: twilioYAML + "      limits:\n        per_secnd: 3\n"},
			want: []string{`unknown key "gateways.sms.twilio.limits.per_secnd"`},
		},
		{
			name: "block for another adapter",
			in:   input{yaml: twilioYAML + "    sandbox:\n      x: 1\n"},
			want: []string{`unknown key "gateways.sms.sandbox"`},
		},
		{
			name: "block for an adapter without config",
			in:   input{yaml: minimalYAML + "    sandbox:\n      x: 1\n"},
			want: []string{`gateways.sandbox.sandbox: adapter "sandbox" takes no configuration block`},
		},
		{
			name: "unknown adapter",
			in:   input{yaml: strings.Replace(minimalYAML, "adapter: sandbox", "adapter: foo", 1)},
			want: []string{`gateways.sandbox.adapter: unknown adapter "foo" (known: external, sandbox, twilio)`},
		},
		{
			name: "missing adapter",
			in:   input{yaml: strings.Replace(minimalYAML, "adapter: sandbox", "", 1)},
			want: []string{`gateways.sandbox.adapter: required`},
		},
		{
			name: "missing secret",
			in:   input{yaml: strings.Replace(minimalYAML, "secret: secret", "", 1)},
			want: []string{"gateways.sandbox.secret: required (set secret, secret_file or XMPPGW_GATEWAYS__SANDBOX__SECRET)"},
		},
		{
			name: "secret and secret_file",
			in:   input{yaml: minimalYAML + "    secret_file: " + secretFile + "\n"},
			want: []string{"gateways.sandbox.secret: set either secret or secret_file, not both"},
		},
		{
			name:   "unreadable secret_file",
			in:     input{yaml: strings.Replace(minimalYAML, "secret: secret", "secret_file: "+missing, 1)},
			want:   []string{"gateways.sandbox.secret_file: open " + missing + ": no such file or directory"},
			not:    []string{"gateways.sandbox.secret: required"},
			wantIs: fs.ErrNotExist,
		},
		{
			name: "adapter secret and secret file",
			in:   input{yaml: twilioYAML + "      auth_token_file: " + secretFile + "\n"},
			want: []string{"gateways.sms.twilio.auth_token: set either auth_token or auth_token_file, not both"},
		},
		{
			name: "adapter Validate errors are prefixed",
			in: input{yaml: strings.NewReplacer(
				"account_sid: AC00000000000000000000000000000000", "",
				"auth_token: 0123456789abcdef0123456789abcdef", "",
			).Replace(twilioYAML)},
			want: []string{
				"gateways.sms.twilio.account_sid: is required\ngateways.sms.twilio.auth_token: is required",
			},
		},
		{
			name: "adapter Validate runs without a block",
			in:   input{yaml: strings.Replace(minimalYAML, "adapter: sandbox", "adapter: twilio", 1)},
			want: []string{"gateways.sandbox.twilio.account_sid: is required"},
		},
		{
			name: "adapter block type error",
			in:   input{yaml: twilioYAML + "      mps: fast\n"},
			want: []string{"gateways.sms.twilio.mps: cannot parse value as 'int'"},
		},
		{
			name: "type error from env",
			in:   input{yaml: minimalYAML, env: []string{"XMPPGW_BUS__REPLICAS=many"}},
			want: []string{"bus.replicas: cannot parse value as 'int'"},
		},
		{
			name: "not a bare domain",
			in:   input{yaml: strings.Replace(minimalYAML, "sandbox.localhost", "user@host", 1)},
			want: []string{`gateways.sandbox.domain: "user@host" is not a bare domain (no "@" or "/" allowed)`},
		},
		{
			name: "invalid domain",
			in:   input{yaml: strings.Replace(minimalYAML, "sandbox.localhost", "sand box..localhost", 1)},
			want: []string{`gateways.sandbox.domain: "sand box..localhost" is not a valid domain`},
		},
		{
			name: "upper-case domain",
			in:   input{yaml: strings.Replace(minimalYAML, "sandbox.localhost", "Sandbox.localhost", 1)},
			want: []string{`gateways.sandbox.domain: "Sandbox.localhost" must be lower case`},
		},
		{
			name: "missing domain",
			in:   input{yaml: strings.Replace(minimalYAML, "domain: sandbox.localhost", "", 1)},
			want: []string{"gateways.sandbox.domain: required"},
		},
		{
			name: "domain without parent",
			in:   input{yaml: strings.Replace(minimalYAML, "sandbox.localhost", "localhost", 1)},
			want: []string{`gateways.sandbox.allowed_domains: cannot default to the parent of "localhost", which has none; set it`},
		},
		{
			name: "duplicate domain",
			in:   input{yaml: minimalYAML + "  other:\n    domain: sandbox.localhost\n    secret: s\n    adapter: sandbox\n"},
			want: []string{`gateways.sandbox.domain: "sandbox.localhost" is also the domain of gateway "other" (gateways.other.domain)`},
		},
		{
			name: "bad gateway name",
			in:   input{yaml: strings.Replace(minimalYAML, "  sandbox:\n", "  Sms Gw:\n", 1)},
			want: []string{"gateways.Sms Gw: name must match ^[a-z0-9][a-z0-9_-]{0,31}$ (it is used in NATS subjects, metrics and URLs)"},
		},
		{
			name: "no gateways",
			in:   input{yaml: "log:\n  level: info\n"},
			want: []string{"gateways: no gateway configured"},
		},
		{
			name: "bad allowed domain and admin",
			in:   input{yaml: minimalYAML + "    allowed_domains: [ok.com, bad_domain]\n    admins: [alice@localhost, bob@localhost/phone, carol]\n"},
			want: []string{
				`gateways.sandbox.allowed_domains.1: "bad_domain" is not a valid domain`,
				`gateways.sandbox.admins.1: "bob@localhost/phone" is not a bare JID (no resource allowed)`,
				`gateways.sandbox.admins.2: "carol" is not a bare JID (want user@domain)`,
			},
			not: []string{"allowed_domains.0", "admins.0"},
		},
		{
			name: "bad server addresses",
			in:   input{yaml: minimalYAML + "    server: example.com\nxmpp:\n  server: example.com:70000\n"},
			want: []string{
				`gateways.sandbox.server: "example.com" is not host:port`,
				`xmpp.server: "example.com:70000": port must be a number from 1 to 65535`,
			},
		},
		{
			name: "bus without url",
			in: input{yaml: minimalYAML + `bus:
  data_dir: ""
  replicas: 3
  credentials_file: /c
  tls_cert_file: /cert
  listen: nope
`},
			want: []string{
				"bus.data_dir: required for the embedded server (bus.url is empty)",
				"bus.replicas: 3 needs bus.url",
				"bus.credentials_file: only used with bus.url",
				"bus.tls_cert_file: only used with bus.url",
				"bus.tls_key_file: required with bus.tls_cert_file",
				`bus.listen: "nope" is not host:port`,
			},
		},
		{
			name: "bus replicas out of range",
			in:   input{yaml: minimalYAML + "bus:\n  url: nats://a:4222\n  replicas: 6\n"},
			want: []string{"bus.replicas: 6 is out of range 1..5"},
		},
		{
			name: "id map expiry too short",
			in:   input{yaml: minimalYAML + "bus:\n  idmap_ttl: 10m\n"},
			want: []string{"bus.idmap_ttl: 10m0s is too short: at least 1h"},
		},
		{
			name: "unknown external feature",
			in:   input{yaml: "gateways:\n  ext:\n    domain: ext.localhost\n    secret: s\n    adapter: external\n    external:\n      type: sms\n      features: [reactions, stickers]\nbus:\n  listen: 127.0.0.1:4222\n"},
			want: []string{`gateways.ext.external.features.1: unknown feature "stickers" (known: corrections, replies, reactions, retractions, markers, typing)`},
		},
		{
			name: "unknown role",
			in:   input{yaml: minimalYAML, args: []string{"--role", "worker"}},
			want: []string{`role: "worker" is not one of all, component, adapters, ingress`},
		},
		{
			name: "split role on a private embedded bus",
			in:   input{yaml: "role: component\n" + minimalYAML},
			want: []string{`bus.url: required with role "component": the processes of a split deployment share one bus`},
		},
		{
			name: "ingress without a listener",
			in:   input{yaml: "role: ingress\nbus:\n  url: nats://n1:4222\n" + minimalYAML},
			want: []string{`http.listen: required with role "ingress"`},
		},
		{
			name: "ingress public_url without listen",
			in:   input{yaml: "role: ingress\nbus:\n  url: nats://n1:4222\nhttp:\n  public_url: https://gw.example.com\n" + minimalYAML},
			want: []string{"http.public_url: set, but http.listen is empty"},
		},
		{
			name: "public_url without listen",
			in:   input{yaml: minimalYAML + "http:\n  public_url: https://gw.example.com\n"},
			want: []string{"http.public_url: set, but http.listen is empty"},
		},
		{
			name: "public_url with query",
			in:   input{yaml: minimalYAML + "http:\n  listen: :8080\n  public_url: https://gw.example.com/?a=b\n"},
			want: []string{`http.public_url: "https://gw.example.com/?a=b" must be an absolute http or https URL`},
		},
		{
			name: "public_url relative",
			in:   input{yaml: minimalYAML + "http:\n  listen: :8080\n  public_url: /hooks\n"},
			want: []string{`http.public_url: "/hooks" must be an absolute http or https URL`},
		},
		{
			name: "log level and format",
			in:   input{yaml: minimalYAML, args: []string{"--log-level", "verbose", "--log-format", "xml"}},
			want: []string{
				`log.format: "xml" is not one of text, json`,
				`log.level: "verbose" is not one of debug, info, warn, error`,
			},
		},
		{
			name: "errors sorted by key",
			in:   input{yaml: "log:\n  level: loud\nbus:\n  replicas: 0\n"},
			want: []string{`bus.replicas: 0 is out of range 1..5` + "\n" + `gateways: no gateway configured` + "\n" + `log.level: "loud"`},
		},
		{
			name: "bad --set",
			in:   input{yaml: minimalYAML, args: []string{"--set", "log.level"}},
			want: []string{`--set "log.level": want key=value`},
		},
		{
			name:   "missing config file",
			file:   missing,
			want:   []string{`read file "` + missing + `"`},
			wantIs: fs.ErrNotExist,
		},
		{
			name: "YAML syntax error",
			file: writeFile(t, "broken.yaml", "gateways:\n  sms: [\n"),
			want: []string{`parse file "`, `broken.yaml"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := tc.in
			if tc.file != "" {
				in.args = append(in.args, "--config", tc.file)
			}
			_, err := load(t, in)
			wantLoadError(t, err, tc.want, tc.not)
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("errors.Is(err, %v) = false for %v", tc.wantIs, err)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c, err := load(t, input{
		yaml: twilioYAML,
		env:  []string{"XMPPGW_GATEWAYS__SMS__SECRET=gateway-secret-value"},
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	b, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	for _, s := range []string{"gateway-secret-value", "0123456789abcdef0123456789abcdef"} {
		if strings.Contains(string(b), s) {
			t.Errorf("Redacted shows secret %q:\n%s", s, b)
		}
	}

	m, err := kyaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatalf("Redacted is not YAML: %v\n%s", err, b)
	}
	get := func(path string) any {
		var v any = m
		for k := range strings.SplitSeq(path, ".") {
			mm, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = mm[k]
		}
		return v
	}
	for _, tc := range []struct {
		path string
		want any
	}{
		{"gateways.sms.secret", "[redacted]"},
		{"gateways.sms.secret_file", ""},
		{"gateways.sms.domain", "sms.localhost"},
		{"gateways.sms.adapter", "twilio"},
		{"gateways.sms.twilio.auth_token", "[redacted]"},
		{"gateways.sms.twilio.auth_token_file", ""},
		{"gateways.sms.twilio.account_sid", "AC00000000000000000000000000000000"},
		{"gateways.sms.twilio.mps", 1},
		{"xmpp.server", "127.0.0.1:5347"},
		{"bus.data_dir", "./data"},
		{"log.level", "info"},
	} {
		if got := get(tc.path); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.path, got, tc.want)
		}
	}
	if got := get("gateways.sms.twilio.numbers"); !reflect.DeepEqual(got, map[string]any{"+15550009999": "alice@localhost"}) {
		t.Errorf("numbers = %#v", got)
	}
}

func TestRegisterFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"-c", "a.yaml"}, "a.yaml"},
		{[]string{"--config=b.yaml"}, "b.yaml"},
	} {
		fset := pflag.NewFlagSet("t", pflag.ContinueOnError)
		config.RegisterFlags(fset)
		if err := fset.Parse(tc.args); err != nil {
			t.Fatalf("parse %q: %v", tc.args, err)
		}
		if got := config.ConfigFile(fset); got != tc.want {
			t.Errorf("ConfigFile(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
	if got := config.ConfigFile(nil); got != "" {
		t.Errorf("ConfigFile(nil) = %q", got)
	}
}
