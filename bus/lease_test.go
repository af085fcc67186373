package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
)

// sharedBus is an embedded bus with a listener and a second connection to
// it, as a second process would have.
func sharedBus(t *testing.T) (first, second *bus.Bus) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	first = openEmbedded(t, bus.Options{Listen: addr})
	second = openExternal(t, "nats://"+addr)
	return first, second
}

func openExternal(t *testing.T, url string) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{URL: url})
	if err != nil {
		t.Fatalf("Open %s: %v", url, err)
	}
	t.Cleanup(func() { closeBus(t, b) })
	return b
}

// acquire takes the lease or fails the test within timeout.
func acquire(t *testing.T, l *bus.Lease, timeout time.Duration) (context.Context, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	held, release, err := l.Acquire(ctx, nil)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	t.Cleanup(release)
	return held, release
}

// acquiring runs Acquire in the background; the result arrives on the
// channel with the time it was acquired.
type acquired struct {
	held    context.Context
	release func()
	err     error
	at      time.Time
}

func acquiring(t *testing.T, ctx context.Context, l *bus.Lease, standby func(string)) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		held, release, err := l.Acquire(ctx, standby)
		ch <- acquired{held, release, err, time.Now()}
	}()
	t.Cleanup(func() {
		select {
		case a := <-ch:
			if a.release != nil {
				a.release()
			}
		default:
		}
	})
	return ch
}

func holderOf(t *testing.T, b *bus.Bus, key string) string {
	t.Helper()
	kv, err := b.JetStream().KeyValue(t.Context(), bus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(t.Context(), key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(e.Value())
}

func TestLeaseBucket(t *testing.T) {
	b := openEmbedded(t, bus.Options{})
	l := b.Lease("component.sms")
	acquire(t, l, 10*time.Second)
	kv, err := b.JetStream().KeyValue(t.Context(), bus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != bus.LeaseTTL {
		t.Errorf("TTL = %v, want %v", st.TTL(), bus.LeaseTTL)
	}
	if got := holderOf(t, b, "component.sms"); got != l.Holder() {
		t.Errorf("holder = %q, want %q", got, l.Holder())
	}
	if a, b := l.Holder(), b.Lease("component.sms").Holder(); a == b || !strings.Contains(a, "/") {
		t.Errorf("holder ids %q and %q: want distinct host/pid/random ids", a, b)
	}
}

// Two processes: one holds, the other waits as a standby and takes over
// at once when the holder releases.
func TestLeaseStandbyTakesOverOnRelease(t *testing.T) {
	b1, b2 := sharedBus(t)
	active, standby := b1.Lease("component.sms"), b2.Lease("component.sms")
	held1, release1 := acquire(t, active, 10*time.Second)

	told := make(chan string, 1)
	ch := acquiring(t, t.Context(), standby, func(h string) { told <- h })
	select {
	case h := <-told:
		if h != active.Holder() {
			t.Errorf("standby told holder %q, want %q", h, active.Holder())
		}
	case a := <-ch:
		t.Fatalf("second Acquire returned while the lease is held: %v", a.err)
	case <-time.After(5 * time.Second):
		t.Fatal("standby callback not called within 5 s")
	}
	// The holder renews: well past the TTL, the standby still waits.
	select {
	case a := <-ch:
		t.Fatalf("standby acquired a held lease (err %v)", a.err)
	case <-held1.Done():
		t.Fatalf("holder lost the lease: %v", context.Cause(held1))
	case <-time.After(bus.LeaseTTL + time.Second):
	}

	began := time.Now()
	release1()
	if held1.Err() == nil {
		t.Errorf("held context not ended by release")
	}
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("standby Acquire: %v", a.err)
		}
		t.Logf("handover after release: %v", a.at.Sub(began).Round(time.Millisecond))
		if d := a.at.Sub(began); d > time.Second {
			t.Errorf("handover took %v, want < 1 s after release", d)
		}
		if got := holderOf(t, b1, "component.sms"); got != standby.Holder() {
			t.Errorf("holder = %q, want the standby %q", got, standby.Holder())
		}
		if errors.Is(context.Cause(held1), bus.ErrLeaseLost) {
			t.Errorf("released lease reported as lost")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("standby did not take the released lease within 5 s")
	}
	release1() // twice is harmless
}

// A holder that can no longer reach the bus gives the lease up before it
// expires; a standby takes it once it expired.
func TestLeaseExpiresWhenHolderDies(t *testing.T) {
	b1, b2 := sharedBus(t)
	doomed, standby := b2.Lease("component.sms"), b1.Lease("component.sms")
	held, _ := acquire(t, doomed, 10*time.Second)
	ch := acquiring(t, t.Context(), standby, nil)

	// The holder's process loses its connection for good.
	died := time.Now()
	closeBus(t, b2)

	var lostAt time.Time
	select {
	case <-held.Done():
		lostAt = time.Now()
		if !errors.Is(context.Cause(held), bus.ErrLeaseLost) {
			t.Errorf("cause = %v, want ErrLeaseLost", context.Cause(held))
		}
	case <-time.After(bus.LeaseTTL + time.Second):
		t.Fatal("the cut-off holder did not give the lease up")
	}
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("standby Acquire: %v", a.err)
		}
		t.Logf("holder gave up after %v; standby acquired after %v", lostAt.Sub(died).Round(time.Millisecond), a.at.Sub(died).Round(time.Millisecond))
		if !lostAt.Before(a.at) {
			t.Errorf("the standby acquired (%v) before the old holder gave up (%v): two holders", a.at, lostAt)
		}
		if d := a.at.Sub(died); d > bus.LeaseTTL+1500*time.Millisecond {
			t.Errorf("takeover %v after the holder died, want within the TTL (%v) + 1.5 s", d, bus.LeaseTTL)
		}
	case <-time.After(bus.LeaseTTL + 5*time.Second):
		t.Fatal("standby did not acquire the expired lease")
	}
}

