package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/backoff"
	"github.com/xmppgw/xmppgw/internal/metrics"
	"github.com/xmppgw/xmppgw/internal/recent"
)

// Options configures one gateway's component.
type Options struct {
	Name   string // gateway name: bus subjects, metrics
	Domain string // the component's JID domain
	Secret string
	Server string // host:port of the XMPP server's component listener

	Bus *bus.Bus

	// Identity shown in disco#info on the domain (category "gateway").
	IdentityType string // "sms", "irc", …
	IdentityName string
	// Identities and DiscoFeatures are advertised on the domain next
	// to the gateway identity: what the adapter's own IQs serve (a push
	// app server is pubsub/push with urn:xmpp:push:0).
	Identities    []Identity
	DiscoFeatures []string
	// ContactType is the disco identity type (category "client") of contact
	// JIDs, e.g. "sms". Default "pc".
	ContactType string
	// Receipts and Media advertise XEP-0184 and XEP-0066 support.
	Receipts, Media bool
	// IsRoom, when set, says which contact addresses are rooms (group
	// conversations) served as XEP-0045 rooms; nil means the network has
	// none.
	IsRoom func(address string) bool
	// Features are the conversation features the adapter declared
	// (gateways.FeaturesOf, or an external adapter's configuration): the
	// component advertises and carries exactly these.
	Features Features

	// Registrar, when set, enables XEP-0077 registration and the ad-hoc
	// commands; Translator enables XEP-0100 jabber:iq:gateway.
	Registrar  Registrar
	Translator AddressTranslator
	// AddressNoun is what the Registrar's addresses are called in the
	// ad-hoc commands ("nick"; "" means phone numbers). Unassignable
	// leaves out the commands that give and take them (assign-number,
	// unassign-number): the network's addresses cannot be handed out.
	AddressNoun  string
	Unassignable bool
	// Commands and IQHandlers are the adapter's own XEP-0050 commands
	// and IQs on the domain (adapter.go).
	Commands   []Command
	IQHandlers []IQHandler

	// QuotaMessages per QuotaPer is each user's send allowance (a token
	// bucket); zero means unlimited.
	QuotaMessages int
	QuotaPer      time.Duration

	// AllowedDomains are the XMPP domains whose users may use the gateway.
	// Admins may use it whatever their domain.
	AllowedDomains []string
	Admins         []string

	Logger  *slog.Logger
	Metrics *metrics.Metrics

	// Lease, when set, lets several processes serve the domain, of which
	// only the lease's holder connects (the others are standbys): Run waits
	// for the lease before connecting, closes the stream at once when the
	// lease is lost, and releases it at shutdown after closing the stream.
	// Nil: this process is the only one and connects at once.
	Lease Lease

	// Backoff between connection attempts: exponential from BackoffBase to
	// BackoffMax with jitter. Defaults 500 ms and 30 s.
	BackoffBase, BackoffMax time.Duration
	// DialTimeout bounds TCP connect plus handshake. Default 10 s.
	DialTimeout time.Duration
}

// Component maintains one XEP-0114 stream.
type Component struct {
	o      Options
	domain jid.JID
	log    *slog.Logger

	allowed map[string]bool
	admins  map[string]bool

	commands []adhocCommand  // XEP-0050 commands served, in disco#items order
	addr     addressWords    // what the Registrar's addresses are called
	cmds     commandSessions // XEP-0050 multi-stage commands in progress

	quotas *quotas // nil: unlimited

	// written remembers the envelopes most recently written to the XMPP
	// stream: one redelivered because its acknowledgement was lost (a NATS
	// node died before replicating it) is acknowledged, not written twice.
	written *recent.IDs
	// holding: inbound delivery waits for the store (see deliver).
	holding atomic.Bool
	// queued: when recent outbound messages were stored (failures.go).
	queued queuedTimes

	kvMu sync.Mutex
	kv   jetstream.KeyValue // the messages bucket, opened on first use

	mu      sync.Mutex
	up      bool
	reason  string
	standby bool // waiting for the lease another process holds
}

