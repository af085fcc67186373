package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The embedded server's reports of a store write error, in the words of
// nats-server v2.15 (server/filestore.go, stream.go, jetstream.go), name
// the stream; other errors are not taken for one.
func TestStoreWriteErrorRecognised(t *testing.T) {
	for _, c := range []struct {
		msg, stream string
	}{
		{fmt.Sprintf("Filestore [%s] Critical write error: %v", "XMPPGW_IN", "write /data/jetstream/$G/streams/XMPPGW_IN/msgs/657.blk: read-only file system"), "XMPPGW_IN"},
		{fmt.Sprintf("JetStream stream '%s > %s' critical write error: %v", "$G", "KV_xmppgw_messages", "sync 1.blk: input/output error"), "KV_xmppgw_messages"},
		{fmt.Sprintf("JetStream out of %s resources, will be DISABLED", "File"), "JetStream"},
		{"JetStream failed to store a msg on stream '$G > XMPPGW_OUT': write 584.blk: read-only file system", ""},
		{"Filestore [XMPPGW_OUT] Stream state encountered internal inconsistency on write", ""},
		{"JetStream stream 'XMPPGW_OUT' critical write error: no account", ""},
		{"Error trying to connect to route", ""},
	} {
		stream, ok := storeWriteError(c.msg)
		if ok != (c.stream != "") || stream != c.stream {
			t.Errorf("%q: got %q, %v; want %q", c.msg, stream, ok, c.stream)
		}
	}
}

// A write error the server logs refuses publishes at once (no publish
// waits for a store that cannot answer), makes the bus unready and reports
// itself through StoreFault until the server is restarted.
func TestStoreFaultRefusesUntilRestart(t *testing.T) {
	ctx, b := openEmbedded(t)
	env := &Envelope{Kind: KindMessage, ID: "m", Gateway: "g", User: "a@example.com", Contact: "+1555", Message: &Message{Body: "x"}}
	if b.StoreFault() != nil {
		t.Fatal("a fresh store reports a fault")
	}

	// What the server's logger hears when a block write fails.
	logger := &natsLogger{l: b.log, fault: b.emb.fault}
	logger.Errorf("Filestore [%s] Critical write error: %v", StreamIn, "write 657.blk: read-only file system")

	if b.StoreFault() == nil {
		t.Fatal("StoreFault is nil after a write error")
	}
	began := time.Now()
	_, err := b.Publish(ctx, InSubject("g"), env, "m1")
	if !errors.Is(err, ErrStoreRefusing) || !IsStorageFull(err) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("publish during a store fault: %v, want ErrStoreRefusing, known not stored", err)
	}
	if d := time.Since(began); d > 100*time.Millisecond {
		t.Errorf("the refusal took %v; it should not try the store", d)
	}
	if err := b.Ready(ctx); err == nil {
		t.Error("Ready is nil during a store fault")
	}
	// Publishes that would succeed do not clear it: only a restart does.
	time.Sleep(2 * retryInterval) // past the retry interval of publish failures
	if _, err := b.Publish(ctx, OutSubject("g"), env, "m2"); err == nil {
		t.Error("a publish went through during a store fault")
	}

	// The watcher restarts the server once the fault has lasted and the
	// directory takes writes (it does here: the fault was only reported).
	deadline := time.Now().Add(stuckAfter + 10*time.Second)
	for b.StoreFault() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the store watcher did not restart the server")
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err := b.Publish(pctx, OutSubject("g"), env, "m3")
		pcancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no publish after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after the restart: %v", err)
	}
}

// silentStore replaces the store of subject's stream with one that never
// answers: the stream is gone, and a subscriber takes each publish (sent on
// the returned channel) without replying.
func silentStore(t *testing.T, ctx context.Context, b *Bus, stream, subject string) <-chan *nats.Msg {
	t.Helper()
	if err := b.js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	taken := make(chan *nats.Msg, 8)
	sub, err := b.nc.ChanSubscribe(subject, taken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return taken
}

var testEnvelope = &Envelope{Kind: KindMessage, ID: "m", Gateway: "g", User: "a@example.com", Contact: "+1555", Message: &Message{Body: "x"}}

// A publish that reached the store and got no answer by the caller's
// deadline has an unknown outcome: the message may have been stored.
func TestPublishWithoutAnswerHasUnknownOutcome(t *testing.T) {
	ctx, b := openEmbedded(t)
	taken := silentStore(t, ctx, b, StreamOut, OutSubject("g"))
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := b.Publish(short, OutSubject("g"), testEnvelope, "m0")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("publish without an answer: %v, want a deadline with an unknown outcome", err)
	}
	select {
	case <-taken:
	default:
		t.Fatal("the publish did not reach the store")
	}
}

// A publish already waiting on the store when a fault is recorded gives up
// at once, its outcome unknown: the store will not answer it.
func TestStoreFaultEndsWaitingPublishes(t *testing.T) {
	ctx, b := openEmbedded(t)
	taken := silentStore(t, ctx, b, StreamOut, OutSubject("g"))
	done := make(chan error, 1)
	go func() {
		_, err := b.Publish(ctx, OutSubject("g"), testEnvelope, "m1")
		done <- err
	}()
	select {
	case <-taken:
	case <-ctx.Done():
		t.Fatal("the publish did not reach the store")
	}
	b.InjectStoreFault(StreamOut, errors.New("sync 1.blk: input/output error"))
	select {
	case err := <-done:
		if !errors.Is(err, ErrStoreRefusing) || !errors.Is(err, ErrOutcomeUnknown) {
			t.Fatalf("publish: %v, want ErrStoreRefusing with an unknown outcome", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting publish did not give up when the fault was recorded")
	}
}
