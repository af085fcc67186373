package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/proctest"
)

// openEmbedded starts a bus with the embedded server in its own data directory
// and closes it when the test ends.
func openEmbedded(t *testing.T, o bus.Options) *bus.Bus {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeBus(t, b) })
	return b
}

func closeBus(t *testing.T, b *bus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// checkFor polls f until it returns nil or the deadline passes, as the
// nats-server tests do.
func checkFor(t *testing.T, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", total, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testEnvelope(id string) *bus.Envelope {
	return &bus.Envelope{
		Kind:    bus.KindMessage,
		ID:      id,
		Gateway: "sms",
		Time:    time.Now().UTC(),
		User:    "alice@localhost/res",
		Contact: "+15551234567",
		Message: &bus.Message{ID: "m-" + id, Body: "hi " + id},
	}
}

func streamMsgs(t *testing.T, b *bus.Bus, stream string) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Msgs
}

func TestOpenProvisions(t *testing.T) {
	b := openEmbedded(t, bus.Options{})
	ctx := t.Context()

	if !b.Embedded() {
		t.Error("Embedded() = false for a bus without URL")
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready() = %v on an open bus", err)
	}

	streams := []struct {
		name    string
		subject string
	}{
		{bus.StreamOut, "xmppgw.*.out"},
		{bus.StreamIn, "xmppgw.*.in"},
	}
	for _, tt := range streams {
		t.Run("stream "+tt.name, func(t *testing.T) {
			s, err := b.JetStream().Stream(ctx, tt.name)
			if err != nil {
				t.Fatalf("stream %s: %v", tt.name, err)
			}
			cfg := s.CachedInfo().Config
			if cfg.Retention != jetstream.WorkQueuePolicy {
				t.Errorf("retention = %v, want work queue", cfg.Retention)
			}
			if cfg.Storage != jetstream.FileStorage {
				t.Errorf("storage = %v, want file", cfg.Storage)
			}
			if cfg.Replicas != 1 {
				t.Errorf("replicas = %d, want 1", cfg.Replicas)
			}
			if len(cfg.Subjects) != 1 || cfg.Subjects[0] != tt.subject {
				t.Errorf("subjects = %q, want [%q]", cfg.Subjects, tt.subject)
			}
			if cfg.MaxMsgSize != bus.MaxEnvelopeSize {
				t.Errorf("max message size = %d, want %d", cfg.MaxMsgSize, bus.MaxEnvelopeSize)
			}
			if cfg.Duplicates <= 0 {
				t.Errorf("duplicate window = %v, want > 0", cfg.Duplicates)
			}
		})
	}

	buckets := []struct {
		name string
		ttl  time.Duration // 0: kept forever
	}{
		{bus.BucketRegistrations, 0},
		{bus.BucketMessages, 7 * 24 * time.Hour},
	}
	for _, tt := range buckets {
		t.Run("bucket "+tt.name, func(t *testing.T) {
			kv, err := b.JetStream().KeyValue(ctx, tt.name)
			if err != nil {
				t.Fatalf("bucket %s: %v", tt.name, err)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.TTL() != tt.ttl {
				t.Errorf("TTL = %v, want %v", st.TTL(), tt.ttl)
			}
			cfg := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
			if cfg.Storage != jetstream.FileStorage {
				t.Errorf("storage = %v, want file", cfg.Storage)
			}
			if cfg.Replicas != 1 {
				t.Errorf("replicas = %d, want 1", cfg.Replicas)
			}
			// The bucket works.
			if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
				t.Errorf("Put: %v", err)
			}
		})
	}
}

func TestOpenIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		b := openEmbedded(t, bus.Options{DataDir: dir})
		if got := streamMsgs(t, b, bus.StreamOut); got != 0 {
			t.Errorf("open %d: %d messages in a fresh stream", i, got)
		}
		closeBus(t, b)
	}
}

// Without Listen the embedded server opens no port, so two of them in one
// process cannot collide (both would otherwise default to port 4222).
func TestOpenWithoutListenerTwiceConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	buses := make([]*bus.Bus, 2)
	for i := range 2 {
		dir := t.TempDir()
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			buses[i], errs[i] = bus.Open(ctx, bus.Options{DataDir: dir})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { closeBus(t, buses[i]) })
	}
	if t.Failed() {
		return
	}
	// Each is its own server: a message on one is not on the other.
	if _, err := buses[0].Publish(t.Context(), bus.OutSubject("sms"), testEnvelope("a"), "a"); err != nil {
		t.Fatal(err)
	}
	if n0, n1 := streamMsgs(t, buses[0], bus.StreamOut), streamMsgs(t, buses[1], bus.StreamOut); n0 != 1 || n1 != 0 {
		t.Errorf("stream sizes = %d, %d; want 1, 0", n0, n1)
	}
}

