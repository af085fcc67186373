package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/config"
)

// externalYAML is a gateway whose adapter is another process, reaching the
// embedded bus on its client port.
const externalYAML = `
bus:
  listen: 127.0.0.1:4222
gateways:
  sms:
    domain: sms.localhost
    secret: secret
    adapter: external
    external:
      type: sms
      contact_type: sms
      name: SMS (Node worker)
      media: true
      receipts: true
`

func TestLoadExternal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   input
		want config.External
	}{
		{
			name: "full block",
			in:   input{yaml: externalYAML},
			want: config.External{Type: "sms", ContactType: "sms", Name: "SMS (Node worker)", Media: true, Receipts: true},
		},
		{
			name: "defaults",
			in: input{yaml: `
bus:
  url: nats://nats.example.com:4222
gateways:
  sms:
    domain: sms.localhost
    secret: secret
    adapter: external
    external:
      type: sms
`},
			want: config.External{Type: "sms", ContactType: "pc"},
		},
		{
			name: "rooms",
			in:   input{yaml: strings.Replace(externalYAML, "      media: true\n", "      media: true\n      rooms: true\n      room_prefixes: ['#', '&']\n", 1)},
			want: config.External{Type: "sms", ContactType: "sms", Name: "SMS (Node worker)", Media: true, Receipts: true, Rooms: true, RoomPrefixes: []string{"#", "&"}},
		},
		{
			name: "from the environment",
			in: input{yaml: minimalYAML, env: []string{
				"XMPPGW_BUS__LISTEN=127.0.0.1:4222",
				"XMPPGW_GATEWAYS__SANDBOX__ADAPTER=external",
				"XMPPGW_GATEWAYS__SANDBOX__EXTERNAL__TYPE=irc",
				"XMPPGW_GATEWAYS__SANDBOX__EXTERNAL__ROOMS=true",
				"XMPPGW_GATEWAYS__SANDBOX__EXTERNAL__ROOM_PREFIXES=#,&",
			}},
			want: config.External{Type: "irc", ContactType: "pc", Rooms: true, RoomPrefixes: []string{"#", "&"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tc.in)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(c.Gateways) != 1 {
				t.Fatalf("gateways = %v", c.Gateways)
			}
			for _, g := range c.Gateways {
				ext, ok := g.AdapterConfig.(*config.External)
				if !ok {
					t.Fatalf("AdapterConfig = %T, want *config.External", g.AdapterConfig)
				}
				if !reflect.DeepEqual(*ext, tc.want) {
					t.Errorf("external = %+v, want %+v", *ext, tc.want)
				}
			}
		})
	}
}

func TestLoadExternalErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   input
		want []string
		not  []string
	}{
		{
			name: "nobody could connect",
			in:   input{yaml: strings.Replace(externalYAML, "  listen: 127.0.0.1:4222\n", "  data_dir: ./data\n", 1)},
			want: []string{`gateways.sms.adapter: "external" needs a bus that another process can reach: set bus.listen (the embedded server's client port) or bus.url (external NATS)`},
		},
		{
			name: "missing block",
			in: input{yaml: `
bus:
  listen: 127.0.0.1:4222
gateways:
  sms:
    domain: sms.localhost
    secret: secret
    adapter: external
`},
			want: []string{`gateways.sms.external.type: required: the gateway's XEP-0030 identity type`},
		},
		{
			name: "unknown key",
			in:   input{yaml: externalYAML + "      reciepts: true\n"},
			want: []string{`unknown key "gateways.sms.external.reciepts"`},
		},
		{
			name: "block under another key",
			in:   input{yaml: strings.Replace(externalYAML, "    external:\n", "    extrenal:\n", 1)},
			want: []string{`unknown key "gateways.sms.extrenal"`, "gateways.sms.external.type: required"},
		},
		{
			name: "type errors",
			in:   input{yaml: externalYAML + "      rooms: maybe\n"},
			want: []string{"gateways.sms.external.rooms: cannot parse value as 'bool'"},
		},
		{
			name: "bad identity types",
			in:   input{yaml: strings.NewReplacer("type: sms", "type: SMS", "contact_type: sms", "contact_type: ''").Replace(externalYAML)},
			want: []string{
				`gateways.sms.external.contact_type: "" is not an identity type`,
				`gateways.sms.external.type: "SMS" is not an identity type`,
			},
		},
		{
			name: "rooms without prefixes",
			in:   input{yaml: externalYAML + "      rooms: true\n"},
			want: []string{`gateways.sms.external.room_prefixes: required with rooms: true`},
		},
		{
			name: "prefixes without rooms",
			in:   input{yaml: externalYAML + "      room_prefixes: ['#', '']\n"},
			want: []string{
				"gateways.sms.external.room_prefixes: only used with rooms: true",
				"gateways.sms.external.room_prefixes.1: empty",
			},
		},
		{
			name: "external block on another adapter",
			in:   input{yaml: minimalYAML + "    external:\n      type: sms\n"},
			want: []string{`unknown key "gateways.sandbox.external"`},
			not:  []string{"bus.listen"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tc.in)
			wantLoadError(t, err, tc.want, tc.not)
		})
	}
}

func TestRedactedExternal(t *testing.T) {
	t.Parallel()
	c, err := load(t, input{yaml: externalYAML})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"adapter: external", "external:", "type: sms", "receipts: true", "listen: 127.0.0.1:4222"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Redacted lacks %q:\n%s", want, out)
		}
	}
}
