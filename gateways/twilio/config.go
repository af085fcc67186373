package twilio

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"

	"github.com/xmppgw/xmppgw/gateways/sms"
)

// Config is the gateways.<name>.twilio block: the account, its numbers,
// and the settings every SMS gateway has (package sms).
type Config struct {
	Account      `koanf:",squash"`
	sms.Settings `koanf:",squash"`
}

// Account is a Twilio account and the numbers it holds: what a gateway
// with numbers at several providers lists under twilio.
type Account struct {
	AccountSID          string `koanf:"account_sid"`
	AuthToken           string `koanf:"auth_token" secret:"true"`
	AuthTokenFile       string `koanf:"auth_token_file"`
	MessagingServiceSID string `koanf:"messaging_service_sid"`
	// APIURL is Twilio's API; anything else (a test server, a compatible
	// provider) is reached by rewriting scheme and host of every request.
	APIURL       string `koanf:"api_url"`
	sms.Holdings `koanf:",squash"`
}

// MaxRequestTimeout is the longest request_timeout (sms.MaxRequestTimeout).
const MaxRequestTimeout = sms.MaxRequestTimeout

// DefaultAPIURL is Twilio's REST API.
const DefaultAPIURL = "https://api.twilio.com"

func newConfig() any {
	return &Config{Account: NewAccount(), Settings: sms.DefaultSettings()}
}

// NewAccount returns an account block with its defaults.
func NewAccount() Account { return Account{APIURL: DefaultAPIURL} }

var (
	accountSID = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSID = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	authToken  = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

// Validate reports every problem, each "key: what is wrong" (the loader
// prefixes the key path).
func (c *Config) Validate() error {
	return errors.Join(c.Account.Validate(), c.Settings.Validate("Twilio"))
}

// Validate reports every problem of the account block.
func (c *Account) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.AccountSID == "" {
		bad("account_sid", "required (AC followed by 32 hex digits, from the Twilio console)")
	} else if !accountSID.MatchString(c.AccountSID) {
		bad("account_sid", "%q is not an account SID (AC followed by 32 hex digits)", c.AccountSID)
	}
	if c.AuthToken == "" {
		bad("auth_token", "required (set auth_token, auth_token_file or the XMPPGW_… variable)")
	} else if !authToken.MatchString(c.AuthToken) {
		// twilio-go refuses such a token on every request: every SMS would
		// fail after the gateway reported ready. The value is a secret and
		// is not repeated here.
		bad("auth_token", "is not a Twilio auth token (32 hex digits, from the Twilio console; %d characters given%s)", len(c.AuthToken), nonHex(c.AuthToken))
	}
	if c.MessagingServiceSID != "" && !serviceSID.MatchString(c.MessagingServiceSID) {
		bad("messaging_service_sid", "%q is not a messaging service SID (MG followed by 32 hex digits)", c.MessagingServiceSID)
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("api_url", "%q is not an absolute http(s) URL", c.APIURL)
	}
	errs = append(errs, c.Holdings.Validate())
	return errors.Join(errs...)
}

// nonHex says which kind of character spoiled a token without showing it.
func nonHex(s string) string {
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f', r >= 'A' && r <= 'F':
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			return ", including white space"
		default:
			return ", including characters other than 0-9 and a-f"
		}
	}
	return ""
}
