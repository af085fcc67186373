package sms

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/xmppgw/xmppgw/gateways"
)

// Holdings are the numbers one provider account holds for the gateway.
// Provider configurations embed it (koanf ",squash").
type Holdings struct {
	// Numbers are static assignments: E.164 number → bare JID.
	Numbers map[string]string `koanf:"numbers"`
	// Pool holds the numbers that registration hands out.
	Pool []string `koanf:"pool"`
}

// Settings are what every SMS gateway has, whatever its provider.
// Provider configurations embed it (koanf ",squash").
type Settings struct {
	// DefaultRegion (ISO 3166, e.g. US) interprets numbers typed without a
	// country code.
	DefaultRegion string `koanf:"default_region"`
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

// DefaultSettings are the defaults of every SMS gateway.
func DefaultSettings() Settings {
	return Settings{MPS: 1, MaxSegments: 10, RequestTimeout: 8 * time.Second, CorrectionPrefix: "* "}
}

// MaxRequestTimeout is the longest request_timeout. A retry of a message
// whose earlier attempt has an unknown outcome waits request_timeout + 2 s
// for that call to settle, asks the provider (a lookup call) and sends (a
// create call), each call bounded by request_timeout, and all of it within
// the runner's send timeout (gateways.DefaultSendTimeout, 30 s); a longer
// setting would make such retries time out and tell the sender
// remote-server-timeout about an SMS that probably went out.
const MaxRequestTimeout = (gateways.DefaultSendTimeout - settleMargin) / 3 / time.Second * time.Second

var (
	// E164 matches a number in E.164 form.
	E164    = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	bareJID = regexp.MustCompile(`^[^@/\s]+@[^@/\s]+$`)
)

// Validate reports every problem, each "key: what is wrong". provider
// names the provider in the texts ("Twilio").
func (s *Settings) Validate(provider string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if s.DefaultRegion != "" {
		if _, ok := phonenumbers.GetSupportedRegions()[strings.ToUpper(s.DefaultRegion)]; !ok {
			bad("default_region", "%q is not a region code (ISO 3166-1 alpha-2, e.g. US, GB)", s.DefaultRegion)
		}
	}
	if s.MPS <= 0 {
		bad("mps", "must be more than 0 (sends per second per number), not %v", s.MPS)
	}
	switch {
	case s.RequestTimeout < 100*time.Millisecond:
		bad("request_timeout", "must be at least 100ms, not %s", s.RequestTimeout)
	case s.RequestTimeout > MaxRequestTimeout:
		bad("request_timeout", "%s is over the maximum of %s: a retry after a timed-out call waits request_timeout + %s for it to settle, then makes two calls (a lookup at %s, the send) of up to request_timeout each, all within the %s a send may take",
			s.RequestTimeout, MaxRequestTimeout, settleMargin, provider, gateways.DefaultSendTimeout)
	}
	if s.MaxSegments < 1 {
		bad("max_segments", "must be at least 1, not %d", s.MaxSegments)
	}
	return errors.Join(errs...)
}

// Validate reports malformed numbers and JIDs, and a user given two
// numbers.
func (n *Holdings) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	seen := map[string]string{}
	for num, u := range n.Numbers {
		if !E164.MatchString(num) {
			bad("numbers", "%q is not a number in E.164 form (e.g. \"+15551234567\")", num)
		}
		if !bareJID.MatchString(u) {
			bad("numbers", "%s: %q is not a bare JID (user@domain)", num, u)
		}
		if other, dup := seen[strings.ToLower(u)]; dup {
			bad("numbers", "%s has both %s and %s; one number per user", u, other, num)
		}
		seen[strings.ToLower(u)] = num
	}
	for _, num := range n.Pool {
		if !E164.MatchString(num) {
			bad("pool", "%q is not a number in E.164 form", num)
		}
	}
	return errors.Join(errs...)
}
