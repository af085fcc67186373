package sms

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// Requests keep the number's interval even when what comes between the
// turn and the request (the attempt record's write) takes longer for an
// earlier message than for a later one.
func TestPaceSpacesRequestsNotTurns(t *testing.T) {
	p := newPace(20) // one per 50 ms
	ctx := context.Background()
	var mu sync.Mutex
	var at []time.Time
	var wg sync.WaitGroup
	for i, write := range []time.Duration{30 * time.Millisecond, 0, 20 * time.Millisecond, 0} {
		if err := p.takeTurn(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(write) // stands for the attempt record's write, slower for some messages
			made, err := p.request(ctx)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			mu.Lock()
			at = append(at, made)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(at, time.Time.Compare)
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < p.every {
			t.Errorf("requests %d and %d went %v apart, want at least %v", i-1, i, gap, p.every)
		}
	}
	// One an hour: the second request must wait, and gives up with its
	// context.
	hourly := newPace(1.0 / 3600)
	if _, err := hourly.request(ctx); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := hourly.request(cancelled); err == nil {
		t.Error("a request within the interval did not wait, or ignored its cancelled context")
	}
}
