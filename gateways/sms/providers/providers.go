// Package providers registers adapter sms: one SMS gateway whose numbers
// are at several providers — Twilio and Telnyx side by side in one
// domain. Each number sends and receives through the provider that holds
// it; registration hands out numbers from every provider's pool; the
// admin command "Numbers and providers" shows which is whose.
//
//	gateways:
//	  sms:
//	    domain: sms.example.com
//	    adapter: sms
//	    sms:
//	      default_region: US          # the settings of package sms
//	      twilio:                     # an account, as under adapter: twilio
//	        account_sid: AC…
//	        auth_token_file: /etc/xmppgw/twilio-token
//	        numbers: {"+15550009999": alice@example.com}
//	      telnyx:                     # an account, as under adapter: telnyx
//	        api_key_file: /etc/xmppgw/telnyx-key
//	        public_key: …
//	        messaging_profile_id: …
//	        pool: ["+15550001111"]
//
// Webhooks are served per provider under /sms/<gateway>/<provider>/:
// Twilio's at …/twilio/sms and …/twilio/status, Telnyx's at
// …/telnyx/webhook. A number an administrator assigns that no account
// lists goes through default (the first account configured, in the order
// twilio, telnyx, when unset).
//
// A gateway with one provider keeps adapter: twilio or adapter: telnyx;
// its configuration and webhook URLs are unchanged. Moving it to adapter:
// sms keeps its registrations and records (they are keyed by gateway and
// provider) but moves its webhooks: update them at the provider.
package providers

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/sms"
	"github.com/xmppgw/xmppgw/gateways/telnyx"
	"github.com/xmppgw/xmppgw/gateways/twilio"
)

// ID is the adapter's name in configuration.
const ID = "sms"

func init() {
	gateways.Register(gateways.Info{
		ID:           ID,
		Type:         "sms",
		ContactType:  "sms",
		Name:         "SMS",
		Capabilities: gateways.Capabilities{Media: true, Receipts: true, Rooms: true},
		NewConfig:    newConfig,
		New:          New,
	})
}

// Config is the gateways.<name>.sms block.
type Config struct {
	sms.Settings `koanf:",squash"`
	// Twilio and Telnyx are the accounts; either may be left out.
	Twilio *twilio.Account `koanf:"twilio"`
	Telnyx *telnyx.Account `koanf:"telnyx"`
	// Default names the provider of numbers no account lists.
	Default string `koanf:"default"`
}

func newConfig() any {
	tw := twilio.NewAccount()
	tx := telnyx.NewAccount()
	return &Config{Settings: sms.DefaultSettings(), Twilio: &tw, Telnyx: &tx}
}

// hasTwilio and hasTelnyx: the block was given (a key beyond the
// defaults).
func (c *Config) hasTwilio() bool {
	a := c.Twilio
	return a != nil && (a.AccountSID != "" || a.AuthToken != "" || a.MessagingServiceSID != "" || len(a.Numbers) > 0 || len(a.Pool) > 0)
}

func (c *Config) hasTelnyx() bool {
	a := c.Telnyx
	return a != nil && (a.APIKey != "" || a.PublicKey != "" || a.MessagingProfileID != "" || len(a.Numbers) > 0 || len(a.Pool) > 0)
}

// Validate reports every problem, each "key: what is wrong".
func (c *Config) Validate() error {
	var errs []error
	prefixed := func(prefix string, err error) {
		if err == nil {
			return
		}
		for line := range strings.SplitSeq(err.Error(), "\n") {
			errs = append(errs, errors.New(prefix+line))
		}
	}
	tw, tx := c.hasTwilio(), c.hasTelnyx()
	if !tw && !tx {
		errs = append(errs, errors.New("twilio: no provider account: configure twilio, telnyx or both"))
	}
	if tw {
		prefixed("twilio.", c.Twilio.Validate())
	}
	if tx {
		prefixed("telnyx.", c.Telnyx.Validate())
	}
	prefixed("", c.Settings.Validate("the provider"))
	if tw && tx {
		at := map[string]bool{}
		for n := range c.Twilio.Numbers {
			at[n] = true
		}
		for _, n := range c.Twilio.Pool {
			at[n] = true
		}
		for n := range c.Telnyx.Numbers {
			if at[n] {
				errs = append(errs, fmt.Errorf("telnyx.numbers: %s is listed under twilio too; a number is at one provider", n))
			}
		}
		for _, n := range c.Telnyx.Pool {
			if at[n] {
				errs = append(errs, fmt.Errorf("telnyx.pool: %s is listed under twilio too; a number is at one provider", n))
			}
		}
		users := map[string]string{}
		for n, u := range c.Twilio.Numbers {
			users[strings.ToLower(u)] = n
		}
		for n, u := range c.Telnyx.Numbers {
			if other, dup := users[strings.ToLower(u)]; dup {
				errs = append(errs, fmt.Errorf("telnyx.numbers: %s has %s at twilio and %s at telnyx; one number per user", u, other, n))
			}
		}
	}
	switch c.Default {
	case "", twilio.ID, telnyx.ID:
		if (c.Default == twilio.ID && !tw) || (c.Default == telnyx.ID && !tx) {
			errs = append(errs, fmt.Errorf("default: %q has no account here", c.Default))
		}
	default:
		errs = append(errs, fmt.Errorf("default: %q is not a provider (twilio or telnyx)", c.Default))
	}
	return errors.Join(errs...)
}

// New constructs the adapter. It connects to nothing.
func New(p gateways.Params) (gateways.Adapter, error) {
	cfg, ok := p.Config.(*Config)
	if !ok || cfg == nil {
		return nil, errors.New("missing sms configuration block (twilio, telnyx…)")
	}
	var accounts []sms.Account
	if cfg.hasTwilio() {
		prov, err := twilio.NewProvider(cfg.Twilio, cfg.RequestTimeout, p)
		if err != nil {
			return nil, fmt.Errorf("twilio: %w", err)
		}
		accounts = append(accounts, sms.Account{Provider: prov, Numbers: cfg.Twilio.Holdings})
	}
	if cfg.hasTelnyx() {
		prov, err := telnyx.NewProvider(cfg.Telnyx, cfg.RequestTimeout, p)
		if err != nil {
			return nil, fmt.Errorf("telnyx: %w", err)
		}
		acc := sms.Account{Provider: prov, Numbers: cfg.Telnyx.Holdings}
		if cfg.Default == telnyx.ID {
			accounts = append([]sms.Account{acc}, accounts...)
		} else {
			accounts = append(accounts, acc)
		}
	}
	return sms.NewAdapter(sms.Options{ID: ID, Params: p, Settings: cfg.Settings, Accounts: accounts, Rooms: true})
}
