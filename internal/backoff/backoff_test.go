package backoff_test

import (
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/backoff"
)

func TestDelay(t *testing.T) {
	tests := []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{10, 15 * time.Second, 30 * time.Second}, // capped
		{1000, 15 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			if d := backoff.Delay(time.Second, 30*time.Second, tt.attempt); d < tt.lo || d >= tt.hi {
				t.Fatalf("Delay(attempt %d) = %v, want in [%v, %v)", tt.attempt, d, tt.lo, tt.hi)
			}
		}
	}
	if d := backoff.Jitter(0); d != 0 {
		t.Errorf("Jitter(0) = %v", d)
	}
}