// freePort reserves a port for a server the test starts and restarts.
func freePort(t *testing.T) int {
	t.Helper()
	return proctest.FreePorts(t, 1)[0]
}

func TestOpenWithListener(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b := openEmbedded(t, bus.Options{Listen: addr})

	// An out-of-process adapter connects with a plain client.
	nc, err := nats.Connect("nats://"+addr, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to the embedded listener: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), bus.InSubject("sms"), []byte("x")); err != nil {
		t.Fatalf("publish over TCP: %v", err)
	}
	if got := streamMsgs(t, b, bus.StreamIn); got != 1 {
		t.Errorf("%s has %d messages, want 1", bus.StreamIn, got)
	}

	// And so does a second xmppgw process in external mode; provisioning
	// again is harmless.
	ext, err := bus.Open(t.Context(), bus.Options{URL: "nats://" + addr, Name: "xmppgw-adapter"})
	if err != nil {
		t.Fatalf("Open external: %v", err)
	}
	defer closeBus(t, ext)
	if ext.Embedded() {
		t.Error("Embedded() = true for an external bus")
	}
	if err := ext.Ready(t.Context()); err != nil {
		t.Errorf("Ready() on external bus = %v", err)
	}
	if got := streamMsgs(t, ext, bus.StreamIn); got != 1 {
		t.Errorf("after re-provisioning %s has %d messages, want 1", bus.StreamIn, got)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		o    bus.Options
		want string
	}{
		{"embedded without data dir", bus.Options{}, "data"},
		{"embedded with replicas 2", bus.Options{DataDir: "set", Replicas: 2}, "replicas"},
		{"listen without port", bus.Options{DataDir: "set", Listen: "127.0.0.1"}, "listen"},
		{"listen with bad port", bus.Options{DataDir: "set", Listen: "127.0.0.1:http"}, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.o.DataDir == "set" {
				tt.o.DataDir = t.TempDir()
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			b, err := bus.Open(ctx, tt.o)
			if err == nil {
				closeBus(t, b)
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestPublishDeduplicates(t *testing.T) {
	b := openEmbedded(t, bus.Options{})
	ctx := t.Context()
	subj := bus.OutSubject("sms")

	dup, err := b.Publish(ctx, subj, testEnvelope("1"), "alice@localhost/res:m1")
	if err != nil || dup {
		t.Fatalf("first Publish = %v, %v; want false, nil", dup, err)
	}
	// A redelivery of the same stanza gets a new envelope id but the same
	// message id.
	dup, err = b.Publish(ctx, subj, testEnvelope("2"), "alice@localhost/res:m1")
	if err != nil || !dup {
		t.Fatalf("second Publish = %v, %v; want true, nil", dup, err)
	}
	if got := streamMsgs(t, b, bus.StreamOut); got != 1 {
		t.Errorf("stream has %d messages, want 1", got)
	}

	// Without a message id nothing is deduplicated.
	for range 2 {
		if dup, err := b.Publish(ctx, subj, testEnvelope("3"), ""); err != nil || dup {
			t.Fatalf("Publish without msgID = %v, %v; want false, nil", dup, err)
		}
	}
	if got := streamMsgs(t, b, bus.StreamOut); got != 3 {
		t.Errorf("stream has %d messages, want 3", got)
	}
}

func TestPublishErrors(t *testing.T) {
	b := openEmbedded(t, bus.Options{})
	ctx := t.Context()

	bad := testEnvelope("1")
	bad.User = ""
	if _, err := b.Publish(ctx, bus.OutSubject("sms"), bad, ""); !errors.Is(err, bus.ErrInvalidEnvelope) {
		t.Errorf("Publish(invalid) = %v, want ErrInvalidEnvelope", err)
	}
	// No stream holds this subject, so nothing can be stored.
	if _, err := b.Publish(ctx, "elsewhere", testEnvelope("2"), ""); err == nil {
		t.Error("Publish to a subject without a stream succeeded")
	}
	if got := streamMsgs(t, b, bus.StreamOut); got != 0 {
		t.Errorf("stream has %d messages, want 0", got)
	}
}

func TestPublishSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()

	b := openEmbedded(t, bus.Options{DataDir: dir})
	want := testEnvelope("durable")
	if _, err := b.Publish(ctx, bus.OutSubject("sms"), want, "durable"); err != nil {
		t.Fatal(err)
	}
	closeBus(t, b)

	b = openEmbedded(t, bus.Options{DataDir: dir})
	if got := streamMsgs(t, b, bus.StreamOut); got != 1 {
		t.Fatalf("after restart the stream has %d messages, want 1", got)
	}
	cons, err := b.Consumer(ctx, bus.ConsumerConfig{
		Stream: bus.StreamOut, Name: bus.AdapterConsumer("sms"), Subject: bus.OutSubject("sms"),
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	got, err := bus.Decode(msg.Data())
	if err != nil {
		t.Fatal(err)
	}
	if !equalEnvelope(got, want) {
		t.Errorf("after restart got %+v, want %+v", got, want)
	}
	// The dedup window survives the restart as well.
	if dup, err := b.Publish(ctx, bus.OutSubject("sms"), want, "durable"); err != nil || !dup {
		t.Errorf("Publish after restart = %v, %v; want duplicate", dup, err)
	}
}

func TestConsumerPending(t *testing.T) {
	b := openEmbedded(t, bus.Options{})
	ctx := t.Context()
	name := bus.ComponentConsumer("sms")

	cons, err := b.Consumer(ctx, bus.ConsumerConfig{Stream: bus.StreamIn, Name: name, Subject: bus.InSubject("sms")})
	if err != nil {
		t.Fatalf("Consumer: %v", err)
	}
	cfg := cons.CachedInfo().Config
	if cfg.Durable != name || cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.FilterSubject != bus.InSubject("sms") {
		t.Errorf("consumer config = durable %q, ack %v, filter %q", cfg.Durable, cfg.AckPolicy, cfg.FilterSubject)
	}
	if cfg.AckWait != 30*time.Second || cfg.MaxAckPending != 1000 {
		t.Errorf("defaults: ack wait %v, max ack pending %d; want 30s, 1000", cfg.AckWait, cfg.MaxAckPending)
	}
	// Messages for another gateway are not this consumer's.
	if _, err := b.Publish(ctx, bus.InSubject("irc"), testEnvelope("other"), ""); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := b.Publish(ctx, bus.InSubject("sms"), testEnvelope(fmt.Sprint(i)), ""); err != nil {
			t.Fatal(err)
		}
	}

	wantPending := func(waiting, unacked uint64) func() error {
		return func() error {
			w, u, err := b.Pending(ctx, bus.StreamIn, name)
			if err != nil {
				return err
			}
			if w != waiting || u != unacked {
				return fmt.Errorf("pending = %d waiting, %d unacked; want %d, %d", w, u, waiting, unacked)
			}
			return nil
		}
	}
	checkFor(t, 5*time.Second, wantPending(3, 0))

	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 2 {
		t.Fatalf("fetched %d messages, want 2 (err %v)", len(msgs), batch.Error())
	}
	checkFor(t, 5*time.Second, wantPending(1, 2))

	for _, m := range msgs {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, wantPending(1, 0))
	// Work queue: acknowledged messages leave the stream.
	if got := streamMsgs(t, b, bus.StreamIn); got != 2 {
		t.Errorf("stream has %d messages, want 2 (1 sms + 1 irc)", got)
	}

	if _, _, err := b.Pending(ctx, bus.StreamIn, "no_such_consumer"); err == nil {
		t.Error("Pending for a missing consumer succeeded")
	}
}

func TestCloseTwice(t *testing.T) {
	b, err := bus.Open(t.Context(), bus.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := b.Close(t.Context()); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if err := b.Ready(t.Context()); err == nil {
		t.Error("Ready() = nil after Close")
	}
	if !b.Conn().IsClosed() {
		t.Error("connection still open after Close")
	}
}

func TestIsStorageFull(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"insufficient storage", &jetstream.APIError{Code: 503, ErrorCode: 10047, Description: "insufficient storage resources available"}, true},
		{"insufficient storage, code only", &jetstream.APIError{ErrorCode: 10047}, true},
		{"wrapped", fmt.Errorf("bus: publish x: %w", &jetstream.APIError{ErrorCode: 10047}), true},
		{"maximum messages exceeded", &jetstream.APIError{ErrorCode: 10077}, true},
		{"insufficient memory", &jetstream.APIError{ErrorCode: 10028}, true},
		{"stream not found", &jetstream.APIError{Code: 404, ErrorCode: 10059, Description: "stream not found"}, false},
		{"plain error", errors.New("connection reset"), false},
		{"timeout", context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bus.IsStorageFull(tt.err); got != tt.want {
				t.Errorf("IsStorageFull(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestSubjectsAndConsumerNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{bus.OutSubject("sms"), "xmppgw.sms.out"},
		{bus.InSubject("sms"), "xmppgw.sms.in"},
		{bus.AdapterConsumer("sms"), "adapter_sms"},
		{bus.ComponentConsumer("sms"), "component_sms"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
