package component_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/component"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/metrics"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// leased is one of several processes serving a domain: a component with
// its own lease and metrics.
type leased struct {
	c      *component.Component
	m      *metrics.Metrics
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startLeased(t *testing.T, b *bus.Bus, srv *xmpptest.Server) *leased {
	t.Helper()
	l := &leased{m: metrics.New(), done: make(chan error, 1)}
	var err error
	l.c, err = component.New(component.Options{
		Name: "sms", Domain: domain, Secret: "secret", Server: srv.ComponentAddr(), Bus: b,
		IdentityType: "sms", AllowedDomains: []string{"localhost"},
		Lease:       b.Lease("component.sms"),
		Metrics:     l.m,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("component.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { l.done <- l.c.Run(ctx) }()
	t.Cleanup(func() { l.stop(t) })
	return l
}

func (l *leased) stop(t *testing.T) {
	t.Helper()
	l.once.Do(func() {
		l.cancel()
		select {
		case err := <-l.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
}

// active reads xmppgw_component_active{gateway="sms"}; -1 when absent.
func (l *leased) active() float64 {
	mfs, _ := l.m.Registry.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "xmppgw_component_active" {
			for _, m := range mf.GetMetric() {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// waitFor polls cond every 10 ms and returns how long it took.
func waitFor(t *testing.T, what string, total time.Duration, cond func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !cond() {
		if time.Since(began) > total {
			t.Fatalf("%s: not within %v", what, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(began)
}

func up(c *component.Component) bool { ok, _ := c.Status(); return ok }

// Two processes for one domain: only the lease holder connects; the other
// is a standby that takes over at once when the holder stops, and a holder
// whose lease is taken from it closes its stream.
func TestLeaseStandby(t *testing.T) {
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{domain: "secret"},
		Users:      map[string]string{"alice": "password"},
	})
	b := bustest.Open(t)
	alice := xmpptest.Login(t, srv, "alice", "password")

	first := startLeased(t, b, srv)
	waitFor(t, "first component up", timeout, func() bool { return up(first.c) })
	second := startLeased(t, b, srv)
	waitFor(t, "second component standing by", timeout, second.c.Standby)
	if ok, reason := second.c.Status(); ok || !strings.HasPrefix(reason, "standby: another process holds the component lease") {
		t.Errorf("standby status = %v, %q", ok, reason)
	}
	if first.active() != 1 || second.active() != 0 {
		t.Errorf("xmppgw_component_active = %v (holder), %v (standby); want 1, 0", first.active(), second.active())
	}
	// The holder renews: for longer than a TTL nothing changes.
	for began := time.Now(); time.Since(began) < bus.LeaseTTL+500*time.Millisecond; time.Sleep(50 * time.Millisecond) {
		if !up(first.c) || !second.c.Standby() {
			t.Fatalf("after %v: holder up %v, standby %v", time.Since(began), up(first.c), second.c.Standby())
		}
	}
	wantResult(t, iq(t, alice, domain, "get", `<ping xmlns="urn:xmpp:ping"/>`))

	// An orderly stop releases the lease after closing the stream.
	first.stop(t)
	d := waitFor(t, "standby up after the holder stopped", 5*time.Second, func() bool { return up(second.c) })
	t.Logf("standby connected %v after the holder's Run returned", d.Round(time.Millisecond))
	if d > 2*time.Second {
		t.Errorf("handover took %v, want well under the TTL (%v): the lease is released, not left to expire", d, bus.LeaseTTL)
	}
	if second.active() != 1 || first.active() != 0 {
		t.Errorf("xmppgw_component_active = %v (new holder), %v (stopped); want 1, 0", second.active(), first.active())
	}
	wantResult(t, iq(t, alice, domain, "get", `<ping xmlns="urn:xmpp:ping"/>`))

	// The lease taken away (as if the holder had been cut off long enough
	// for it to expire and another process had taken it): the stream is
	// closed at once, the server bounces what is sent to the domain, and
	// the component connects again once it holds the lease again.
	kv, err := b.JetStream().KeyValue(t.Context(), bus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "component.sms", []byte("someone-else")); err != nil {
		t.Fatal(err)
	}
	d = waitFor(t, "stream closed after the lease was lost", 3*time.Second, func() bool { return !up(second.c) })
	t.Logf("stream closed %v after the lease was taken", d.Round(time.Millisecond))
	if _, reason := second.c.Status(); !strings.Contains(reason, "lease") {
		t.Errorf("status reason after losing the lease = %q", reason)
	}
	r := iq(t, alice, domain, "get", `<ping xmlns="urn:xmpp:ping"/>`)
	if r.Type != "error" {
		t.Errorf("ping while no process holds the lease: %s, want an error from the server", r.Raw)
	}
	// "someone-else" never renews: its entry expires and the lease is ours again.
	waitFor(t, "component up again", bus.LeaseTTL+5*time.Second, func() bool { return up(second.c) })
	wantResult(t, iq(t, alice, domain, "get", `<ping xmlns="urn:xmpp:ping"/>`))
}
