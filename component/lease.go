package component

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"mellium.im/xmpp"

	"github.com/xmppgw/xmppgw/bus"
)

// Lease is one process' claim to be the domain's active component, held by
// at most one process at a time.
type Lease interface {
	// Acquire waits until this process holds the lease or ctx ends, calling
	// standby (once) with the holder's id while another process holds it.
	// held ends when the lease is lost; release gives the lease up and must
	// be called once what it guards is closed. See bus.Lease.
	Acquire(ctx context.Context, standby func(holder string)) (held context.Context, release func(), err error)
}

var _ Lease = (*bus.Lease)(nil)

// When the lease is lost the stream must be closed before another process
// can take the lease, which bus.Lease leaves 3/4 s for. What the server
// has already written into the stream is not dropped silently: for
// leaseDrain, stanzas are still read and every message is answered with an
// error (a publish stalled on the bus gives way to one too), then the
// stream is closed, waiting up to leaseCloseGrace for the server's end.
const (
	leaseDrain      = 200 * time.Millisecond
	leaseCloseGrace = 250 * time.Millisecond
)

// handoverText answers what arrives while the stream closes for a lost lease.
const handoverText = "the gateway is handing this service over to another process; please send the message again"

type fenceKey struct{}

// withFence gives the handler the stream's fence: a context ended when the
// lease is lost.
func withFence(ctx, fence context.Context) context.Context {
	return context.WithValue(ctx, fenceKey{}, fence)
}

// fenced reports whether the lease of the stream ctx serves was lost.
func fenced(ctx context.Context) bool {
	f, ok := ctx.Value(fenceKey{}).(context.Context)
	return ok && f.Err() != nil
}

// storeContext bounds storing what a stanza carries on the bus. It does not
// end with ctx (a stanza read while the stream closes at shutdown is still
// stored), but it ends when the lease is lost: a publish stalled on the bus
// then gives way to an error for the sender before the stream closes.
func storeContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	f, ok := ctx.Value(fenceKey{}).(context.Context)
	if !ok {
		return sctx, cancel
	}
	stop := context.AfterFunc(f, cancel)
	return sctx, func() { stop(); cancel() }
}

var errLeaseLost = errors.New("the component lease was lost")

// Standby reports whether the component waits for the lease that another
// process holds.
func (c *Component) Standby() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.standby
}

// runWithLease connects only while this process holds the lease. Fencing:
// the stream is opened after the lease is acquired, closed at once when it
// is lost (before it can expire on the bus and another process take it), and
// the lease is released only after the stream is closed, so two processes
// never both have a stream for the domain.
func (c *Component) runWithLease(ctx context.Context, cons jetstream.Consumer) error {
	for {
		held, release, err := c.o.Lease.Acquire(ctx, func(holder string) {
			c.mu.Lock()
			c.up, c.standby = false, true
			c.reason = fmt.Sprintf("standby: another process holds the component lease (%s)", holder)
			c.mu.Unlock()
			c.o.Metrics.SetConnected(c.o.Name, false)
		})
		if err != nil { // only when ctx ended: Acquire retries everything else
			c.setStatus(false, "shutting down")
			return nil
		}
		c.setStatus(false, "component stream not connected yet (this process holds the component lease)")
		c.o.Metrics.SetActive(c.o.Name, true)
		c.log.Info("active: this process holds the component lease", "domain", c.o.Domain)
		c.serve(ctx, held.Done(), cons)
		release()
		c.o.Metrics.SetActive(c.o.Name, false)
		if ctx.Err() != nil {
			return nil
		}
		why := context.Cause(held)
		c.log.Warn("component lease lost; waiting to hold it again", "domain", c.o.Domain, "err", why)
		c.setStatus(false, fmt.Sprintf("component lease lost (%v); waiting for it", why))
	}
}

// closeNow closes a stream whose lease was lost (the fence is down): what
// arrives for leaseDrain is answered with errors, then the closing tag
// (between two stanzas: between is held while one is handled), a short wait
// for the server's, and the socket is closed whatever is in flight.
func closeNow(sess *xmpp.Session, conn net.Conn, served <-chan error, between sync.Locker) {
	serveDone := false // the server closed the stream first
	select {
	case <-served:
		serveDone = true
	case <-time.After(leaseDrain):
	}
	closed := make(chan struct{})
	go func() {
		between.Lock()
		_ = sess.Close()
		between.Unlock()
		close(closed)
	}()
	if !serveDone {
		select {
		case <-served:
			serveDone = true
		case <-time.After(leaseCloseGrace):
		}
	}
	_ = conn.Close()
	if !serveDone {
		<-served
	}
	<-closed
}

func isClosed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}
