package gatewaytest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

// runnerGateway is the gateway name of the runner in checkCapabilities.
const runnerGateway = "conformance"

var testMedia = []bus.Media{{URL: "https://upload.example/gatewaytest/cat.jpg", Type: "image/jpeg", Size: 1234}}

// checkCapabilities: what the adapter implements matches what it declares,
// and through a real Runner on an embedded bus it is handed only what it
// declares: media only with Media, groupchat and joins only with Rooms; what
// it cannot carry comes back to the sender as feature-not-implemented.
func checkCapabilities(c *checker) {
	caps := c.h.Info.Capabilities
	a := c.newAdapter()
	ra, isRooms := a.(gateways.RoomAdapter)
	switch {
	case isRooms && !caps.Rooms:
		c.t.Errorf("%T implements gateways.RoomAdapter but Info.Capabilities.Rooms is false: the runner refuses every room message and join", a)
	case !isRooms && caps.Rooms:
		c.t.Errorf("Info.Capabilities.Rooms is true but %T does not implement gateways.RoomAdapter: the runner refuses every join", a)
	}
	if isRooms && caps.Rooms {
		isRoom := func(addr string) bool {
			var got bool
			_ = c.call(fmt.Sprintf("IsRoom(%q)", addr), c.lim.prompt, func() error { got = ra.IsRoom(addr); return nil })
			return got
		}
		if c.h.Room != "" && !isRoom(c.h.Room) {
			c.t.Errorf("IsRoom(%q) = false for Harness.Room", c.h.Room)
		}
		if isRoom(c.h.Contact) {
			c.t.Errorf("IsRoom(%q) = true for Harness.Contact", c.h.Contact)
		}
	}

	rec := &recording{inner: a, started: make(chan struct{}), prepared: make(chan struct{})}
	var adapter gateways.Adapter = rec
	if isRooms {
		adapter = &roomRecording{recording: rec, inner: ra}
	}
	b := bustest.Open(c.t)
	r, err := gateways.NewRunner(gateways.RunnerOptions{
		Name: runnerGateway, Bus: b, Adapter: adapter, Info: c.h.Info,
		Workers: 1, MaxAttempts: 1, SendTimeout: c.lim.send,
		RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	})
	if err != nil {
		c.t.Fatalf("NewRunner: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	c.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(gateways.ShutdownGrace + c.lim.stop):
			c.t.Errorf("Runner.Run did not return after its context was cancelled")
		}
	})
	c.runnerStarted(rec)

	in := &inbox{c: c, b: b}
	withMedia := c.publishMessage(b, c.h.Contact, "gatewaytest "+nuid.Next()+" with an attachment", testMedia, "")
	mediaOnly := c.publishMessage(b, c.h.Contact, "", testMedia, "")
	// A network without rooms is asked to carry room traffic anyway; one
	// with rooms gets a groupchat message for Harness.Room, if there is one.
	var group, join *bus.Envelope
	if !caps.Rooms {
		room := cmp.Or(c.h.Room, "#gatewaytest")
		group = c.publishMessage(b, room, "gatewaytest "+nuid.Next()+" to a room", nil, bus.TypeGroupchat)
		join = c.publishJoin(b, room)
	} else if c.h.Room != "" {
		group = c.publishMessage(b, c.h.Room, "gatewaytest "+nuid.Next()+" to a room", nil, bus.TypeGroupchat)
	}

	wantMedia := toGateways(testMedia)
	got := rec.wait(c, withMedia)
	if got.Body != withMedia.Message.Body {
		c.t.Errorf("the adapter got body %q, want %q", got.Body, withMedia.Message.Body)
	}
	if caps.Media {
		if !slices.Equal(got.Media, wantMedia) {
			c.t.Errorf("the adapter declares Media and got %+v, want %+v", got.Media, wantMedia)
		}
		if got := rec.wait(c, mediaOnly); !slices.Equal(got.Media, wantMedia) || got.Body != "" {
			c.t.Errorf("the adapter declares Media; a media-only message reached it as body %q media %+v, want no body and %+v", got.Body, got.Media, wantMedia)
		}
	} else {
		in.waitError(mediaOnly, string(gateways.FeatureNotImplemented))
	}
	if !caps.Rooms {
		in.waitError(group, string(gateways.FeatureNotImplemented))
		in.waitJoinRefused(join, string(gateways.FeatureNotImplemented))
	} else if group != nil {
		if got := rec.wait(c, group); !got.Groupchat || got.To != c.h.Room {
			c.t.Errorf("a groupchat message to %q reached the adapter as To %q Groupchat %v", c.h.Room, got.To, got.Groupchat)
		}
	}
	c.settled(b)

	sent, joins, leaves := rec.calls()
	for _, m := range sent {
		if len(m.Media) > 0 && !caps.Media {
			c.t.Errorf("the adapter does not declare Media but was handed %+v (message %s)", m.Media, m.ID)
		}
		if m.Groupchat && !caps.Rooms {
			c.t.Errorf("the adapter does not declare Rooms but was handed a groupchat message to %q", m.To)
		}
		if m.ID == mediaOnly.Message.ID && !caps.Media {
			c.t.Errorf("the adapter does not declare Media but was handed a media-only message (as body %q)", m.Body)
		}
	}
	if !caps.Rooms && (len(joins) > 0 || len(leaves) > 0) {
		c.t.Errorf("the adapter does not declare Rooms but was asked to join %+v and leave %+v", joins, leaves)
	}
}

