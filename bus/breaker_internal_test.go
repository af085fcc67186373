package bus

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A publish that ends because its caller's context ended (cancelled, its
// deadline passed before or while it waited for the store's answer) says
// nothing about the store: other publishes still go through at once, and
// the bus stays ready with nothing failing for the store watcher. One that
// reached the store still has an unknown outcome for its caller.
func TestCallerDeadlineIsNotAStoreFailure(t *testing.T) {
	for _, c := range []struct {
		name        string
		ctx         func(context.Context) (context.Context, context.CancelFunc)
		silent      bool // the store takes the publish and never answers
		wantUnknown bool
	}{
		{name: "cancelled", ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx, cancel
		}},
		{name: "deadline passed", ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithDeadline(ctx, time.Now().Add(-time.Millisecond))
		}},
		{name: "deadline while waiting", silent: true, wantUnknown: true, ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 200*time.Millisecond)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, b := openEmbedded(t)
			if c.silent {
				taken := silentStore(t, ctx, b, StreamOut, OutSubject("g"))
				defer func() {
					select {
					case <-taken:
					default:
						t.Error("the publish did not reach the store")
					}
				}()
			}
			short, cancel := c.ctx(ctx)
			_, err := b.Publish(short, OutSubject("g"), testEnvelope, "m1")
			cancel()
			if err == nil {
				t.Fatal("a publish whose caller's context ended succeeded")
			}
			if c.wantUnknown && !errors.Is(err, ErrOutcomeUnknown) {
				t.Errorf("publish that reached the store: %v, want an unknown outcome", err)
			}
			if _, err := b.Publish(ctx, InSubject("g"), testEnvelope, "m2"); err != nil {
				t.Errorf("another publish after the caller gave up: %v", err)
			}
			if err := b.Ready(ctx); err != nil {
				t.Errorf("Ready after the caller gave up: %v", err)
			}
			if err := b.StoreFault(); err != nil {
				t.Errorf("StoreFault after the caller gave up: %v", err)
			}
			if since, last := b.health.stuck(); !since.IsZero() {
				t.Errorf("the watcher sees something failing since %v: %v", since, last)
			}
		})
	}
}

// A subject whose publish failed once and that stays quiet (no later
// publish clears its mark) does not make the watcher restart the embedded
// server while the store takes writes: it probes the store first, and the
// probe clears the mark and the breaker.
func TestQuietFailedSubjectDoesNotRestartAHealthyStore(t *testing.T) {
	ctx, b := openEmbedded(t)
	server := func() any { return runningServer(b) }
	before := server()
	b.health.recordPublish(OutSubject("g"), errors.New("nats: timeout"))

	deadline := time.Now().Add(stuckAfter + 10*time.Second)
	for {
		since, _ := b.health.stuck()
		if since.IsZero() {
			break // the watcher has decided
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failure mark of a quiet subject was still there after %v", stuckAfter+10*time.Second)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if server() != before {
		t.Fatal("the watcher restarted the embedded server on a healthy disk for a subject that failed once and stayed quiet")
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after the probe: %v", err)
	}
	for _, stream := range []string{StreamOut, StreamIn} {
		s, err := b.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if info, err := s.Info(ctx); err != nil || info.State.Msgs != 0 {
			t.Errorf("%s after the probe: %v messages (%v), want none left", stream, info.State.Msgs, err)
		}
	}
	if _, err := b.Publish(ctx, InSubject("g"), testEnvelope, "m1"); err != nil {
		t.Errorf("publish after the probe: %v", err)
	}
}

// When the probe fails too (here a work stream's store is gone), the
// watcher restarts the server, as it does for a reported write error.
func TestWatcherRestartsWhenTheProbeFails(t *testing.T) {
	ctx, b := openEmbedded(t)
	server := func() any { return runningServer(b) }
	before := server()
	if err := b.js.DeleteStream(ctx, StreamIn); err != nil {
		t.Fatal(err)
	}
	b.health.recordPublish(InSubject("g"), errors.New("nats: no response from stream"))
	deadline := time.Now().Add(stuckAfter + 10*time.Second)
	for server() == before {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not restart the server although the probe of the store failed")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// A store that does not answer within the bus's own bound, while the
// caller would still wait, is failing: the outcome is unknown to the
// caller, and the breaker opens.
func TestStoreSilenceWithinTheCallersTimeIsAFailure(t *testing.T) {
	ctx, b := openEmbedded(t)
	silentStore(t, ctx, b, StreamOut, OutSubject("g"))
	began := time.Now()
	_, err := b.Publish(ctx, OutSubject("g"), testEnvelope, "m1") // ctx: 30 s
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("publish the store did not answer: %v, want an unknown outcome", err)
	}
	if d := time.Since(began); d < answerTimeout || d > answerTimeout+time.Second {
		t.Errorf("gave up after %v, want the bus's bound %v", d, answerTimeout)
	}
	if err := b.Ready(ctx); err == nil {
		t.Error("Ready is nil after the store did not answer")
	}
	if since, _ := b.health.stuck(); since.IsZero() {
		t.Error("the silent subject is not failing for the watcher")
	}
}

// runningServer is the embedded server the bus runs now: a restart
// replaces it.
func runningServer(b *Bus) any {
	b.emb.mu.Lock()
	defer b.emb.mu.Unlock()
	return b.emb.srv
}
