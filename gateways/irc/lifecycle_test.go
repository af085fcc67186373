package irc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/irc"
	"github.com/xmppgw/xmppgw/internal/irctest"
)

// Not parallel: it checks that no goroutine of the package is left, which
// other tests' adapters would spoil.
func TestLifecycle(t *testing.T) {
	srv := irctest.Start(t, irctest.Options{})
	stop := func(t *testing.T, a gateways.Adapter) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}

	t.Run("stop without start", func(t *testing.T) {
		f := setup(t, srv, nil, nil)
		stop(t, f.a)
		stop(t, f.a)
		checkNoGoroutines(t)
	})

	t.Run("start without the registrations bucket", func(t *testing.T) {
		a, err := irc.New(gateways.Params{Name: "irc", Domain: domain, Config: ircConfig(srv)})
		if err != nil {
			t.Fatal(err)
		}
		if a.(gateways.RegistrarProvider).Registrar() != nil {
			t.Error("a registrar without a bucket")
		}
		if err := a.Start(context.Background(), newHost()); err == nil {
			t.Error("Start without the bucket succeeded")
		}
		stop(t, a)
		checkNoGoroutines(t)
	})

	t.Run("busy adapter stops cleanly", func(t *testing.T) {
		f := setup(t, srv, nil, map[string]string{alice: "alice", bobJID: "bobx"})
		bob := srv.Dial(t, "bob")
		bob.Join(t, "#life") // to see alice quit
		if err := f.a.Start(context.Background(), f.host); err != nil {
			t.Fatal(err)
		}
		if err := f.a.Start(context.Background(), f.host); err == nil {
			t.Error("a second Start succeeded")
		}
		join(t, f, aliceR, "#life")
		send(t, f.a, gateways.Outbound{From: aliceR, To: "bob", Body: "before stop"})
		bob.Wait(t, wait, privmsg("alice", "bob", "before stop"))
		// A long message still going out when Stop comes.
		go func() {
			_, _ = f.a.Send(context.Background(), gateways.Outbound{ID: "long", From: aliceR, To: "bob", Body: longBody(5000), Attempt: 1})
		}()
		stop(t, f.a)
		bob.Wait(t, wait, func(l irctest.Line) bool {
			return l.Command == "QUIT" && l.Nick() == "alice" && strings.Contains(l.Text(), "Gateway shutting down")
		})
		checkNoGoroutines(t)
		_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: aliceR, To: "bob", Body: "after stop", Attempt: 1})
		if !errors.Is(err, gateways.ErrNotConnected) {
			t.Errorf("Send after Stop = %v, want ErrNotConnected", err)
		}
	})

	t.Run("server down at start", func(t *testing.T) {
		down := irctest.Start(t, irctest.Options{})
		f := setup(t, down, nil, map[string]string{alice: "alice"})
		down.Stop(t)
		if err := f.a.Start(context.Background(), f.host); err != nil {
			t.Fatalf("Start = %v; users connect in the background", err)
		}
		_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: aliceR, To: "bob", Body: "hi", Attempt: 1})
		if !errors.Is(err, gateways.ErrNotConnected) || errors.Is(err, gateways.ErrPermanent) {
			t.Errorf("Send = %v, want a retryable ErrNotConnected", err)
		}
		down.Start(t)
		bob := down.Dial(t, "bob")
		waitOnIRC(t, bob, "alice") // the retry with backoff connects
		stop(t, f.a)
		checkNoGoroutines(t)
	})
}

// A registration made by another process of the gateway (here, another
// adapter's registrar on the same bucket) connects the user.
func TestRegistrationFromAnotherProcess(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	f := started(t, srv)
	bob := srv.Dial(t, "bob")
	other, err := irc.New(gateways.Params{Name: "irc", Domain: domain, Config: ircConfig(srv), Registrations: f.kv})
	if err != nil {
		t.Fatal(err)
	}
	reg := other.(gateways.RegistrarProvider).Registrar().(gateways.AddressChooser)
	if _, err := reg.RegisterAs(context.Background(), "carol@localhost", "carol"); err != nil {
		t.Fatal(err)
	}
	waitOnIRC(t, bob, "carol")
	mark := f.host.mark()
	bob.Privmsg(t, "carol", "hi carol")
	i := f.host.waitFrom(t, mark, "bob's message to carol", dm("bob", "hi carol"))
	if to := f.host.all()[i].in.To; to != "carol@localhost" {
		t.Errorf("delivered to %q", to)
	}
	if _, err := other.(gateways.RegistrarProvider).Registrar().Unregister(context.Background(), "carol@localhost"); err != nil {
		t.Fatal(err)
	}
	waitOffIRC(t, bob, "carol")
}

func TestMaxConnections(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	cfg := ircConfig(srv)
	cfg.MaxConnections = 1
	f := setup(t, srv, cfg, map[string]string{alice: "alice"})
	f.start(t)
	if _, err := f.chooser().RegisterAs(context.Background(), bobJID, "bobby"); err != nil {
		t.Fatal(err)
	}
	_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: bobJID + "/r", To: "alice", Body: "hi", Attempt: 1})
	if condition(err) != gateways.ResourceConstraint || !errors.Is(err, gateways.ErrPermanent) {
		t.Errorf("Send past max_connections = %v, want a permanent resource-constraint", err)
	}
}