// A holder whose entry was changed behind its back (a takeover it did not
// see coming) learns it at the next renewal, and its release does not
// delete the new holder's entry.
func TestLeaseLostWhenTakenOver(t *testing.T) {
	b := openEmbedded(t, bus.Options{})
	l := b.Lease("component.sms")
	held, release := acquire(t, l, 10*time.Second)
	kv, err := b.JetStream().KeyValue(t.Context(), bus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "component.sms", []byte("someone-else")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Done():
		if !errors.Is(context.Cause(held), bus.ErrLeaseLost) {
			t.Errorf("cause = %v, want ErrLeaseLost", context.Cause(held))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("holder did not notice the takeover within 2 s")
	}
	release()
	if got := holderOf(t, b, "component.sms"); got != "someone-else" {
		t.Errorf("after the old holder's release the entry is %q, want the new holder's", got)
	}
}

func TestLeaseAcquireCancelled(t *testing.T) {
	b := openEmbedded(t, bus.Options{})
	acquire(t, b.Lease("component.sms"), 10*time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	ch := acquiring(t, ctx, b.Lease("component.sms"), nil)
	cancel()
	select {
	case a := <-ch:
		if !errors.Is(a.err, context.Canceled) || a.held != nil || a.release != nil {
			t.Errorf("Acquire after cancel = %v, %v; want context.Canceled and nothing held", a.held, a.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Acquire did not return after cancel")
	}
}

// A renewal that timed out but was stored leaves the entry at a revision
// the holder did not see; the entry still holds its id, so it keeps the
// lease.
func TestLeaseAdoptsItsOwnLateRenewal(t *testing.T) {
	b := openEmbedded(t, bus.Options{})
	l := b.Lease("component.sms")
	held, _ := acquire(t, l, 10*time.Second)
	kv, err := b.JetStream().KeyValue(t.Context(), bus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(t.Context(), "component.sms", []byte(l.Holder()))
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 3*time.Second, func() error {
		if held.Err() != nil {
			t.Fatalf("lease lost over its own late renewal: %v", context.Cause(held))
		}
		e, err := kv.Get(t.Context(), "component.sms")
		if err != nil {
			return err
		}
		if e.Revision() <= rev || string(e.Value()) != l.Holder() {
			return fmt.Errorf("entry %q at revision %d; want renewals after %d", e.Value(), e.Revision(), rev)
		}
		return nil
	})
}

// A process that lost the lease while its entry still carries its id (it
// could not renew in time, nobody took the lease since) takes it back at
// once rather than waiting for the entry to expire; another holder waits.
func TestLeaseTakesBackOwnEntry(t *testing.T) {
	b1, b2 := sharedBus(t)
	first := b2.Lease("component.sms")
	acquire(t, first, 10*time.Second)
	closeBus(t, b2) // cut off: its entry stays until the TTL

	began := time.Now()
	same := bus.LeaseWithHolder(b1, "component.sms", first.Holder())
	acquire(t, same, 10*time.Second)
	if d := time.Since(began); d > time.Second {
		t.Errorf("took its own entry back after %v, want at once (not after the TTL)", d)
	}
	if got := holderOf(t, b1, "component.sms"); got != first.Holder() {
		t.Errorf("holder = %q, want %q", got, first.Holder())
	}
	ctx, cancel := context.WithTimeout(t.Context(), bus.LeaseTTL+time.Second)
	defer cancel()
	if _, _, err := b1.Lease("component.sms").Acquire(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("another holder's Acquire = %v, want it to wait while the lease is renewed", err)
	}
}

// A restart of the NATS server shorter than the lease's margin does not cost
// the holder its lease, although the client's own reconnect backoff (2 s)
// is longer than the margin: the holder makes the client try again at once.
func TestLeaseSurvivesQuickServerRestart(t *testing.T) {
	start := restartableNATS(t)
	srv := start()
	b := openExternal(t, srv.ClientURL())
	l := b.Lease("component.sms")
	held, _ := acquire(t, l, 10*time.Second)
	srv.Shutdown()
	srv.WaitForShutdown()
	down := time.Now()
	// The outage: long enough that the client's immediate first reconnect
	// attempt fails and it backs off.
	time.Sleep(300 * time.Millisecond)
	srv = start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	t.Logf("server down for %v", time.Since(down).Round(time.Millisecond))
	select {
	case <-held.Done():
		t.Fatalf("lease lost across a quick restart: %v", context.Cause(held))
	case <-time.After(bus.LeaseTTL + time.Second):
	}
	if got := holderOf(t, b, "component.sms"); got != l.Holder() {
		t.Errorf("holder after the restart = %q, want %q", got, l.Holder())
	}
}
