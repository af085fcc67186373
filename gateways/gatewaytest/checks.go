package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/gateways"
)

// checkLifecycle: Stop without Start; Start, send, Stop, and the same again
// on the same adapter; Stop twice; Send after Stop fails with
// ErrNotConnected, which the runner retries. The host of a stopped run is
// not used any more.
func checkLifecycle(c *checker) {
	a := c.newAdapter()
	c.stop(a, "Stop without Start")

	first := NewHost()
	c.start(a, first)
	c.sendOK(a, c.message(c.h.Contact), "after Start")
	c.stop(a, "Stop")
	firstCalls := first.calls()

	// The runner starts the same adapter again after a failed run.
	second := NewHost()
	c.start(a, second)
	c.sendOK(a, c.message(c.h.Contact), "after a second Start on the same adapter")
	c.stop(a, "Stop after the second Start")
	c.stop(a, "a second Stop")

	m := c.message(c.h.Contact)
	_, err := c.send(a, m)
	switch {
	case err == nil:
		c.t.Errorf("Send after Stop = nil, want an error wrapping gateways.ErrNotConnected")
	case isPermanent(err):
		c.t.Errorf("Send after Stop = %v: a permanent error, but the message could go out once the adapter is started again; return an error wrapping gateways.ErrNotConnected", err)
	case !errors.Is(err, gateways.ErrNotConnected):
		c.t.Errorf("Send after Stop = %v, want an error wrapping gateways.ErrNotConnected", err)
	}
	if c.h.Received != nil && c.h.Received(c.ht, m.Body) {
		c.t.Errorf("the network got a message sent after Stop")
	}
	if n := first.calls(); n != firstCalls {
		c.t.Errorf("the adapter called the host of its first run %d times after that run's Stop returned; a host is valid only until Stop", n-firstCalls)
	}
	c.noOccupants(first)
	c.noOccupants(second)
}

// checkStartContext: Start returns promptly when its context has ended, and
// (when the harness can make the network unreachable) when its deadline
// passes while the network does not answer; Stop is safe afterwards.
func checkStartContext(c *checker) {
	a := c.newAdapter()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.call("Start with a cancelled context", c.lim.prompt, func() error { return a.Start(ctx, NewHost()) })
	c.t.Logf("Start with a cancelled context = %v", err)
	c.stop(a, "Stop after Start with a cancelled context")

	if c.h.Disconnect == nil {
		c.t.Logf("Harness.Disconnect is not set: Start against an unreachable network not checked")
		return
	}
	b := c.newAdapter()
	c.disconnect()
	ctx, cancel = context.WithTimeout(context.Background(), c.lim.offline)
	defer cancel()
	err = c.call(fmt.Sprintf("Start with a %v deadline while the network is unreachable", c.lim.offline),
		c.lim.offline+c.lim.slack, func() error { return b.Start(ctx, NewHost()) })
	c.t.Logf("Start while the network is unreachable = %v", err)
	c.stop(b, "Stop after Start while the network is unreachable")
	c.reconnect()
}

