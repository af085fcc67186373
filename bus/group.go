package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Group commit (docs/group-commit.md, issue #16).
//
// With sync_always the embedded store fsyncs every write before it answers,
// and writes to one stream are made one after another: concurrent
// publishes never share an fsync. The one mechanism nats-server has that
// makes many messages durable with one fsync, and still answers only after
// it, is the atomic batch (allow_atomic, nats-server 2.12; since 2.15 the
// batch's writes are synced together, once, before the batch's single
// acknowledgement). Each stream the bus writes to in volume gets a
// committer: publishers queue their messages and wait; one goroutine takes
// everything queued while its previous commit was in flight and makes it
// durable as one atomic batch when there are enough of them to pay for the
// batch's fixed cost, or as pipelined plain publishes otherwise. Either
// way a caller hears "stored" only after the fsync covering its message.
//
// Measured on the 2-core development machine (ext4, sync_always, 400-byte
// messages, one stream): plain publishes 1,200-1,700 msg/s whatever their
// concurrency; atomic batches of 8: 1,000 msg/s, of 16: 1,700, of 64:
// 6,400, of 256: 22,000. A batch costs about six syncs whatever its size
// (its staging store's two metadata files, each with its directory, the
// staging flush and the stream's own), hence minAtomic.

// minAtomic is the smallest group committed as an atomic batch; smaller
// groups go as pipelined plain publishes, which cost one fsync each.
const minAtomic = 16

// Bounds of one group: nats-server refuses batches over 1,000 messages
// (JetStreamLimits.MaxBatchSize), and a group is held in memory twice.
const (
	maxGroup      = 256
	maxGroupBytes = 8 << 20
)

// batchErrDuplicate: an atomic batch containing a Nats-Msg-Id the stream
// already holds fails as a whole (JSAtomicPublishContainsDuplicateMessageErr);
// one by one, each message gets its own answer, a duplicate among them.
const batchErrDuplicate = 10201

// Pending is a message on its way to the store.
type Pending struct {
	b       *Bus
	subject string
	// Through a committer: done closes once ack or err is set.
	done chan struct{}
	ack  *jetstream.PubAck
	err  error
	// Without one: the publish is made by Wait, so that messages whose
	// Waits are called in order are stored in order.
	msg *nats.Msg
	// refused: failed before anything was sent (err says why).
	refused bool
}

// committer groups the writes to one stream.
type committer struct {
	b      *Bus
	stream string
	atomic bool // the stream takes atomic batches

	mu      sync.Mutex
	queue   []*Pending
	wake    chan struct{}
	stopped bool
	quit    chan struct{}
	done    chan struct{}

	// For tests: the size of each group committed, and whether it went
	// as an atomic batch. Set before the first submit.
	onGroup func(n int, atomic bool)
}

func newCommitter(b *Bus, stream string, atomic bool) *committer {
	c := &committer{b: b, stream: stream, atomic: atomic,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// submit queues p; it never blocks.
func (c *committer) submit(p *Pending) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		p.finish(nil, fmt.Errorf("bus: publish %s: %w", p.subject, nats.ErrConnectionClosed))
		return
	}
	c.queue = append(c.queue, p)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// stop commits what is queued and ends the goroutine.
func (c *committer) stop() {
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		close(c.quit)
	}
	c.mu.Unlock()
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
		case <-c.quit:
			for c.commitQueued() {
			}
			return
		}
		for c.commitQueued() {
		}
	}
}