// New validates options. It does not connect.
func New(o Options) (*Component, error) {
	if o.Name == "" || o.Bus == nil || o.Server == "" {
		return nil, errors.New("component: name, bus and server are required")
	}
	d, err := jid.Parse(o.Domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return nil, fmt.Errorf("component: %q is not a domain", o.Domain)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.ContactType == "" {
		o.ContactType = "pc"
	}
	c := &Component{
		o:       o,
		domain:  d,
		log:     o.Logger,
		allowed: map[string]bool{},
		admins:  map[string]bool{},
		reason:  "component stream not connected yet",
		quotas:  newQuotas(o.QuotaMessages, o.QuotaPer),
		written: recent.New(recentWritten),
	}
	c.addr = wordsFor(o.AddressNoun)
	if o.Registrar != nil {
		c.commands = c.builtinCommands()
	}
	extra, err := adapterCommands(o.Commands)
	if err != nil {
		return nil, err
	}
	c.commands = append(c.commands, extra...)
	if err := checkIQHandlers(o.IQHandlers); err != nil {
		return nil, err
	}
	for _, a := range o.AllowedDomains {
		c.allowed[strings.ToLower(a)] = true
	}
	for _, a := range o.Admins {
		c.admins[strings.ToLower(a)] = true
	}
	return c, nil
}

// Status reports whether the stream is authenticated, and if not, why.
func (c *Component) Status() (up bool, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up, c.reason
}

func (c *Component) setStatus(up bool, reason string) {
	c.mu.Lock()
	c.up, c.reason, c.standby = up, reason, false
	c.mu.Unlock()
	c.o.Metrics.SetConnected(c.o.Name, up)
}

// Run keeps the stream up until ctx is cancelled, then closes it. It returns
// nil on cancellation; connection failures are retried, never returned.
// With Options.Lease, the stream is up only while this process holds the
// lease (see runWithLease).
func (c *Component) Run(ctx context.Context) error {
	c.o.Metrics.SetConnected(c.o.Name, false)
	c.o.Metrics.SetActive(c.o.Name, false)
	cons, err := c.o.Bus.Consumer(ctx, bus.ConsumerConfig{
		Stream:  bus.StreamIn,
		Name:    bus.ComponentConsumer(c.o.Name),
		Subject: bus.InSubject(c.o.Name),
		// One in flight: the next envelope is handed over only once the
		// previous one is written and acknowledged, so users see messages
		// in order even across a lost stream (a nak'd envelope comes back
		// before anything newer). The cost is one in-process ack round trip
		// per message.
		AckWait:       10 * time.Second,
		MaxAckPending: 1,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // cancelled while starting: a normal stop
		}
		return err
	}
	if c.o.Lease != nil {
		return c.runWithLease(ctx, cons)
	}
	c.o.Metrics.SetActive(c.o.Name, true)
	c.serve(ctx, nil, cons)
	c.o.Metrics.SetActive(c.o.Name, false)
	return nil
}

// serve keeps the stream up until ctx is cancelled or lost is closed.
func (c *Component) serve(ctx context.Context, lost <-chan struct{}, cons jetstream.Consumer) {
	delay := c.o.BackoffBase
	var lastFailure string
	for {
		authenticated, err := c.session(ctx, lost, cons)
		if ctx.Err() != nil {
			c.setStatus(false, "shutting down")
			return
		}
		if isClosed(lost) {
			return
		}
		reason := c.describe(err)
		if authenticated {
			c.log.Warn("component stream lost; reconnecting", "server", c.o.Server, "err", reason)
			delay = c.o.BackoffBase
			lastFailure = ""
		} else {
			c.o.Metrics.ConnectFailed(c.o.Name)
			// Once per distinct failure, not per retry.
			if reason != lastFailure {
				c.log.Error("component stream cannot connect; retrying with backoff", "server", c.o.Server, "err", reason)
				lastFailure = reason
			} else {
				c.log.Debug("component connect retry failed", "err", reason, "next_in", delay)
			}
		}
		c.setStatus(false, reason)
		wait := backoff.Jitter(delay)
		delay = min(delay*2, c.o.BackoffMax)
		select {
		case <-ctx.Done():
			c.setStatus(false, "shutting down")
			return
		case <-lost:
			return
		case <-time.After(wait):
		}
	}
}

// describe turns a connection error into the sentence an operator needs.
func (c *Component) describe(err error) string {
	if err == nil {
		return "stream closed by the server"
	}
	var se stream.Error
	if errors.As(err, &se) {
		switch se.Err {
		case "not-authorized":
			return fmt.Sprintf("the server at %s rejected the handshake for %s (not-authorized): the secret in gateways.%s does not match the server's component secret", c.o.Server, c.o.Domain, c.o.Name)
		case "host-unknown", "improper-addressing":
			return fmt.Sprintf("the server at %s has no component %s (%s): add it to the server's configuration", c.o.Server, c.o.Domain, se.Err)
		case "conflict":
			return fmt.Sprintf("the server at %s already has a stream for %s (conflict): another gateway process is connected", c.o.Server, c.o.Domain)
		}
		return fmt.Sprintf("stream error from %s: %v", c.o.Server, se)
	}
	return err.Error()
}

// session runs one stream from dial to close. authenticated reports whether
// the handshake succeeded (so the caller can reset its backoff).
func (c *Component) session(ctx context.Context, lost <-chan struct{}, cons jetstream.Consumer) (authenticated bool, err error) {
	dialCtx, cancel := context.WithTimeout(ctx, c.o.DialTimeout)
	defer cancel()
	if lost != nil {
		// A lease lost while connecting stops the attempt.
		go func() {
			select {
			case <-lost:
				cancel()
			case <-dialCtx.Done():
			}
		}()
	}
	var d net.Dialer
	conn, err := d.DialContext(dialCtx, "tcp", c.o.Server)
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", c.o.Server, err)
	}
	defer conn.Close()
	sess, err := component.NewSession(dialCtx, c.domain, []byte(c.o.Secret), conn)
	if err != nil {
		return false, err
	}
	c.setStatus(true, "")
	c.log.Info("component stream up", "server", c.o.Server, "domain", c.o.Domain)

	// Inbound envelopes flow only while this stream is up, one at a time so
	// they reach the user in order.
	pullCtx, stopPull := context.WithCancel(context.WithoutCancel(ctx))
	pulled := make(chan struct{})
	var ended atomic.Bool // the stream can take no more writes
	go func() {
		defer close(pulled)
		bus.Pull(pullCtx, cons, 64, time.Second, func(msg jetstream.Msg) { c.deliver(sess, &ended, msg) })
	}()

	// Typing and markers from the network: written while this stream is
	// up, dropped otherwise (xep0085.go, xep0333.go).
	sub, err := c.o.Bus.Conn().QueueSubscribe(bus.EphemeralInSubject(c.o.Name), bus.ComponentConsumer(c.o.Name), func(m *nats.Msg) {
		c.deliverEphemeral(sess, &ended, m.Data)
	})
	if err != nil {
		c.log.Warn("typing notifications and markers from the network will not be shown", "err", err)
	} else {
		_ = sub.SetPendingLimits(1024, 1<<20) // beyond that, dropped: hints
		defer func() { _ = sub.Unsubscribe() }()
	}

	served := make(chan error, 1)
	fence, fenceOff := context.WithCancel(context.Background()) // ended when the lease is lost
	defer fenceOff()
	// between is held while a stanza is handled. Shutdown takes it to close
	// the stream between two stanzas: one being handled (its publish may
	// take seconds on a failing store) still gets its error reply written
	// before our </stream:stream>, instead of after it, where no reply can
	// go.
	var between sync.Mutex
	slow := newOffReader(sess)
	pipe := newPipeline(sess)
	// However the stream ends, the messages read are answered (or logged
	// as unanswerable) before this returns.
	defer pipe.close()
	closing := drainingLocker{between: &between, pipe: pipe, log: c.log.Warn}
	handler := c.handler(withPipeline(withOffReader(withFence(ctx, fence), slow), pipe))
	gated := xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		between.Lock()
		defer between.Unlock()
		return handler.HandleXMPP(t, start)
	})
	go func() { served <- sess.Serve(gated) }()

	select {
	case err = <-served:
		ended.Store(true)
		stopPull()
		<-pulled
		if err == nil {
			err = io.EOF
		}
		return true, err
	case <-ctx.Done():
		// Stop taking inbound work, let what is being written finish, then
		// close the stream and give the server a moment to close its side.
		stopPull()
		<-pulled
		// Requests handled off the reader answer before the close.
		slow.wait(5 * time.Second)
		// Session.SetCloseDeadline races with Serve in mellium v0.22, so
		// bound the wait for the server's </stream:stream> ourselves. A
		// reply written by the stanza being handled holds the session's
		// writer until it is flushed, so it goes out before the close.
		closing.Lock()
		_ = sess.Close()
		closing.Unlock()
		select {
		case <-served:
		case <-time.After(2 * time.Second):
			_ = conn.Close()
			<-served
		}
		c.log.Info("component stream closed", "domain", c.o.Domain)
		return true, nil
	case <-lost:
		ended.Store(true)
		stopPull()
		fenceOff()
		closeNow(sess, conn, served, closing)
		<-pulled
		c.log.Warn("component stream closed: the component lease was lost", "domain", c.o.Domain)
		return true, errLeaseLost
	}
}
