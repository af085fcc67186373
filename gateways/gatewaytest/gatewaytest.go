package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/gateways"
)

// DefaultUser is the sender when Harness.User is empty.
const DefaultUser = "alice@example.com/conformance"

// Harness describes one adapter under test, connected to a real (or, for
// Twilio only, faithfully faked) network.
type Harness struct {
	// Info is the adapter as registered; capabilities are checked against it.
	Info gateways.Info
	// New returns a fresh, unstarted adapter for the test's network. It is
	// called several times, once or more per check.
	New func(t *testing.T) gateways.Adapter
	// User is the XMPP sender's full JID for Outbound.From. Default
	// DefaultUser.
	User string
	// Contact is an address Send accepts.
	Contact string
	// Invalid is an address Send refuses permanently; "" skips that check.
	Invalid string
	// Room, for adapters with Capabilities.Rooms, is a room Join accepts;
	// "" skips the room checks.
	Room string
	// Prepare, when set, runs after every successful Start and before the
	// first send (register the user, say). It must be idempotent.
	Prepare func(t *testing.T, a gateways.Adapter)
	// Disconnect and Reconnect, when set, make the network unreachable and
	// reachable again, as an outage would (connections refused or cut).
	// Both or neither.
	Disconnect, Reconnect func(t *testing.T)
	// Received, when set, reports whether the network got a message with
	// this body. Bodies are unique per send. It is asked about corrections
	// and replies too (Features): it should report the body also when the
	// adapter marked the message as a correction or quoted the message
	// replied to.
	Received func(t *testing.T, body string) bool
}

// Run checks the adapter h describes against the contract of package
// gateways, one subtest per check, each with fresh adapters. The subtests
// run one after another (the goroutine check counts what is running);
// do not run Run in parallel with other tests of the same package.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if err := h.init(); err != nil {
		t.Fatalf("gatewaytest: %v", err)
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			c.fn(newChecker(t, t, h))
		})
	}
}

// init fills defaults and reports a harness that cannot be used.
func (h *Harness) init() error {
	if h.User == "" {
		h.User = DefaultUser
	}
	switch {
	case h.New == nil:
		return errors.New("Harness.New is required")
	case h.Contact == "":
		return errors.New("Harness.Contact is required")
	case (h.Disconnect == nil) != (h.Reconnect == nil):
		return errors.New("Harness.Disconnect and Harness.Reconnect go together")
	}
	return nil
}

// check is one conformance check. fn reports through c.t only, so that the
// suite's own tests can run it under a recorder.
type check struct {
	name string
	fn   func(c *checker)
}

var checks = []check{
	{"Lifecycle", checkLifecycle},
	{"StartContext", checkStartContext},
	{"SendDisconnected", checkSendDisconnected},
	{"Errors", checkErrors},
	{"Capabilities", checkCapabilities},
	{"Features", checkFeatures},
	{"Goroutines", checkGoroutines},
	{"SendContext", checkSendContext},
	{"Rooms", checkRooms},
}

// limits bounds what the checks wait for.
type limits struct {
	start     time.Duration // context of Start
	send      time.Duration // context of Send
	stop      time.Duration // context of Stop
	prompt    time.Duration // a call with an ended context must return within this
	slack     time.Duration // allowed past a context deadline
	offline   time.Duration // context of a send while disconnected
	settle    time.Duration // for the network or the runner to show an effect
	reconnect time.Duration // for sends to work again after Reconnect
	leak      time.Duration // for the adapter's goroutines to end after Stop
}

var defaultLimits = limits{
	start:     30 * time.Second,
	send:      15 * time.Second,
	stop:      10 * time.Second,
	prompt:    2 * time.Second,
	slack:     time.Second,
	offline:   3 * time.Second,
	settle:    15 * time.Second,
	reconnect: 45 * time.Second,
	leak:      5 * time.Second,
}

const pollInterval = 10 * time.Millisecond

// checker runs one check. Failures go to t; the harness' hooks get ht,
// the real test (t is ht except under the suite's own tests).
type checker struct {
	t   testing.TB
	ht  *testing.T
	h   Harness
	lim limits
	// reconnect undoes the last disconnect, once.
	reconnect func()
}

func newChecker(t testing.TB, ht *testing.T, h Harness) *checker {
	return &checker{t: t, ht: ht, h: h, lim: defaultLimits, reconnect: func() {}}
}

// panicked is what a call that panicked returns.
type panicked struct {
	v     any
	stack []byte
}

func (p *panicked) Error() string { return fmt.Sprintf("panic: %v", p.v) }

// bounded runs f in its own goroutine and waits for it at most limit. A
// panic in f comes back as a *panicked error. ok is false when f is still
// running; it is left to finish on its own.
func bounded(limit time.Duration, f func() error) (ok bool, err error) {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- &panicked{v: v, stack: debug.Stack()}
			}
		}()
		done <- f()
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case err := <-done:
		return true, err
	case <-t.C:
		return false, nil
	}
}