// commitQueued commits one group of what is queued; false when nothing was.
func (c *committer) commitQueued() bool {
	c.mu.Lock()
	n, size := 0, 0
	for n < len(c.queue) && n < maxGroup {
		size += len(c.queue[n].msg.Data)
		if n > 0 && size > maxGroupBytes {
			break
		}
		n++
	}
	group := make([]*Pending, n)
	copy(group, c.queue)
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil // let the backing array go
	}
	c.mu.Unlock()
	if n == 0 {
		return false
	}
	if c.atomic && n >= minAtomic {
		err := c.commitAtomic(group)
		if c.onGroup != nil {
			c.onGroup(n, err == nil)
		}
		if err == nil {
			return true
		}
		if errors.Is(err, nats.ErrDisconnected) {
			// The batch may or may not be stored: what can be sent again
			// without making a copy is settled one by one.
			c.settleLost(group)
			return true
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			// No answer (or none that can be read): the batch may or may
			// not be stored. Each sender hears the same, and Wait tells
			// them the outcome is unknown (a dedup id covers a resend).
			for _, p := range group {
				p.finish(nil, err)
			}
			return true
		}
		if apiErr.ErrorCode != batchErrDuplicate {
			c.b.log.Debug("atomic batch refused; publishing its messages one by one", "stream", c.stream, "messages", n, "err", err)
		}
		// Refused as a whole, nothing stored: one by one, each message
		// gets its own answer (a duplicate, a refusal).
	} else if c.onGroup != nil {
		c.onGroup(n, false)
	}
	c.commitEach(group)
	return true
}

// commitAtomic stores group as one atomic batch: every message but the
// last is published without a reply (the server answers only the
// commit), the last carries the commit and waits for the batch's single
// acknowledgement, sent after the fsync that covers all of them.
func (c *committer) commitAtomic(group []*Pending) error {
	id := nuid.Next()
	last := len(group) - 1
	batched := func(i int) *nats.Msg {
		p := group[i]
		m := &nats.Msg{Subject: p.msg.Subject, Data: p.msg.Data, Header: nats.Header{}}
		for k, v := range p.msg.Header {
			m.Header[k] = v
		}
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		return m
	}
	lost := c.b.lostSignal()
	for i := range last {
		if err := c.b.nc.PublishMsg(batched(i)); err != nil {
			return err
		}
	}
	commit := batched(last)
	commit.Header.Set("Nats-Batch-Commit", "1")
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	// A connection that drops takes the answer with it (a request is not
	// failed by a reconnect, it would wait out answerTimeout).
	ctx, cancelLost := untilLost(ctx, lost)
	defer cancelLost()
	reply, err := c.b.nc.RequestMsgWithContext(ctx, commit)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return jetstream.ErrNoStreamResponse
		}
		if cause := context.Cause(ctx); errors.Is(cause, nats.ErrDisconnected) {
			return cause
		}
		return err
	}
	var ack struct {
		Stream   string              `json:"stream"`
		Sequence uint64              `json:"seq"`
		Count    int                 `json:"count"`
		Error    *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return fmt.Errorf("atomic batch: unreadable answer %q: %v: %w", reply.Data, err, ErrOutcomeUnknown)
	}
	if ack.Error != nil {
		return ack.Error
	}
	if ack.Count != len(group) || ack.Sequence < uint64(last) {
		return fmt.Errorf("atomic batch: %d messages sent, the answer counts %d (sequence %d): %w", len(group), ack.Count, ack.Sequence, ErrOutcomeUnknown)
	}
	for j, q := range group {
		q.finish(&jetstream.PubAck{Stream: ack.Stream, Sequence: ack.Sequence - uint64(last-j)}, nil)
	}
	return nil
}

// commitEach publishes each message of group, pipelined, in order, and
// waits for their answers.
func (c *committer) commitEach(group []*Pending) {
	type sent struct {
		p *Pending
		f jetstream.PubAckFuture
	}
	futures := make([]sent, 0, len(group))
	for _, p := range group {
		f, err := c.b.js.PublishMsgAsync(p.msg)
		if err != nil {
			p.finish(nil, err)
			continue
		}
		futures = append(futures, sent{p, f})
	}
	timeout := time.NewTimer(answerTimeout)
	defer timeout.Stop()
	var lost []*Pending
	defer func() { c.settleLost(lost) }()
	for _, s := range futures {
		select {
		case ack := <-s.f.Ok():
			s.p.finish(ack, nil)
		case err := <-s.f.Err():
			if errors.Is(err, nats.ErrDisconnected) {
				lost = append(lost, s.p)
				continue
			}
			s.p.finish(nil, err)
		case <-timeout.C:
			// The store stopped answering: this and the rest have no
			// answer (the callers' own bound usually ends their wait
			// first).
			s.p.finish(nil, context.DeadlineExceeded)
			timeout.Reset(0)
		}
	}
}

