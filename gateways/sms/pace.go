package sms

import (
	"context"
	"sync"
	"time"
)

// pace keeps one sending number at its mps (messages per second).
//
// A message first takes its turn (turn), before its attempt is recorded:
// a backlog waits with no attempt on record, so a process killed meanwhile
// leaves nothing whose outcome must be settled. Then, right before the
// request (request), it waits out the interval since the number's
// previous request: the attempt record's write takes a varying time (an
// fsync, or a group commit), and the provider counts requests as they
// arrive. Turns alone let two requests go 197 ms apart at mps 4 (seen in
// CI, 2026-12-05), which a provider enforcing 4 per second may refuse.
type pace struct {
	every time.Duration

	mu   sync.Mutex
	turn time.Time // when the next message may take its turn
	last time.Time // when the number's last request went
}

func newPace(mps float64) *pace {
	return &pace{every: time.Duration(float64(time.Second) / mps)}
}

// takeTurn waits for this message's turn among the number's messages.
func (p *pace) takeTurn(ctx context.Context) error {
	p.mu.Lock()
	at := time.Now()
	if p.turn.After(at) {
		at = p.turn
	}
	p.turn = at.Add(p.every)
	p.mu.Unlock()
	return sleepUntil(ctx, at)
}

// request waits until the number's previous request is an interval ago,
// and counts this one as made now (returned).
func (p *pace) request(ctx context.Context) (time.Time, error) {
	for {
		p.mu.Lock()
		now := time.Now()
		at := p.last.Add(p.every)
		if !at.After(now) {
			p.last = now
			p.mu.Unlock()
			return now, nil
		}
		p.mu.Unlock()
		if err := sleepUntil(ctx, at); err != nil {
			return time.Time{}, err
		}
	}
}

func sleepUntil(ctx context.Context, at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
