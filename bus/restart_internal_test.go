package bus

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// After a restart of the embedded server (what watchStore does when a disk
// fault has cleared), the same Bus publishes and consumes again, and what
// was stored before is still there.
func TestEmbeddedRestartKeepsTheConnection(t *testing.T) {
	ctx, b := openEmbedded(t)

	env := func(id string) *Envelope {
		return &Envelope{Kind: KindMessage, ID: id, Gateway: "g", User: "a@example.com", Contact: "+1555", Message: &Message{Body: id}}
	}
	if _, err := b.Publish(ctx, OutSubject("g"), env("before"), "m1"); err != nil {
		t.Fatal(err)
	}
	b.emb.stop()
	if err := b.emb.start(); err != nil {
		t.Fatal(err)
	}
	// The connection reconnects by itself; publishes may fail until then.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err := b.Publish(pctx, OutSubject("g"), env("after"), "m2")
		pcancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no publish within 10s of the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cons, err := b.Consumer(ctx, ConsumerConfig{Stream: StreamOut, Name: AdapterConsumer("g"), Subject: OutSubject("g")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		e, err := Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.ID)
		_ = msg.Ack()
	}
	if got[0] != "before" || got[1] != "after" {
		t.Fatalf("consumed %v, want [before after]", got)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready after restart: %v", err)
	}
}

// openEmbedded opens a bus with its own embedded server and data directory,
// closed when the test ends, and a context that bounds the test to 30 s.
func openEmbedded(t *testing.T) (context.Context, *Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	b, err := Open(ctx, Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return ctx, b
}