// checkSendDisconnected: while the network is unreachable Send fails with a
// transient error within its context's deadline (the first Send may still
// succeed over a protocol without acknowledgements, see below); once the
// network is back, the same message (as the runner retries it) goes out.
func checkSendDisconnected(c *checker) {
	if c.h.Disconnect == nil {
		c.t.Skip("Harness.Disconnect is not set: the network cannot be made unreachable")
	}
	a := c.newAdapter()
	host := NewHost()
	c.start(a, host)
	c.sendOK(a, c.message(c.h.Contact), "before Disconnect")

	c.disconnect()
	m := c.message(c.h.Contact)
	ctx, cancel := context.WithTimeout(context.Background(), c.lim.offline)
	defer cancel()
	send := func() error {
		return c.call(fmt.Sprintf("Send with a %v deadline while the network is unreachable", c.lim.offline),
			c.lim.offline+c.lim.slack, func() error { _, err := a.Send(ctx, m); return err })
	}
	err := send()
	if err == nil {
		// Over a protocol without acknowledgements (IRC) the first line
		// after the server went away can be taken by the socket before
		// the adapter's reader has seen the connection close: it is lost
		// without an error, the protocol's window. The adapter must have
		// noticed by the next Send.
		c.t.Logf("the first Send after Disconnect returned nil (taken by a socket the server had closed)")
		err = send()
	}
	switch {
	case err == nil:
		c.t.Errorf("Send while the network is unreachable = nil twice, want a transient error")
	case isPermanent(err):
		c.t.Errorf("Send while the network is unreachable = %v: a permanent error, so the sender would be told the message failed; an outage is transient, the runner must retry", err)
	default:
		c.t.Logf("Send while the network is unreachable = %v", err)
	}

	c.reconnect()
	deadline := time.Now().Add(c.lim.reconnect)
	for attempt := 2; ; attempt++ {
		m.Attempt = attempt
		_, err := c.send(a, m)
		if err == nil {
			break
		}
		if isPermanent(err) {
			c.t.Fatalf("Send after Reconnect (attempt %d) = %v: a permanent error for a network that is back", attempt, err)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("Send still fails %v after Reconnect (attempt %d): %v", c.lim.reconnect, attempt, err)
		}
		time.Sleep(100 * time.Millisecond) // the runner's retries are spaced too
	}
	c.waitReceived("Send", m.Body, "after Reconnect")
	c.stop(a, "Stop")
	c.noOccupants(host)
}

// disconnect makes the network unreachable until reconnect, or the end of
// the check.
func (c *checker) disconnect() {
	c.t.Helper()
	c.h.Disconnect(c.ht)
	down := true
	c.reconnect = func() {
		if down {
			down = false
			c.h.Reconnect(c.ht)
		}
	}
	c.t.Cleanup(func() { c.reconnect() })
}

// checkErrors: a refused address is a permanent *gateways.Error with a
// condition and a text for the sender, and nothing reaches the network.
func checkErrors(c *checker) {
	if c.h.Invalid == "" {
		c.t.Skip("Harness.Invalid is not set: no address the adapter refuses")
	}
	a := c.newAdapter()
	host := NewHost()
	c.start(a, host)
	m := c.message(c.h.Invalid)
	_, err := c.send(a, m)
	if err == nil {
		c.t.Fatalf("Send to %q = nil, want a permanent error", c.h.Invalid)
	}
	if !errors.Is(err, gateways.ErrPermanent) {
		c.t.Errorf("Send to %q = %v: not permanent (errors.Is(err, gateways.ErrPermanent) is false), so the runner retries an address that cannot work", c.h.Invalid, err)
	}
	c.t.Logf("Send to %q = %v", c.h.Invalid, err)
	var ge *gateways.Error
	if !errors.As(err, &ge) {
		c.t.Errorf("Send to %q = %v (%T): want a *gateways.Error (errors.As) telling the sender a condition and why", c.h.Invalid, err, err)
	} else {
		if ge.Condition == "" {
			c.t.Errorf("Send to %q: *gateways.Error without a Condition: %v", c.h.Invalid, err)
		}
		if ge.Text == "" {
			c.t.Errorf("Send to %q: *gateways.Error without a Text for the sender: %v", c.h.Invalid, err)
		}
	}
	if c.h.Received != nil && c.h.Received(c.ht, m.Body) {
		c.t.Errorf("Send to %q failed, but the network got the message", c.h.Invalid)
	}
	c.stop(a, "Stop")
	c.noOccupants(host)
}

