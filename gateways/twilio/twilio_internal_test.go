package twilio

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/xmppgw/xmppgw/gateways"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		permanent bool
		cond      string
		code      string
	}{
		{"429", &client.TwilioRestError{Status: 429, Code: 20429, Message: "Too Many Requests"}, false, "", ""},
		{"500", &client.TwilioRestError{Status: 500, Code: 20500, Message: "Internal Server Error"}, false, "", ""},
		{"503", &client.TwilioRestError{Status: 503, Code: 20503, Message: "Service Unavailable"}, false, "", ""},
		{"network", errors.New("dial tcp: connection refused"), false, "", ""},
		{"21610 STOP", &client.TwilioRestError{Status: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"}, true, "not-allowed", "21610"},
		{"21211 bad To", &client.TwilioRestError{Status: 400, Code: 21211, Message: "Invalid 'To' Phone Number"}, true, "jid-malformed", "21211"},
		{"other 4xx keeps Twilio's text", &client.TwilioRestError{Status: 400, Code: 21617, Message: "The concatenated message body exceeds the 1600 character limit."}, true, "not-acceptable", "21617"},
		{"auth", &client.TwilioRestError{Status: 401, Code: 20003, Message: "Authenticate"}, true, "service-unavailable", "20003"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.err)
			if got := errors.Is(err, gateways.ErrPermanent); got != tt.permanent {
				t.Fatalf("permanent = %v, want %v (%v)", got, tt.permanent, err)
			}
			if !tt.permanent {
				return
			}
			var ge *gateways.Error
			errors.As(err, &ge)
			if string(ge.Condition) != tt.cond || ge.Code != tt.code || ge.Text == "" {
				t.Errorf("got %s code %s text %q; want %s code %s", ge.Condition, ge.Code, ge.Text, tt.cond, tt.code)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() *Config {
		c := newConfig().(*Config)
		c.AccountSID = "AC00000000000000000000000000000000"
		c.AuthToken = "0123456789abcdef0123456789abcdef"
		c.Numbers = map[string]string{"+15550009999": "alice@localhost"}
		return c
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	longest := good()
	longest.RequestTimeout = MaxRequestTimeout
	if err := longest.Validate(); err != nil || 3*MaxRequestTimeout+2*time.Second > gateways.DefaultSendTimeout {
		t.Errorf("request_timeout %s: %v; a retry needs up to %s of the %s", MaxRequestTimeout, err, 3*MaxRequestTimeout+2*time.Second, gateways.DefaultSendTimeout)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no account", func(c *Config) { c.AccountSID = "" }, "account_sid: required"},
		{"bad account", func(c *Config) { c.AccountSID = "AB123" }, `account_sid: "AB123" is not an account SID`},
		{"no token", func(c *Config) { c.AuthToken = "" }, "auth_token: required"},
		// twilio-go refuses these on every request; the value is a secret
		// and must not be echoed (checked below).
		{"token with a dash", func(c *Config) { c.AuthToken = "0123456789abcdef-123456789abcdef" }, "auth_token: is not a Twilio auth token (32 hex digits, from the Twilio console; 32 characters given, including characters other than 0-9 and a-f)"},
		{"short token", func(c *Config) { c.AuthToken = "0123456789abcdef" }, "auth_token: is not a Twilio auth token (32 hex digits, from the Twilio console; 16 characters given)"},
		{"token with a newline", func(c *Config) { c.AuthToken = "0123456789abcdef0123456789abcde\n" }, "including white space"},
		{"bad api_url", func(c *Config) { c.APIURL = "127.0.0.1:9090" }, "api_url:"},
		{"bad region", func(c *Config) { c.DefaultRegion = "XX" }, `default_region: "XX" is not a region code`},
		{"bad number", func(c *Config) { c.Numbers = map[string]string{"5550009999": "alice@localhost"} }, `numbers: "5550009999" is not a number in E.164 form`},
		{"bad jid", func(c *Config) { c.Numbers = map[string]string{"+15550009999": "alice"} }, `is not a bare JID`},
		{"bad pool", func(c *Config) { c.Pool = []string{"+1"} }, `pool: "+1"`},
		{"mps", func(c *Config) { c.MPS = 0 }, "mps: must be more than 0"},
		{"segments", func(c *Config) { c.MaxSegments = 0 }, "max_segments: must be at least 1"},
		{"short request_timeout", func(c *Config) { c.RequestTimeout = 10 * time.Millisecond }, "request_timeout: must be at least 100ms"},
		// A retry after a timeout must fit its settling wait, the lookup and
		// the send into the runner's 30 s.
		{"long request_timeout", func(c *Config) { c.RequestTimeout = 20 * time.Second },
			"request_timeout: 20s is over the maximum of 9s: a retry after a timed-out call waits request_timeout + 2s for it to settle, then makes two calls (a lookup at Twilio, the send) of up to request_timeout each, all within the 30s a send may take"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.change(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
			if c.AuthToken != "" && err != nil && strings.Contains(err.Error(), strings.TrimSpace(c.AuthToken)) {
				t.Errorf("Validate() = %v: shows the auth token", err)
			}
		})
	}
}