// call runs one adapter method, failing the check if it panics or does not
// return within limit.
func (c *checker) call(what string, limit time.Duration, f func() error) error {
	c.t.Helper()
	ok, err := bounded(limit, f)
	if !ok {
		c.t.Fatalf("%s did not return within %v", what, limit)
	}
	var p *panicked
	if errors.As(err, &p) {
		c.t.Fatalf("%s panicked: %v\n%s", what, p.v, p.stack)
	}
	return err
}

// newAdapter returns a fresh adapter that is stopped (again) when the check
// ends, whatever happened.
func (c *checker) newAdapter() gateways.Adapter {
	c.t.Helper()
	a := c.h.New(c.ht)
	if a == nil {
		c.t.Fatalf("Harness.New returned a nil adapter")
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.lim.stop)
		defer cancel()
		_, _ = bounded(c.lim.stop, func() error { return a.Stop(ctx) })
	})
	return a
}

// start starts a with host and prepares it; both must succeed.
func (c *checker) start(a gateways.Adapter, host gateways.Host) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.lim.start)
	defer cancel()
	if err := c.call("Start", c.lim.start+c.lim.slack, func() error { return a.Start(ctx, host) }); err != nil {
		c.t.Fatalf("Start: %v", err)
	}
	c.prepare(a)
}

func (c *checker) prepare(a gateways.Adapter) {
	c.t.Helper()
	if c.h.Prepare != nil {
		c.h.Prepare(c.ht, a)
	}
}

// stop stops a; it must return nil.
func (c *checker) stop(a gateways.Adapter, what string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.lim.stop)
	defer cancel()
	if err := c.call(what, c.lim.stop+c.lim.slack, func() error { return a.Stop(ctx) }); err != nil {
		c.t.Errorf("%s = %v, want nil", what, err)
	}
}

// message returns a message to to with a body that is unique to this send.
func (c *checker) message(to string) gateways.Outbound {
	id := nuid.Next()
	return gateways.Outbound{ID: id, From: c.h.User, To: to, Body: "gatewaytest " + id, Attempt: 1}
}

// send sends m with the usual deadline and returns what Send returned. What
// a successful Send says it became is checked (checkSent).
func (c *checker) send(a gateways.Adapter, m gateways.Outbound) (gateways.Sent, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.lim.send)
	defer cancel()
	var sent gateways.Sent
	err := c.call("Send", c.lim.send+c.lim.slack, func() error {
		var err error
		sent, err = a.Send(ctx, m)
		return err
	})
	if err == nil {
		c.checkSent("Send", m, sent)
	}
	return sent, err
}

// sendOK sends m, which must succeed and, when the harness can tell, reach
// the network.
func (c *checker) sendOK(a gateways.Adapter, m gateways.Outbound, what string) gateways.Sent {
	c.t.Helper()
	sent, err := c.send(a, m)
	if err != nil {
		c.t.Fatalf("%s: Send to %q = %v, want nil", what, m.To, err)
	}
	c.waitReceived("Send", m.Body, what)
	return sent
}

// checkSent: what a send (method: Send, SendReply, Edit) of m says it
// became is something the runner can record. An empty id would be recorded
// as one and match any reference by an empty id; a remembered text longer
// than what was sent is not the message's.
func (c *checker) checkSent(method string, m gateways.Outbound, s gateways.Sent) {
	c.t.Helper()
	if slices.Contains(s.IDs, "") {
		c.t.Errorf("%s of message %s returned Sent.IDs %q, which contains an empty id: list only the ids the network gave, or none", method, m.ID, s.IDs)
	}
	if s.Text != "" && utf8.RuneCountInString(s.Text) > utf8.RuneCountInString(m.Body) {
		c.t.Errorf("%s of message %s returned Sent.Text %q (%d characters), longer than the body sent, %q (%d): remember at most what was sent",
			method, m.ID, s.Text, utf8.RuneCountInString(s.Text), m.Body, utf8.RuneCountInString(m.Body))
	}
}

// waitReceived waits until the network got body, sent by method, when the
// harness can tell.
func (c *checker) waitReceived(method, body, what string) {
	c.t.Helper()
	if c.h.Received == nil {
		return
	}
	deadline := time.Now().Add(c.lim.settle)
	for !c.h.Received(c.ht, body) {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %s returned nil but the network did not get %q within %v", what, method, body, c.lim.settle)
		}
		time.Sleep(pollInterval)
	}
}

// noOccupants fails the check if an adapter without rooms called
// Host.Occupant.
func (c *checker) noOccupants(host *Host) {
	c.t.Helper()
	if c.h.Info.Capabilities.Rooms {
		return
	}
	if o := host.Occupants(); len(o) > 0 {
		c.t.Errorf("the adapter does not declare Rooms but called Host.Occupant: %+v", o)
	}
}

// isPermanent: the runner reports it to the sender at once.
func isPermanent(err error) bool {
	return errors.Is(err, gateways.ErrPermanent) || errors.Is(err, gateways.ErrUnsupported)
}
