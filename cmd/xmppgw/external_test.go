package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/config"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/sandbox"
	"github.com/xmppgw/xmppgw/internal/proctest"
)

// openBus starts an embedded bus with a client port, as `adapter: external`
// needs, and returns it with the port's URL.
func openBus(t *testing.T) (*bus.Bus, string) {
	t.Helper()
	addr := proctest.FreeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{DataDir: t.TempDir(), Listen: addr, SyncAlways: false})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b, "nats://" + addr
}

// checkFor polls f until it returns nil or timeout passes.
func checkFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The consumer created for an external adapter is the one the in-process
// runner creates: switching a gateway between the two changes nothing on the
// bus, and gateways.OutboundConsumer does not drift from the runner.
func TestExternalConsumerMatchesRunner(t *testing.T) {
	b, _ := openBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	adapter, err := sandbox.New(gateways.Params{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := gateways.NewRunner(gateways.RunnerOptions{Name: "inproc", Bus: b, Adapter: adapter})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var runnerCfg jetstream.ConsumerConfig
	checkFor(t, 10*time.Second, func() error {
		c, err := b.JetStream().Consumer(ctx, bus.StreamOut, bus.AdapterConsumer("inproc"))
		if err != nil {
			return err
		}
		runnerCfg = c.CachedInfo().Config
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runner: %v", err)
	}

	g := config.Gateway{Adapter: config.ExternalAdapter, AdapterConfig: &config.External{Type: "sms", ContactType: "pc"}}
	if _, err := newExternal(context.Background(), b, "ext", g, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	c, err := b.JetStream().Consumer(context.Background(), bus.StreamOut, bus.AdapterConsumer("ext"))
	if err != nil {
		t.Fatalf("newExternal did not create the consumer: %v", err)
	}
	extCfg := c.CachedInfo().Config
	if extCfg.FilterSubject != bus.OutSubject("ext") || runnerCfg.FilterSubject != bus.OutSubject("inproc") {
		t.Errorf("filter subjects: external %q, runner %q", extCfg.FilterSubject, runnerCfg.FilterSubject)
	}
	if extCfg.AckPolicy != runnerCfg.AckPolicy || extCfg.AckWait != runnerCfg.AckWait ||
		extCfg.MaxAckPending != runnerCfg.MaxAckPending || extCfg.DeliverPolicy != runnerCfg.DeliverPolicy ||
		extCfg.MaxDeliver != runnerCfg.MaxDeliver {
		t.Errorf("external consumer differs from the runner's:\nexternal %+v\nrunner   %+v", extCfg, runnerCfg)
	}
}

func TestExternalReady(t *testing.T) {
	b, url := openBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g := config.Gateway{Adapter: config.ExternalAdapter, AdapterConfig: &config.External{
		Type: "irc", ContactType: "pc", Rooms: true, RoomPrefixes: []string{"#", "&"},
	}}
	e, err := newExternal(ctx, b, "irc", g, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !e.info.Capabilities.Rooms || e.isRoom == nil || !e.isRoom("#go-nuts") || !e.isRoom("&local") || e.isRoom("alice") {
		t.Errorf("rooms: capabilities %+v, isRoom set %v", e.info.Capabilities, e.isRoom != nil)
	}

	// A message queued before any worker exists waits on the bus.
	env := &bus.Envelope{Kind: bus.KindMessage, ID: "e1", Gateway: "irc", User: "alice@localhost/r", Contact: "bob", Message: &bus.Message{ID: "m1", Body: "hi"}}
	if _, err := b.Publish(ctx, bus.OutSubject("irc"), env, "out:m1"); err != nil {
		t.Fatal(err)
	}
	err = e.Ready(ctx)
	if !errors.Is(err, errNotConsuming) {
		t.Fatalf("Ready without a worker = %v, want errNotConsuming", err)
	}
	if want := "gateway irc: no external adapter is consuming xmppgw.irc.out"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Ready = %q, want it to start with %q", err, want)
	}

	// A worker in another process: its own connection, binding to the
	// durable consumer without creating it.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, bus.StreamOut, bus.AdapterConsumer("irc"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { _ = m.Ack() }, jetstream.PullMaxMessages(4))
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error { return e.Ready(ctx) })
	checkFor(t, 10*time.Second, func() error {
		if _, unacked, err := b.Pending(ctx, bus.StreamOut, bus.AdapterConsumer("irc")); err != nil || unacked != 0 {
			return errors.New("the queued message was not delivered and acknowledged")
		}
		return nil
	})

	// Gone: its pull requests go with its connection.
	cc.Stop()
	nc.Close()
	checkFor(t, 10*time.Second, func() error {
		c, err := b.JetStream().Consumer(ctx, bus.StreamOut, bus.AdapterConsumer("irc"))
		if err != nil {
			return err
		}
		if n := c.CachedInfo().NumWaiting; n != 0 {
			return errors.New("pull requests still waiting")
		}
		return nil
	})
}

func TestConsuming(t *testing.T) {
	now := time.Now()
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	for _, tc := range []struct {
		name string
		ci   *jetstream.ConsumerInfo
		want bool
	}{
		{"no info", nil, false},
		{"never used", &jetstream.ConsumerInfo{}, false},
		{"pull waiting", &jetstream.ConsumerInfo{NumWaiting: 1}, true},
		{"delivered just now", &jetstream.ConsumerInfo{Delivered: jetstream.SequenceInfo{Last: ago(time.Second)}}, true},
		{"acked just now", &jetstream.ConsumerInfo{AckFloor: jetstream.SequenceInfo{Last: ago(time.Second)}}, true},
		{"quiet for long", &jetstream.ConsumerInfo{
			Delivered: jetstream.SequenceInfo{Last: ago(activityWindow + time.Second)},
			AckFloor:  jetstream.SequenceInfo{Last: ago(activityWindow + time.Second)},
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := consuming(tc.ci, now); got != tc.want {
				t.Errorf("consuming = %v, want %v", got, tc.want)
			}
		})
	}
}

// A consumer deleted behind the gateway's back (by an operator, or lost with
// an external NATS' state) is put back, so outbound messages keep queuing.
func TestExternalRecreatesConsumer(t *testing.T) {
	b, _ := openBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := config.Gateway{Adapter: config.ExternalAdapter, AdapterConfig: &config.External{Type: "sms", ContactType: "pc"}}
	e, err := newExternal(ctx, b, "sms", g, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.JetStream().DeleteConsumer(ctx, bus.StreamOut, bus.AdapterConsumer("sms")); err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(ctx); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("Ready without the consumer = %v, want ErrConsumerNotFound", err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	checkFor(t, 10*time.Second, func() error {
		_, err := b.JetStream().Consumer(ctx, bus.StreamOut, bus.AdapterConsumer("sms"))
		return err
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil on cancellation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}