func toGateways(ms []bus.Media) []gateways.Media {
	var out []gateways.Media
	for _, m := range ms {
		out = append(out, gateways.Media{URL: m.URL, Type: m.Type, Size: m.Size})
	}
	return out
}

// runnerStarted waits for the runner to start the adapter, then prepares it
// here, on the test goroutine, while the runner waits.
func (c *checker) runnerStarted(rec *recording) {
	c.t.Helper()
	defer close(rec.prepared)
	select {
	case <-rec.started:
	case <-time.After(c.lim.start):
		c.t.Fatalf("the runner could not start the adapter within %v: %v", c.lim.start, rec.startError())
	}
	c.prepare(rec.inner)
}

// publishMessage publishes an outbound message as the component does.
func (c *checker) publishMessage(b *bus.Bus, to, body string, media []bus.Media, typ string) *bus.Envelope {
	c.t.Helper()
	env := &bus.Envelope{
		Kind: bus.KindMessage, ID: nuid.Next(), Gateway: runnerGateway, Time: time.Now().UTC(),
		User: c.h.User, Contact: to,
		Message: &bus.Message{ID: nuid.Next(), Body: body, Media: media, Type: typ},
	}
	c.publish(b, env, "out:"+c.h.User+"|"+env.Message.ID)
	return env
}

// publishJoin publishes a request to join room.
func (c *checker) publishJoin(b *bus.Bus, room string) *bus.Envelope {
	c.t.Helper()
	env := &bus.Envelope{
		Kind: bus.KindPresence, ID: nuid.Next(), Gateway: runnerGateway, Time: time.Now().UTC(),
		User: c.h.User, Contact: room, Presence: &bus.Presence{Nick: "gatewaytest"},
	}
	c.publish(b, env, "")
	return env
}

func (c *checker) publish(b *bus.Bus, env *bus.Envelope, msgID string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.lim.send)
	defer cancel()
	if _, err := b.Publish(ctx, bus.OutSubject(runnerGateway), env, msgID); err != nil {
		c.t.Fatalf("publish: %v", err)
	}
}

// settled waits until the runner has settled every outbound envelope.
func (c *checker) settled(b *bus.Bus) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.lim.settle)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		s, err := b.JetStream().Stream(ctx, bus.StreamOut)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = s.Info(ctx); err == nil {
				var waiting, unacked uint64
				waiting, unacked, err = b.Pending(ctx, bus.StreamOut, bus.AdapterConsumer(runnerGateway))
				if err == nil && info.State.Msgs == 0 && waiting == 0 && unacked == 0 {
					return
				}
				if err == nil {
					last = fmt.Sprintf("out stream holds %d, consumer %d waiting, %d unacked", info.State.Msgs, waiting, unacked)
				}
			}
		}
		if err != nil {
			last = err.Error()
		}
		time.Sleep(pollInterval)
	}
	c.t.Fatalf("the runner did not settle its outbound messages within %v: %s", c.lim.settle, last)
}

// inbox reads what the runner stores for the component.
type inbox struct {
	c    *checker
	b    *bus.Bus
	cons jetstream.Consumer
	got  []*bus.Envelope
}

// wait returns the first envelope satisfying match, failing the check after
// the settle time.
func (in *inbox) wait(what string, match func(*bus.Envelope) bool) *bus.Envelope {
	c := in.c
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.lim.settle)
	defer cancel()
	if in.cons == nil {
		cons, err := in.b.Consumer(ctx, bus.ConsumerConfig{
			Stream: bus.StreamIn, Name: bus.ComponentConsumer(runnerGateway), Subject: bus.InSubject(runnerGateway),
		})
		if err != nil {
			c.t.Fatalf("consumer: %v", err)
		}
		in.cons = cons
	}
	for {
		for _, e := range in.got {
			if match(e) {
				return e
			}
		}
		if ctx.Err() != nil {
			var b strings.Builder
			for _, e := range in.got {
				fmt.Fprintf(&b, "\n\t%s %s→%s message %+v error %+v presence %+v", e.Kind, e.Contact, e.User, e.Message, e.Error, e.Presence)
			}
			if len(in.got) == 0 {
				b.WriteString(" nothing")
			}
			c.t.Fatalf("no %s from the runner within %v; it stored:%s", what, c.lim.settle, b.String())
		}
		batch, err := in.cons.Fetch(64, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			time.Sleep(pollInterval)
			continue
		}
		for msg := range batch.Messages() {
			e, err := bus.Decode(msg.Data())
			if err != nil {
				c.t.Errorf("the runner stored an invalid envelope: %v", err)
				continue
			}
			in.got = append(in.got, e)
			_ = msg.Ack()
		}
	}
}