// checkGoroutines: after Stop, nothing the adapter started keeps running.
func checkGoroutines(c *checker) {
	before := goroutineIDs()
	a := c.newAdapter()
	pkg := adapterPackage(a)
	host := NewHost()
	c.start(a, host)
	c.sendOK(a, c.message(c.h.Contact), "after Start")
	c.stop(a, "Stop")

	deadline := time.Now().Add(c.lim.leak)
	for {
		left := leaked(before, pkg)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, g := range left {
				b.WriteString("\n\n")
				b.WriteString(g.stack)
			}
			c.t.Errorf("%d goroutine(s) of the adapter (package %s, or HTTP client connections) still running %v after Stop returned:%s",
				len(left), pkg, c.lim.leak, b.String())
			return
		}
		time.Sleep(pollInterval)
	}
}

// checkSendContext: Send with a context that has already ended returns an
// error at once, a transient one, and sends nothing; the adapter still
// works afterwards.
func checkSendContext(c *checker) {
	a := c.newAdapter()
	host := NewHost()
	c.start(a, host)
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"already expired", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}},
		{"already cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
	}
	for _, tt := range tests {
		m := c.message(c.h.Contact)
		ctx, cancel := tt.ctx()
		err := c.call("Send with an "+tt.name+" context", c.lim.prompt, func() error { _, err := a.Send(ctx, m); return err })
		cancel()
		switch {
		case err == nil:
			c.t.Errorf("Send with an %s context = nil, want an error: the caller has given up waiting", tt.name)
		case isPermanent(err):
			c.t.Errorf("Send with an %s context = %v: a permanent error, but the message itself is fine", tt.name, err)
		default:
			c.t.Logf("Send with an %s context = %v", tt.name, err)
		}
		if c.h.Received != nil && c.h.Received(c.ht, m.Body) {
			c.t.Errorf("Send with an %s context failed, but the network got the message; the runner will send it again", tt.name)
		}
	}
	c.sendOK(a, c.message(c.h.Contact), "after sends with ended contexts")
	c.stop(a, "Stop")
	c.noOccupants(host)
}

// checkRooms: a RoomAdapter joins Room (the user's own occupant arrives),
// sends a groupchat message there, and leaves.
func checkRooms(c *checker) {
	if !c.h.Info.Capabilities.Rooms {
		c.t.Skip("the adapter does not declare Capabilities.Rooms")
	}
	if c.h.Room == "" {
		c.t.Skip("Harness.Room is not set: no room to join")
	}
	a := c.newAdapter()
	ra, ok := a.(gateways.RoomAdapter)
	if !ok {
		c.t.Fatalf("the adapter declares Rooms but %T does not implement gateways.RoomAdapter", a)
	}
	host := NewHost()
	c.start(a, host)
	room := c.h.Room
	inRoom := func(o gateways.Occupant) bool { return o.Self && strings.EqualFold(o.Room, room) }

	nick := "gt" + strings.ToLower(nuid.Next()[:6])
	ctx, cancel := context.WithTimeout(context.Background(), c.lim.send)
	defer cancel()
	j := gateways.Join{User: c.h.User, Room: room, Nick: nick, Attempt: 1}
	if err := c.call("Join", c.lim.send+c.lim.slack, func() error { return ra.Join(ctx, j) }); err != nil {
		c.t.Fatalf("Join(%+v) = %v", j, err)
	}
	self := host.WaitOccupant(c.t, c.lim.settle, func(o gateways.Occupant) bool { return inRoom(o) && !o.Left })
	if self.User != c.h.User {
		c.t.Errorf("the user's own occupant is for %q, want the full JID that joined, %q", self.User, c.h.User)
	}

	m := c.message(room)
	m.Groupchat = true
	c.sendOK(a, m, "groupchat message to the joined room")

	l := gateways.Leave{User: c.h.User, Room: room, Nick: self.Nick}
	if err := c.call("Leave", c.lim.send+c.lim.slack, func() error { return ra.Leave(ctx, l) }); err != nil {
		c.t.Fatalf("Leave(%+v) = %v", l, err)
	}
	host.WaitOccupant(c.t, c.lim.settle, func(o gateways.Occupant) bool { return inRoom(o) && o.Left })
	c.stop(a, "Stop")
}