// untilLost returns ctx, also cancelled (cause nats.ErrDisconnected) when
// lost is closed: the connection dropped, and an answer awaited on it
// will not come.
func untilLost(ctx context.Context, lost <-chan struct{}) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-lost:
			cancel(nats.ErrDisconnected)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// resendable says whether p's message can be published again without
// risking a copy: its dedup id makes a second publish a no-op, and a KV
// put writes the same value again.
func (p *Pending) resendable() bool {
	return p.msg.Header.Get(jetstream.MsgIDHeader) != "" || strings.HasPrefix(p.subject, "$KV.")
}

// settleLost gives the messages whose acknowledgements a reconnect lost a
// definite answer. When the connection drops, nats.go fails every pending
// asynchronous publish with ErrDisconnected, whether the server stored it
// before it went (the answer lost on the way) or will store it after (it
// waited in the reconnect buffer). Each is published again, in order, once
// the connection is back: its dedup id makes that a no-op when the first
// publish was stored (the answer then says duplicate, as it does for any
// id the stream holds), and a KV put is the same value written again. A
// stream message without a dedup id cannot be sent again without risking
// a copy; it, and whatever is not settled within answerTimeout, keeps
// ErrDisconnected, which Wait reports as an unknown outcome.
func (c *committer) settleLost(lost []*Pending) {
	if len(lost) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	for _, p := range lost {
		if !p.resendable() {
			p.finish(nil, nats.ErrDisconnected)
			continue
		}
		again := &nats.Msg{Subject: p.msg.Subject, Header: p.msg.Header, Data: p.msg.Data}
		ack, err := c.b.js.PublishMsg(ctx, again)
		if err != nil {
			// Not settled: the outcome of the first publish stays
			// unknown whatever this one's error says.
			err = fmt.Errorf("%w; sent again: %v", nats.ErrDisconnected, err)
		}
		p.finish(ack, err)
	}
}

func (p *Pending) finish(ack *jetstream.PubAck, err error) {
	p.ack, p.err = ack, err
	close(p.done)
}

// Start queues e for subject and returns at once; Wait tells how it went.
// The messages of one caller that Starts them in order are stored in that
// order. Errors found before anything is sent (encoding, a store known to
// refuse writes) are returned by Wait too.
func (b *Bus) Start(subject string, e *Envelope, msgID string) *Pending {
	data, err := Encode(e)
	if err != nil {
		return b.failed(subject, err)
	}
	m := nats.NewMsg(subject)
	m.Data = data
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	return b.start(m)
}

func (b *Bus) failed(subject string, err error) *Pending {
	p := &Pending{b: b, subject: subject, done: make(chan struct{}), refused: true}
	p.finish(nil, err)
	return p
}

func (b *Bus) start(m *nats.Msg) *Pending {
	if err := b.health.shortCircuit(); err != nil { // never trips for external NATS
		return b.failed(m.Subject, fmt.Errorf("bus: publish %s: %w", m.Subject, err))
	}
	p := &Pending{b: b, subject: m.Subject, msg: m}
	if c := b.committerFor(m.Subject); c != nil {
		p.done = make(chan struct{})
		c.submit(p)
	}
	return p
}

// Wait waits for the store's answer. duplicate is true when the message's
// dedup id was already stored (and nothing new was). An error wrapping
// ErrOutcomeUnknown means the message may have been stored all the same.
func (p *Pending) Wait(ctx context.Context) (duplicate bool, err error) {
	ack, err := p.wait(ctx)
	if err != nil {
		return false, err
	}
	return ack.Duplicate, nil
}