// waitError waits for the error answering the outbound message out.
func (in *inbox) waitError(out *bus.Envelope, cond string) {
	in.c.t.Helper()
	e := in.wait(fmt.Sprintf("error for message %s", out.Message.ID), func(e *bus.Envelope) bool {
		return e.Kind == bus.KindError && e.Error != nil && e.Error.Ref == out.Message.ID
	})
	if e.Error.Condition != cond || e.User != out.User || e.Contact != out.Contact {
		in.c.t.Errorf("message %s (type %q, %d media, body %q) answered with %s to %q from %q, want %s to %q from %q",
			out.Message.ID, out.Message.Type, len(out.Message.Media), out.Message.Body,
			e.Error.Condition, e.User, e.Contact, cond, out.User, out.Contact)
	}
}

// waitJoinRefused waits for the presence error answering the join request.
func (in *inbox) waitJoinRefused(join *bus.Envelope, cond string) {
	in.c.t.Helper()
	e := in.wait(fmt.Sprintf("refusal of the join to %s", join.Contact), func(e *bus.Envelope) bool {
		return e.Kind == bus.KindPresence && e.Presence != nil && e.Presence.Type == bus.PresenceError && e.Contact == join.Contact
	})
	if e.Presence.Error == nil || e.Presence.Error.Condition != cond || e.User != join.User {
		in.c.t.Errorf("join to %s refused with %+v to %q, want %s to %q", join.Contact, e.Presence.Error, e.User, cond, join.User)
	}
}

// recording is the adapter as the runner sees it: it records every call and
// passes it on.
type recording struct {
	inner gateways.Adapter
	// started is closed after the first successful Start, which then waits
	// for prepared (or its context) before returning to the runner.
	started, prepared chan struct{}
	startOnce         sync.Once

	mu       sync.Mutex
	startErr error
	sent     []gateways.Outbound
	joins    []gateways.Join
	leaves   []gateways.Leave
}

func (r *recording) Start(ctx context.Context, h gateways.Host) error {
	if err := r.inner.Start(ctx, h); err != nil {
		r.mu.Lock()
		r.startErr = err
		r.mu.Unlock()
		return err
	}
	r.startOnce.Do(func() { close(r.started) })
	select {
	case <-r.prepared:
	case <-ctx.Done():
	}
	return nil
}

func (r *recording) Send(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	r.mu.Lock()
	m2 := m
	m2.Media = slices.Clone(m.Media)
	r.sent = append(r.sent, m2)
	r.mu.Unlock()
	return r.inner.Send(ctx, m)
}

func (r *recording) Stop(ctx context.Context) error { return r.inner.Stop(ctx) }

func (r *recording) startError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.startErr == nil {
		return fmt.Errorf("Start never returned")
	}
	return fmt.Errorf("last Start error: %w", r.startErr)
}

func (r *recording) calls() ([]gateways.Outbound, []gateways.Join, []gateways.Leave) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent), slices.Clone(r.joins), slices.Clone(r.leaves)
}

// wait returns what the adapter was handed for the outbound envelope out.
func (r *recording) wait(c *checker, out *bus.Envelope) gateways.Outbound {
	c.t.Helper()
	deadline := time.Now().Add(c.lim.settle)
	for {
		sent, _, _ := r.calls()
		for _, m := range sent {
			if m.ID == out.Message.ID {
				return m
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("message %s (type %q, %d media, body %q) did not reach the adapter within %v",
				out.Message.ID, out.Message.Type, len(out.Message.Media), out.Message.Body, c.lim.settle)
		}
		time.Sleep(pollInterval)
	}
}

// roomRecording is a recording of a RoomAdapter.
type roomRecording struct {
	*recording
	inner gateways.RoomAdapter
}

func (r *roomRecording) IsRoom(address string) bool { return r.inner.IsRoom(address) }

func (r *roomRecording) Join(ctx context.Context, j gateways.Join) error {
	r.mu.Lock()
	r.joins = append(r.joins, j)
	r.mu.Unlock()
	return r.inner.Join(ctx, j)
}

func (r *roomRecording) Leave(ctx context.Context, l gateways.Leave) error {
	r.mu.Lock()
	r.leaves = append(r.leaves, l)
	r.mu.Unlock()
	return r.inner.Leave(ctx, l)
}
