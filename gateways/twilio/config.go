package twilio

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/xmppgw/xmppgw/gateways"
)

// Config is the gateways.<name>.twilio block.
type Config struct {
	AccountSID          string `koanf:"account_sid"`
	AuthToken           string `koanf:"auth_token" secret:"true"`
	AuthTokenFile       string `koanf:"auth_token_file"`
	MessagingServiceSID string `koanf:"messaging_service_sid"`
	// APIURL is Twilio's API; anything else (a test server, a compatible
	// provider) is reached by rewriting scheme and host of every request.
	APIURL string `koanf:"api_url"`
	// DefaultRegion (ISO 3166, e.g. US) interprets numbers typed without a
	// country code.
	DefaultRegion string `koanf:"default_region"`
	// Numbers are static assignments: E.164 number → bare JID.
	Numbers map[string]string `koanf:"numbers"`
	// Pool holds the numbers that registration hands out.
	Pool []string `koanf:"pool"`
	// MPS is sends per second per sending number; more are queued.
	MPS float64 `koanf:"mps"`
	// MaxSegments refuses longer messages (billing protection).
	MaxSegments int `koanf:"max_segments"`
	// RequestTimeout bounds one API call; a call that times out may still
	// have been accepted, which the next attempt checks before resending.
	// At most MaxRequestTimeout.
	RequestTimeout time.Duration `koanf:"request_timeout"`
	// CorrectionPrefix starts the SMS that carries a correction (XEP-0308):
	// a phone cannot edit a text, so it gets the corrected text as a new
	// one, marked the way people mark corrections by hand. It counts
	// towards max_segments; empty sends the corrected text unmarked.
	CorrectionPrefix string `koanf:"correction_prefix"`
}

// MaxRequestTimeout is the longest request_timeout. A retry of a message
// whose earlier attempt has an unknown outcome waits request_timeout + 2 s
// for that call to settle, asks Twilio (a list call) and sends (a create
// call), each call bounded by request_timeout, and all of it within the
// runner's send timeout (gateways.DefaultSendTimeout, 30 s); a longer
// setting would make such retries time out and tell the sender
// remote-server-timeout about an SMS that probably went out.
const MaxRequestTimeout = (gateways.DefaultSendTimeout - settleMargin) / 3 / time.Second * time.Second

// DefaultAPIURL is Twilio's REST API.
const DefaultAPIURL = "https://api.twilio.com"

func newConfig() any {
	return &Config{APIURL: DefaultAPIURL, MPS: 1, MaxSegments: 10, RequestTimeout: 8 * time.Second, CorrectionPrefix: "* "}
}

var (
	accountSID = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSID = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	authToken  = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
	e164       = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	bareJID    = regexp.MustCompile(`^[^@/\s]+@[^@/\s]+$`)
)

// Validate reports every problem, each "key: what is wrong" (the loader
// prefixes the key path).
func (c *Config) Validate() error {
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
	if c.DefaultRegion != "" {
		if _, ok := phonenumbers.GetSupportedRegions()[strings.ToUpper(c.DefaultRegion)]; !ok {
			bad("default_region", "%q is not a region code (ISO 3166-1 alpha-2, e.g. US, GB)", c.DefaultRegion)
		}
	}
	seen := map[string]string{}
	for n, u := range c.Numbers {
		if !e164.MatchString(n) {
			bad("numbers", "%q is not a number in E.164 form (e.g. \"+15551234567\")", n)
		}
		if !bareJID.MatchString(u) {
			bad("numbers", "%s: %q is not a bare JID (user@domain)", n, u)
		}
		if other, dup := seen[strings.ToLower(u)]; dup {
			bad("numbers", "%s has both %s and %s; one number per user", u, other, n)
		}
		seen[strings.ToLower(u)] = n
	}
	for _, n := range c.Pool {
		if !e164.MatchString(n) {
			bad("pool", "%q is not a number in E.164 form", n)
		}
	}
	if c.MPS <= 0 {
		bad("mps", "must be more than 0 (sends per second per number), not %v", c.MPS)
	}
	switch {
	case c.RequestTimeout < 100*time.Millisecond:
		bad("request_timeout", "must be at least 100ms, not %s", c.RequestTimeout)
	case c.RequestTimeout > MaxRequestTimeout:
		bad("request_timeout", "%s is over the maximum of %s: a retry after a timed-out call waits request_timeout + %s for it to settle, then makes two calls (a lookup at Twilio, the send) of up to request_timeout each, all within the %s a send may take",
			c.RequestTimeout, MaxRequestTimeout, settleMargin, gateways.DefaultSendTimeout)
	}
	if c.MaxSegments < 1 {
		bad("max_segments", "must be at least 1, not %d", c.MaxSegments)
	}
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
