// Package backoff computes retry delays: exponential, capped, with jitter so
// that many clients retrying together spread out.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Jitter returns a random duration in [d/2, d).
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// Delay is the wait before attempt+1: base doubled attempt-1 times, capped
// at limit, with Jitter.
func Delay(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return Jitter(min(d, limit))
}
