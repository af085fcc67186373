package component_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/component"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// A message whose store is still working on it when the gateway is told to
// stop gets its answer before the stream closes: here the disk fails
// meanwhile, and the sender must be told that the message may or may not
// be queued (an error reply written after our </stream:stream> would never
// reach anybody, and the message would be neither stored nor reported).
func TestShutdownAnswersTheStanzaBeingStored(t *testing.T) {
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{domain: "secret"},
		Users:      map[string]string{"alice": "password"},
	})
	b := bustest.Open(t)
	// The store of outbound messages is replaced by a responder the test
	// drives: the component's publish is a request that waits for it.
	if err := b.JetStream().DeleteStream(t.Context(), bus.StreamOut); err != nil {
		t.Fatal(err)
	}
	stores := make(chan *nats.Msg, 1)
	sub, err := b.Conn().ChanSubscribe(bus.OutSubject("sms"), stores)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	comp, err := component.New(component.Options{
		Name: "sms", Domain: domain, Secret: "secret", Server: srv.ComponentAddr(), Bus: b,
		IdentityType: "sms", AllowedDomains: []string{"localhost"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- comp.Run(ctx) }()
	defer func() {
		stop()
		<-done
	}()
	deadline := time.Now().Add(timeout)
	for up, _ := comp.Status(); !up; up, _ = comp.Status() {
		if time.Now().After(deadline) {
			t.Fatal("component not up")
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}

	alice := xmpptest.Login(t, srv, "alice", "password")
	id := alice.SendChat(t, "+15551234567@"+domain, "in flight at shutdown")
	select {
	case <-stores:
	case <-time.After(timeout):
		t.Fatal("the component did not try to store the message")
	}
	// The store is still working on it when the gateway is told to stop.
	stop()
	// Give a shutdown that does not wait for the stanza being handled the
	// time to close the stream first: it stops the inbound pull (whose
	// fetch waits up to 1 s), then closes. A shutdown that waits is not
	// affected by this pause; nothing here waits for a result by sleeping.
	time.Sleep(1500 * time.Millisecond) // lets the bug show
	// Then the disk fails: the store will not answer, and the sender is
	// told that the message may or may not have been queued.
	b.InjectStoreFault(bus.StreamOut, errors.New("sync 1.blk: input/output error"))
	s := alice.WaitStanza(t, timeout, func(s xmpptest.Stanza) bool { return s.Kind == "message" && s.ID == id })
	if s.Type != "error" || s.ErrorType != "wait" || s.ErrorCondition != "resource-constraint" || !strings.Contains(s.ErrorText, "may still be delivered") {
		t.Fatalf("the sender got %s, want a wait resource-constraint error saying the message may still be delivered", s.Raw)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		done <- nil // for the deferred stop
	case <-time.After(timeout):
		t.Fatal("Run did not return after its error reply")
	}
}
