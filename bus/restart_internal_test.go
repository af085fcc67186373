package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// A publish in flight while the embedded server restarts (watchStore's
// repair) is answered truthfully: stored, or an error. An error that does
// not say the outcome is unknown must mean the message is not in the
// stream, since a sender told "not queued" sends it again. Messages are
// started all through several restarts, on the grouped path (Start) as
// the component does; afterwards the stream is read back and every answer
// checked against it.
func TestRestartAnswersMatchTheStream(t *testing.T) {
	// 4 senders: plain pipelined publishes; 40: atomic batches as well.
	for _, workers := range []int{4, 40} {
		t.Run(fmt.Sprintf("%d senders", workers), func(t *testing.T) { restartAnswers(t, workers) })
	}
}

func restartAnswers(t *testing.T, workers int) {
	ctx, b := openEmbedded(t)
	const restarts = 6
	type answer struct {
		id      string
		err     error
		unknown bool
	}
	var (
		mu      sync.Mutex
		answers []answer
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%05d", w, i)
				e := &Envelope{Kind: KindMessage, ID: id, Gateway: "g", User: "a@example.com", Contact: "+1555", Message: &Message{Body: id}}
				wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := b.Start(OutSubject("g"), e, id).Wait(wctx)
				cancel()
				mu.Lock()
				answers = append(answers, answer{id, err, errors.Is(err, ErrOutcomeUnknown)})
				mu.Unlock()
				if err != nil {
					// The way the component goes on: the next message
					// comes when the sender sends it.
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	// Each restart comes once work flows again after the previous one.
	stored := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range answers {
			if a.err == nil {
				n++
			}
		}
		return n
	}
	for range restarts {
		deadline := time.Now().Add(10 * time.Second)
		for want := stored() + 100; stored() < want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no progress within 10s after a restart (%d stored)", stored())
			}
		}
		if err := b.restartEmbedded(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()

	// What the stream holds, read back after the last restart.
	inStream := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	var s jetstream.Stream
	for {
		var err error
		if s, err = b.js.Stream(ctx, StreamOut); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream after the restarts: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // a gap
		}
		inStream[m.Header.Get(jetstream.MsgIDHeader)] = true
	}
	var acked, definite, unknown int
	for _, a := range answers {
		switch {
		case a.err == nil:
			acked++
			if !inStream[a.id] {
				t.Errorf("%s: acknowledged, not in the stream", a.id)
			}
		case a.unknown:
			unknown++
		default:
			definite++
			if inStream[a.id] {
				t.Errorf("%s: refused (%v), yet in the stream", a.id, a.err)
			}
		}
	}
	t.Logf("%d restarts: %d stored, %d refused, %d unknown", restarts, acked, definite, unknown)
	for _, a := range answers {
		if a.err != nil {
			t.Logf("%s: %v", a.id, a.err)
		}
	}
	if acked == 0 {
		t.Fatal("nothing stored: the test tested nothing")
	}
}