func (p *Pending) wait(ctx context.Context) (*jetstream.PubAck, error) {
	b := p.b
	if p.refused {
		return nil, p.err // refused before anything was sent
	}
	if err := ctx.Err(); err != nil {
		// The caller gave up before waiting: an error whatever the store
		// answers, so that it does not depend on how fast the store was.
		if p.done == nil {
			// Never sent (Wait would have sent it), so the outcome is known.
			return nil, fmt.Errorf("bus: publish %s: not sent: %w", p.subject, err)
		}
		return nil, fmt.Errorf("bus: publish %s: %w (%w)", p.subject, err, ErrOutcomeUnknown)
	}
	caller := ctx
	var (
		ack   *jetstream.PubAck
		err   error
		cause error // why the wait was cut short, if it was
		known bool
	)
	if p.done != nil {
		// An answer already in is taken as it is: a store fault recorded
		// since does not make it unknown.
		select {
		case <-p.done:
			ack, err, known = p.ack, p.err, true
		default:
		}
	}
	if !known {
		ack, err, cause = p.await(ctx)
	}
	// Health is kept per subject; a bucket's keys share one.
	subject := p.subject
	if rest, ok := strings.CutPrefix(subject, "$KV."); ok {
		bucket, _, _ := strings.Cut(rest, ".")
		subject = "$KV." + bucket
	}
	if err == nil {
		b.health.recordPublish(subject, nil)
		return ack, nil
	}
	if errors.Is(cause, ErrStoreRefusing) {
		return nil, fmt.Errorf("bus: publish %s: %w (%w): %v", p.subject, ErrStoreRefusing, ErrOutcomeUnknown, b.StoreFault())
	}
	// Write health is tracked for the embedded server, whose store is
	// local and keeps a write error (full or read-only disk) until the
	// process restarts. With external NATS a failure is usually a
	// reconnect in progress: publishes wait for it instead of being
	// refused at once.
	if b.emb != nil && caller.Err() == nil && storeFailed(err) {
		b.health.recordPublish(subject, err)
	}
	if errors.Is(err, ErrOutcomeUnknown) {
		return nil, fmt.Errorf("bus: publish %s: %w", p.subject, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrDisconnected) {
		// It left, and no answer came back (or the connection dropped
		// before it did: the server may have stored it).
		return nil, fmt.Errorf("bus: publish %s: %w (%w)", p.subject, err, ErrOutcomeUnknown)
	}
	return nil, fmt.Errorf("bus: publish %s: %w", p.subject, err)
}

// await waits for the store's answer within the bus's bounds (publishing
// first when no committer does); cause says why the wait was cut short.
func (p *Pending) await(ctx context.Context) (*jetstream.PubAck, error, error) {
	b := p.b
	// The bus's own bound on its store's answer, within the caller's: a
	// store that does not answer in time is failing; a caller that gives up
	// first says nothing about the store. External NATS keeps the caller's
	// (a reconnect there is waited for).
	if b.emb != nil {
		bound := answerTimeout
		if b.health.degraded() {
			bound = degradedTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bound)
		defer cancel()
	}
	// A store fault recorded while this publish waits means the store will
	// not answer it: give up then rather than at the timeout. Whether the
	// message was stored is unknown (its dedup id covers a resend).
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(b.health.faultedContext(), func() { cancel(ErrStoreRefusing) })()
	if p.done == nil {
		ack, err := p.publishNow(pctx)
		return ack, err, context.Cause(pctx)
	}
	select {
	case <-p.done:
		return p.ack, p.err, nil
	case <-pctx.Done():
		return nil, pctx.Err(), context.Cause(pctx)
	}
}

// publishNow publishes p's message itself (no committer: external NATS,
// or a subject no committer groups) and waits for its answer within ctx.
// A request is not failed by a reconnect: a connection that drops with the
// answer on its way would leave the caller waiting out its time, and the
// callers behind it in order after it. So the wait ends when the
// connection drops, and the message is published again once it is back:
// its dedup id makes that a no-op if the first was stored (a KV put is the
// same value again). One that cannot be sent again (a stream message
// without a dedup id) or is not settled within ctx has an unknown outcome
// (ErrDisconnected). "No responders" is not tried again: nothing was
// stored, and the caller hears so at once; in a cluster electing a stream
// leader a retry would keep the answers behind it in order waiting.
func (p *Pending) publishNow(ctx context.Context) (*jetstream.PubAck, error) {
	b := p.b
	resendable := p.resendable()
	lostOnce := false
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 250*time.Millisecond) {
		actx, cancel := untilLost(ctx, b.lostSignal())
		ack, err := b.js.PublishMsg(actx, p.msg)
		dropped := errors.Is(context.Cause(actx), nats.ErrDisconnected)
		cancel()
		switch {
		case err == nil:
			return ack, nil
		case dropped && !resendable:
			return nil, fmt.Errorf("%w (the message has no dedup id to send it again with)", nats.ErrDisconnected)
		case dropped:
			lostOnce = true
		case lostOnce:
			// Whatever this attempt says, the first one's outcome is
			// not known.
			return nil, fmt.Errorf("%w; sent again: %v", nats.ErrDisconnected, err)
		default:
			return nil, err
		}
		// A pause before sending again while nats.go reconnects (what is
		// sent meanwhile waits in its buffer).
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if lostOnce {
				return nil, fmt.Errorf("%w; not settled before the caller's time ran out", nats.ErrDisconnected)
			}
			return nil, err
		case <-t.C:
		}
	}
}

