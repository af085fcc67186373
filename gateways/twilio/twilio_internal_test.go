package twilio

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/xmppgw/xmppgw/gateways"
)

func TestSegments(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int
		enc  string
	}{
		{"empty", "", 1, "GSM-7"},
		{"160 GSM", strings.Repeat("a", 160), 1, "GSM-7"},
		{"161 GSM", strings.Repeat("a", 161), 2, "GSM-7"},
		{"306 GSM", strings.Repeat("a", 306), 2, "GSM-7"},
		{"307 GSM", strings.Repeat("a", 307), 3, "GSM-7"},
		{"extension chars count twice", strings.Repeat("€", 80), 1, "GSM-7"},
		{"81 euro signs", strings.Repeat("€", 81), 2, "GSM-7"},
		{"umlauts are GSM", strings.Repeat("ü", 160), 1, "GSM-7"},
		{"70 UCS-2", strings.Repeat("ж", 70), 1, "UCS-2"},
		{"71 UCS-2", strings.Repeat("ж", 71), 2, "UCS-2"},
		{"200 UCS-2", strings.Repeat("ж", 200), 3, "UCS-2"},
		{"200 UCS-2 mixed", strings.Repeat("ж", 199) + "a", 3, "UCS-2"},
		{"emoji are two UTF-16 units", strings.Repeat("😀", 35), 1, "UCS-2"},
		{"36 emoji", strings.Repeat("😀", 36), 2, "UCS-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, enc := Segments(tt.body)
			if n != tt.want || enc != tt.enc {
				t.Errorf("Segments = %d %s, want %d %s", n, enc, tt.want, tt.enc)
			}
		})
	}
	// 200 UCS-2 characters of the BMP are 200 units: ceil(200/67) = 3
	// segments (table above). Four segments start past 201 units, e.g. 199
	// characters and two emoji (203 units).
	if n, _ := Segments(strings.Repeat("ж", 199) + "😀😀"); n != 4 {
		t.Errorf("203 UCS-2 units: %d segments, want 4", n)
	}
}

func TestTranslateAddress(t *testing.T) {
	a := &Adapter{cfg: &Config{DefaultRegion: "US"}}
	tests := []struct {
		in, want, cond string
	}{
		{"(555) 123-4567", "+15551234567", ""},
		{"555.123.4567", "+15551234567", ""},
		{"+44 20 7946 0958", "+442079460958", ""},
		{"+1 555 123 4567", "+15551234567", ""},
		{"011 44 20 7946 0958", "+442079460958", ""},
		{"+86 12345678901234567", "", "jid-malformed"}, // the parser would drop digits
		{"12", "", "jid-malformed"},
		{"call me", "", "jid-malformed"},
		{"", "", "jid-malformed"},
	}
	for _, tt := range tests {
		got, err := a.TranslateAddress(tt.in)
		if tt.cond == "" {
			if err != nil || got != tt.want {
				t.Errorf("TranslateAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		var ge *gateways.Error
		if !errors.As(err, &ge) || string(ge.Condition) != tt.cond || ge.Text == "" {
			t.Errorf("TranslateAddress(%q) error = %v, want %s with a text", tt.in, err, tt.cond)
		}
	}
	uk := &Adapter{cfg: &Config{DefaultRegion: "GB"}}
	if got, err := uk.TranslateAddress("020 7946 0958"); err != nil || got != "+442079460958" {
		t.Errorf("GB trunk prefix: %q, %v", got, err)
	}
	noRegion := &Adapter{cfg: &Config{}}
	if _, err := noRegion.TranslateAddress("555 123 4567"); err == nil || !strings.Contains(err.Error(), "country code") {
		t.Errorf("without default_region: %v", err)
	}
}

func TestCheckRecipient(t *testing.T) {
	tests := []struct {
		to, cond, text string
	}{
		{"+15551234567", "", ""},
		{"ACME Bank", "not-acceptable", "cannot receive replies"},
		{"acme", "not-acceptable", "cannot receive replies"},
		{"12345", "not-acceptable", "short code"},
		{"+12", "jid-malformed", "E.164"},
		{"555-1234-567-890-1234", "jid-malformed", "E.164"},
	}
	for _, tt := range tests {
		err := checkRecipient(tt.to)
		if tt.cond == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.to, err)
			}
			continue
		}
		var ge *gateways.Error
		if !errors.As(err, &ge) || string(ge.Condition) != tt.cond || !strings.Contains(ge.Text, tt.text) || !errors.Is(err, gateways.ErrPermanent) {
			t.Errorf("%q: %v, want permanent %s containing %q", tt.to, err, tt.cond, tt.text)
		}
	}
}

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
	if err := longest.Validate(); err != nil || 3*MaxRequestTimeout+settleMargin > gateways.DefaultSendTimeout {
		t.Errorf("request_timeout %s: %v; a retry needs up to %s of the %s", MaxRequestTimeout, err, 3*MaxRequestTimeout+settleMargin, gateways.DefaultSendTimeout)
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

// TestShorten: a reply's quote is cut to its limit without splitting a
// character a reader sees as one (an emoji sequence, a letter and its
// accent), after a word when one ends near the cut.
func TestShorten(t *testing.T) {
	a57 := strings.Repeat("a", 57)
	tests := []struct {
		name, in, ellipsis, want string
	}{
		{"short enough", "See you at 7", "…", "See you at 7"},
		{"exactly the limit", strings.Repeat("b", 60), "…", strings.Repeat("b", 60)},
		{"hard cut", strings.Repeat("b", 61), "…", strings.Repeat("b", 59) + "…"},
		{"hard cut, three dots", strings.Repeat("b", 61), "...", strings.Repeat("b", 57) + "..."},
		{"after a word", strings.Repeat("b", 50) + " cdefghijklmnop", "…", strings.Repeat("b", 50) + "…"},
		{"a space right at the cut", strings.Repeat("b", 59) + " c", "…", strings.Repeat("b", 59) + "…"},
		{"zero-width joiner sequence", a57 + "👩\u200d👩\u200d👧bbbb", "…", a57 + "…"},
		{"skin tone", strings.Repeat("a", 58) + "👍🏽bbb", "…", strings.Repeat("a", 58) + "…"},
		{"combining accent", strings.Repeat("a", 58) + "e\u0301bbb", "…", strings.Repeat("a", 58) + "…"},
		{"keycap", strings.Repeat("a", 57) + "1\ufe0f\u20e3bb", "…", strings.Repeat("a", 57) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shorten(tt.in, 60, tt.ellipsis)
			if got != tt.want {
				t.Errorf("shorten(%q) =\n%q, want\n%q", tt.in, got, tt.want)
			}
			if n := len([]rune(got)); n > 60 {
				t.Errorf("shorten(%q) has %d characters", tt.in, n)
			}
		})
	}
}
