package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// groups records the groups a committer makes.
type groups struct {
	mu     sync.Mutex
	atomic []int // sizes of the groups committed as atomic batches
	plain  []int
}

func watchGroups(b *Bus, stream string) *groups {
	g := &groups{}
	c := b.committers[stream]
	c.mu.Lock()
	c.onGroup = func(n int, atomic bool) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if atomic {
			g.atomic = append(g.atomic, n)
		} else {
			g.plain = append(g.plain, n)
		}
	}
	c.mu.Unlock()
	return g
}

func (g *groups) atomicMessages() (n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range g.atomic {
		n += k
	}
	return n
}

// storedBodies reads stream back in sequence order: the body of each message.
func storedBodies(t *testing.T, ctx context.Context, b *Bus, stream string) []string {
	t.Helper()
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		e, err := Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, e.Message.Body)
	}
	return bodies
}

func envelope(body string) *Envelope {
	return &Envelope{Kind: KindMessage, ID: body, Gateway: "g", User: "a@example.com", Contact: "+1555", Message: &Message{Body: body}}
}

// Messages started in order by one caller (the component's stream reader)
// are grouped into atomic batches and stored in that order, each caller
// told its own sequence.
func TestGroupCommitKeepsOrder(t *testing.T) {
	ctx, b := openEmbedded(t)
	g := watchGroups(b, StreamOut)
	const n = 600
	pending := make([]*Pending, n)
	for i := range n {
		pending[i] = b.Start(OutSubject("g"), envelope(fmt.Sprintf("m%03d", i)), fmt.Sprintf("id%03d", i))
	}
	var last uint64
	for i, p := range pending {
		ack, err := p.wait(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if ack.Duplicate || ack.Sequence <= last {
			t.Fatalf("message %d: sequence %d after %d (duplicate %v)", i, ack.Sequence, last, ack.Duplicate)
		}
		last = ack.Sequence
	}
	bodies := storedBodies(t, ctx, b, StreamOut)
	if len(bodies) != n {
		t.Fatalf("%d stored, want %d", len(bodies), n)
	}
	for i, body := range bodies {
		if want := fmt.Sprintf("m%03d", i); body != want {
			t.Fatalf("stored #%d is %q, want %q", i, body, want)
		}
	}
	if got := g.atomicMessages(); got < n/2 {
		t.Errorf("only %d of %d messages went in atomic batches (groups %v / plain %v)", got, n, g.atomic, g.plain)
	}
}

// Concurrent publishers share batches; resending the same dedup ids, mixed
// with new ones, fails the batch as a whole on the server (duplicates are
// refused in atomic batches): the committer then stores them one by one,
// and each caller hears whether its message was a duplicate.
func TestGroupCommitDuplicates(t *testing.T) {
	ctx, b := openEmbedded(t)
	g := watchGroups(b, StreamIn)
	publishAll := func(from, to int) map[int]bool {
		var mu sync.Mutex
		dups := map[int]bool{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := from; i < to; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				dup, err := b.Publish(ctx, InSubject("g"), envelope(fmt.Sprintf("m%d", i)), fmt.Sprintf("id%d", i))
				if err != nil {
					t.Errorf("message %d: %v", i, err)
				}
				mu.Lock()
				dups[i] = dup
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		return dups
	}
	for i, dup := range publishAll(0, 200) {
		if dup {
			t.Errorf("message %d: a duplicate the first time", i)
		}
	}
	for i, dup := range publishAll(100, 300) {
		if dup != (i < 200) {
			t.Errorf("message %d: duplicate %v", i, dup)
		}
	}
	if n := len(storedBodies(t, ctx, b, StreamIn)); n != 300 {
		t.Errorf("%d stored, want 300", n)
	}
	if g.atomicMessages() == 0 {
		t.Errorf("no atomic batch among 200 concurrent publishes (plain groups %v)", g.plain)
	}
}

// Grouped KV puts are ordinary KV revisions, readable by the bucket's own
// client; bad keys are refused as jetstream refuses them.
func TestGroupedPut(t *testing.T) {
	ctx, b := openEmbedded(t)
	kv, err := b.KeyValue(ctx, BucketMessages)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	revs := make([]uint64, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rev, err := kv.Put(ctx, fmt.Sprintf("k.%d", i), []byte(fmt.Sprint("v", i)))
			if err != nil {
				t.Errorf("put %d: %v", i, err)
			}
			revs[i] = rev
		}()
	}
	wg.Wait()
	plain, err := b.js.KeyValue(ctx, BucketMessages)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		e, err := plain.Get(ctx, fmt.Sprintf("k.%d", i))
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if string(e.Value()) != fmt.Sprint("v", i) || e.Revision() != revs[i] {
			t.Errorf("k.%d: %q at revision %d, put returned %d", i, e.Value(), e.Revision(), revs[i])
		}
	}
	for _, bad := range []string{"", ".k", "k.", "a b", "k.*", "k.>"} {
		if _, err := kv.Put(ctx, bad, []byte("x")); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	if _, err := kv.Put(ctx, "k.0", nil); err != nil {
		t.Errorf("empty value: %v", err)
	}
}
