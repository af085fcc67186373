package telnyx

import (
	"errors"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/gateways/sms"
)

// TestFind: an attempt no webhook has named is asked about again while
// one may still come, and after WebhookWait its outcome is unknown —
// never "not sent", which would send it a second time.
func TestFind(t *testing.T) {
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	p := &Provider{now: func() time.Time { return now }}
	for _, tt := range []struct {
		age     time.Duration
		unknown bool
	}{
		{10 * time.Second, false},
		{WebhookWait - time.Second, false},
		{WebhookWait, true},
		{time.Hour, true},
	} {
		id, err := p.Find(t.Context(), sms.Attempt{Started: now.Add(-tt.age)})
		if id != "" || err == nil || errors.Is(err, sms.ErrOutcomeUnknown) != tt.unknown {
			t.Errorf("%v after the attempt: %q, %v; want unknown %v", tt.age, id, err, tt.unknown)
		}
	}
}
