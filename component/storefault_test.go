package component_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// While the store cannot write, inbound messages stay on the bus: the
// acknowledgement of one written to the user now could not be recorded, and
// it would reach the user again once the store is repaired. They are
// written, once, when the store writes again (here when the store watcher
// has restarted the embedded server).
func TestInboundHeldWhileTheStoreCannotWrite(t *testing.T) {
	g := startRoomGateway(t)
	g.bus.InjectStoreFault(bus.StreamIn, errors.New("write 1.blk: read-only file system"))
	e := &bus.Envelope{Kind: bus.KindMessage, ID: "held-in-1", Gateway: "irc", Time: time.Now().UTC(),
		User: g.alice.BareJID(), Contact: "bob", Message: &bus.Message{Body: "held until the store writes"}}
	data, err := bus.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	// Past the bus's refusal, as if stored just before the fault.
	if _, err := g.bus.JetStream().Publish(t.Context(), bus.InSubject("irc"), data); err != nil {
		t.Fatal(err)
	}
	received := func() int {
		n := 0
		for _, raw := range g.alice.Stanzas() {
			if strings.Contains(raw, "held until the store writes") {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := received()
		fault := g.bus.StoreFault()
		if fault != nil && got > 0 {
			t.Fatalf("written to the user while the store reports %v", fault)
		}
		if fault == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the store fault was not cleared by a restart of the embedded server")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	g.alice.WaitStanza(t, timeout, func(s xmpptest.Stanza) bool { return s.Kind == "message" && s.Body == "held until the store writes" })
	// A later message comes after it; the held one was written once.
	publishIn := &bus.Envelope{Kind: bus.KindMessage, ID: "after-1", Gateway: "irc", Time: time.Now().UTC(),
		User: g.alice.BareJID(), Contact: "bob", Message: &bus.Message{Body: "after the fault"}}
	if _, err := g.bus.Publish(t.Context(), bus.InSubject("irc"), publishIn, ""); err != nil {
		t.Fatal(err)
	}
	g.alice.WaitStanza(t, timeout, func(s xmpptest.Stanza) bool { return s.Kind == "message" && s.Body == "after the fault" })
	if n := received(); n != 1 {
		t.Fatalf("the held message was written %d times, want once", n)
	}
}
