package gateways_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
)

// While the store cannot write, a message taken from the bus is held, not
// sent: its acknowledgement could not be recorded, and once the store is
// repaired the message would come back and be sent a second time. It is
// sent once the store writes again (here when the store watcher has
// restarted the embedded server), once, as a first attempt.
func TestRunnerHoldsSendsWhileTheStoreCannotWrite(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, nil)
	startedHost(t, a)

	h.b.InjectStoreFault(bus.StreamOut, errors.New("write 1.blk: read-only file system"))
	// Published past the bus's refusal (as if stored just before the
	// fault): the runner takes it while the fault lasts.
	env := &bus.Envelope{Kind: bus.KindMessage, ID: nuid.Next(), Gateway: gw, Time: time.Now().UTC(),
		User: sender, Contact: contact, Message: &bus.Message{ID: "held-1", Body: "hi"}}
	data, err := bus.Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.b.JetStream().Publish(t.Context(), bus.OutSubject(gw), data); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		sent := len(a.Calls())
		fault := h.b.StoreFault()
		if fault != nil && sent > 0 {
			t.Fatalf("sent %d times while the store reports %v", sent, fault)
		}
		if fault == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the store fault was not cleared by a restart of the embedded server")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	calls := waitCalls(t, a, 1)
	h.waitSettled()
	if calls = a.Calls(); len(calls) != 1 || calls[0].ID != "held-1" || calls[0].Attempt != 1 {
		t.Fatalf("after the fault: %+v, want held-1 sent once as attempt 1", calls)
	}
}
