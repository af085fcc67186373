package telnyx

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/gateways/sms"
)

// Config is the gateways.<name>.telnyx block: the account, its numbers,
// and the settings every SMS gateway has (package sms).
type Config struct {
	Account      `koanf:",squash"`
	sms.Settings `koanf:",squash"`
}

// Account is a Telnyx account and the numbers it holds: what a gateway
// with numbers at several providers lists under telnyx.
type Account struct {
	// APIKey is a Telnyx API v2 key (Mission Control → API Keys), sent as
	// Authorization: Bearer.
	APIKey     string `koanf:"api_key" secret:"true"`
	APIKeyFile string `koanf:"api_key_file"`
	// PublicKey is the account's webhook public key (Mission Control →
	// Keys & Credentials → Public Key), base64: every webhook's
	// telnyx-signature-ed25519 is checked with it.
	PublicKey string `koanf:"public_key"`
	// MessagingProfileID is the messaging profile the numbers belong to.
	MessagingProfileID string `koanf:"messaging_profile_id"`
	// APIURL is Telnyx's API (https://api.telnyx.com); another (a test
	// server) takes the same paths.
	APIURL string `koanf:"api_url"`
	// WebhookTolerance is how old a webhook's telnyx-timestamp may be, and
	// how far in the future: an older one is a replay and is refused.
	WebhookTolerance time.Duration `koanf:"webhook_tolerance"`
	sms.Holdings     `koanf:",squash"`
}

// DefaultAPIURL is Telnyx's API.
const DefaultAPIURL = "https://api.telnyx.com"

// DefaultWebhookTolerance is the replay window Telnyx's own libraries use.
const DefaultWebhookTolerance = 5 * time.Minute

func newConfig() any {
	return &Config{Account: NewAccount(), Settings: sms.DefaultSettings()}
}

// NewAccount returns an account block with its defaults.
func NewAccount() Account {
	return Account{APIURL: DefaultAPIURL, WebhookTolerance: DefaultWebhookTolerance}
}

var (
	profileID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	apiKey    = regexp.MustCompile(`^[A-Za-z0-9_\-]{16,}$`)
)

// Validate reports every problem, each "key: what is wrong".
func (c *Config) Validate() error {
	return errors.Join(c.Account.Validate(), c.Settings.Validate("Telnyx"))
}

// Validate reports every problem of the account block.
func (c *Account) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.APIKey == "":
		bad("api_key", "required (an API v2 key from the Telnyx portal; set api_key, api_key_file or the XMPPGW_… variable)")
	case !apiKey.MatchString(c.APIKey):
		// A secret: its length is said, never the value.
		bad("api_key", "is not a Telnyx API key (letters, digits, _ and -, at least 16; %d characters given)", len(c.APIKey))
	}
	if _, err := parsePublicKey(c.PublicKey); err != nil {
		bad("public_key", "%v", err)
	}
	if c.MessagingProfileID == "" {
		bad("messaging_profile_id", "required (the id of the messaging profile your numbers belong to)")
	} else if !profileID.MatchString(c.MessagingProfileID) {
		bad("messaging_profile_id", "%q is not a messaging profile id (a UUID)", c.MessagingProfileID)
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("api_url", "%q is not an absolute http(s) URL", c.APIURL)
	}
	if c.WebhookTolerance < time.Second || c.WebhookTolerance > time.Hour {
		bad("webhook_tolerance", "must be between 1s and 1h, not %s", c.WebhookTolerance)
	}
	errs = append(errs, c.Holdings.Validate())
	return errors.Join(errs...)
}

// parsePublicKey decodes the base64 public key Telnyx shows.
func parsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("required (the account's webhook public key, base64, from the Telnyx portal)")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not base64", s)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("decodes to %d bytes; an Ed25519 public key has %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
