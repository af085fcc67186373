package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
)

// benchEnvelope is an ordinary outbound SMS as the component publishes it.
func benchEnvelope(id string) *bus.Envelope {
	return &bus.Envelope{
		Kind:    bus.KindMessage,
		ID:      "4c1Dq2mZb0fW8XkVn3rTqa" + id,
		Gateway: "sms",
		Time:    time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		User:    "alice@example.com/phone-7f3a",
		Contact: "+15551234567",
		Message: &bus.Message{
			ID:   "a2f0c6d4-6c1e-4bb5-9d1e-" + id,
			Body: "Running 10 minutes late, see you at the station - sent from the gateway benchmark.",
		},
	}
}

func BenchmarkEncode(b *testing.B) {
	e := benchEnvelope("0")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.Encode(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data, err := bus.Encode(benchEnvelope("0"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func openBenchBus(b *testing.B, sync bool) *bus.Bus {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	bb, err := bus.Open(ctx, bus.Options{DataDir: b.TempDir(), SyncAlways: sync})
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := bb.Close(ctx); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	return bb
}

// BenchmarkPublish is one durable, deduplicated publish (what the component
// waits for before an outbound message counts as taken), on the embedded
// server with and without an fsync per write.
func BenchmarkPublish(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync_always=%v", sync), func(b *testing.B) {
			bb := openBenchBus(b, sync)
			ctx := context.Background()
			e := benchEnvelope("0")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if _, err := bb.Publish(ctx, bus.OutSubject("sms"), e, fmt.Sprintf("out:%s|%d", e.User, i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPublishConsume is one envelope's round trip through the bus as
// an inbound message makes it to the component: durable publish, then
// delivery through bus.Pull to a consumer with one message in flight (the
// component's settings), decode, ack. The next publish waits for the ack.
func BenchmarkPublishConsume(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync_always=%v", sync), func(b *testing.B) {
			bb := openBenchBus(b, sync)
			ctx := context.Background()
			cons, err := bb.Consumer(ctx, bus.ConsumerConfig{
				Stream: bus.StreamIn, Name: bus.ComponentConsumer("sms"), Subject: bus.InSubject("sms"),
				AckWait: 10 * time.Second, MaxAckPending: 1,
			})
			if err != nil {
				b.Fatal(err)
			}
			handled := make(chan error, 1)
			pullCtx, stop := context.WithCancel(ctx)
			pulled := make(chan struct{})
			go func() {
				defer close(pulled)
				bus.Pull(pullCtx, cons, 64, time.Second, func(msg jetstream.Msg) {
					_, err := bus.Decode(msg.Data())
					if err == nil {
						err = msg.Ack()
					}
					handled <- err
				})
			}()
			b.Cleanup(func() { stop(); <-pulled })
			e := benchEnvelope("0")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if _, err := bb.Publish(ctx, bus.InSubject("sms"), e, fmt.Sprintf("in:SM%032d", i)); err != nil {
					b.Fatal(err)
				}
				if err := <-handled; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