// Put stores value under key in bucket (one of this package's buckets),
// grouped with other writes to the bucket like Publish; it returns the
// revision.
func (b *Bus) Put(ctx context.Context, bucket, key string, value []byte) (uint64, error) {
	if !validKey(key) {
		return 0, fmt.Errorf("bus: put %s: %w", bucket, jetstream.ErrInvalidKey)
	}
	m := nats.NewMsg("$KV." + bucket + "." + key)
	m.Data = value
	ack, err := b.start(m).wait(ctx)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// validKey is jetstream's rule for KV keys.
var keyChars = regexp.MustCompile(`\A[-/_=\.a-zA-Z0-9]+\z`)

func validKey(k string) bool {
	return k != "" && k[0] != '.' && k[len(k)-1] != '.' && keyChars.MatchString(k)
}

// KeyValue is bucket, with Put (and PutString) grouped through the bus's
// committer: use it for writes made in volume, many at once.
func (b *Bus) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	kv, err := b.js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return groupedKV{KeyValue: kv, b: b, bucket: bucket}, nil
}

type groupedKV struct {
	jetstream.KeyValue
	b      *Bus
	bucket string
}

func (k groupedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return k.b.Put(ctx, k.bucket, key, value)
}

func (k groupedKV) PutString(ctx context.Context, key string, value string) (uint64, error) {
	return k.b.Put(ctx, k.bucket, key, []byte(value))
}

// committerFor is the committer of the stream subject belongs to, if any.
func (b *Bus) committerFor(subject string) *committer {
	if b.committers == nil {
		return nil
	}
	var stream string
	switch {
	case strings.HasPrefix(subject, "$KV."):
		bucket, _, _ := strings.Cut(subject[len("$KV."):], ".")
		stream = "KV_" + bucket
	case !strings.HasPrefix(subject, "xmppgw.") || strings.Count(subject, ".") != 2:
	case strings.HasSuffix(subject, ".out"):
		stream = StreamOut // xmppgw.<gw>.out
	case strings.HasSuffix(subject, ".in"):
		stream = StreamIn
	}
	return b.committers[stream]
}
