package gateways

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/backoff"
	"github.com/xmppgw/xmppgw/internal/metrics"
	"github.com/xmppgw/xmppgw/internal/recent"
)

// RunnerOptions configures a Runner.
type RunnerOptions struct {
	Name    string // gateway name
	Bus     *bus.Bus
	Adapter Adapter
	Info    Info
	Logger  *slog.Logger
	Metrics *metrics.Metrics

	// Workers is how many messages are handed to the adapter at once: the
	// gateway's max_concurrency, never exceeded. Messages
	// of one conversation (sender, contact) always go to the same worker, so
	// they reach the network in order. A message being retried after a
	// transient failure stays at the head of its conversation: the later
	// ones wait behind it (an edit never reaches the network before the
	// message it edits), while other conversations go on. Default 8.
	Workers int
	// MaxAttempts bounds tries for transient failures before the sender is
	// told. Default 8.
	MaxAttempts int
	// SendTimeout bounds one Send call. Default 30 s.
	SendTimeout time.Duration
	// AckWait is the consumer's ack wait (default AckWait); held messages
	// get a progress ack every third of it.
	AckWait time.Duration
	// RetryBase and RetryMax shape the exponential backoff between attempts.
	// Defaults 1 s and 1 min.
	RetryBase, RetryMax time.Duration

	// InboundOnly starts the adapter for what it receives (its webhooks hand
	// inbound traffic to the bus through the Host) but takes no outbound
	// work: other processes' runners consume the outbound stream. For a
	// webhook ingress process.
	InboundOnly bool
}

// ShutdownGrace bounds how long sends already in progress may take once Run's
// context is cancelled.
const ShutdownGrace = 4 * time.Second

// Runner joins one adapter to the bus: it consumes the gateway's outbound
// stream, calls Send, and publishes what the adapter delivers and reports.
type Runner struct {
	o   RunnerOptions
	log *slog.Logger
	// holding: sends wait for the store (see storeWritable).
	holding atomic.Bool
	// ack acknowledges a message the adapter accepted: synchronously, so
	// a store fault that arrived during the send is known once the store
	// has answered. Tests replace it to lose an acknowledgement.
	ack func(context.Context, jetstream.Msg) error
	// sent remembers the envelopes the adapter accepted: one delivered
	// again because its acknowledgement was lost (the store failed or
	// restarted in between) is acknowledged, not sent twice.
	sent *recent.IDs
	// ids is the id map (ids.go), opened by Run.
	ids *idMap
}

// NewRunner checks options and fills defaults. It starts nothing.
func NewRunner(o RunnerOptions) (*Runner, error) {
	if o.Name == "" || o.Bus == nil || o.Adapter == nil {
		return nil, errors.New("gateways: runner needs a name, a bus and an adapter")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = AckWait
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Minute
	}
	r := &Runner{o: o, log: o.Logger, sent: recent.New(recentSent)}
	r.ack = func(ctx context.Context, m jetstream.Msg) error { return m.DoubleAck(ctx) }
	return r, nil
}

// Run starts the adapter (retrying with backoff until ctx ends), then
// consumes until ctx is cancelled (with InboundOnly, it only waits). On
// return, in-flight sends have finished and the adapter is stopped.
func (r *Runner) Run(ctx context.Context) error {
	kv, err := r.o.Bus.KeyValue(ctx, bus.BucketIDs) // puts grouped
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("gateways: id map: %w", err)
	}
	r.ids = &idMap{kv: kv, gw: r.o.Name}
	host := &host{r: r}
	if err := r.startAdapter(ctx, host); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.o.Adapter.Stop(stopCtx); err != nil {
			r.log.Warn("adapter stop", "err", err)
		}
	}()

	if ctx.Err() != nil {
		return nil // cancelled while starting: a normal stop
	}
	if r.o.InboundOnly {
		r.log.Info("adapter ready for inbound traffic only", "adapter", r.o.Info.ID)
		<-ctx.Done()
		return nil
	}
	cc := OutboundConsumer(r.o.Name, r.o.Workers)
	cc.AckWait = r.o.AckWait
	cons, err := r.o.Bus.Consumer(ctx, cc)
	if err != nil {
		if ctx.Err() != nil {
			return nil // cancelled while starting: a normal stop
		}
		return err
	}

	// Work already taken (queued or buffered) is finished at shutdown, in
	// order, within ShutdownGrace: it runs on a context that outlives ctx.
	// Handing it back instead would reorder it, because JetStream does not
	// redeliver nak'd messages in sequence order.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	// The grace period starts when ctx ends, even if the pull loop is still
	// handing over its last round.
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(ShutdownGrace, cancelWork) })
	defer stopGrace()
	// Messages taken and not yet settled are kept alive with progress
	// acks, so the consumer's short AckWait only expires for the messages
	// of a process that died.
	stopEphemeral, err := r.subscribeEphemeral(workCtx)
	if err != nil {
		return err
	}
	defer stopEphemeral()
	held := newHeldSet()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		held.keepAlive(r.o.AckWait/3, stopProgress)
	}()
	defer func() { close(stopProgress); <-progressDone }()

	// One queue per worker, unbounded: the pull loop never waits for a
	// worker, so every message fetched is in held (kept alive) at once. A
	// bounded queue would leave the rest of a fetched batch waiting outside
	// held while one conversation's worker is slow, and JetStream would
	// redeliver them after AckWait. The consumer's MaxAckPending bounds
	// what all queues hold together.
	queues := make([]*fifo, r.o.Workers)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = newFIFO()
		wg.Add(1)
		go func(q *fifo) {
			defer wg.Done()
			r.work(workCtx, q, held)
		}(queues[i])
	}
	// Messages another runner took and has not settled go before newer
	// ones (takeover.go).
	push := func(j *job) { queues[r.queueFor(j.env)].push(j) }
	tk := newTakeover(ctx, r.o.Bus.JetStream(), cons, r.log, push)
	tkDone := make(chan struct{})
	go func() {
		defer close(tkDone)
		tk.wait(ctx, takeoverMax(r.o.AckWait))
	}()
	// The same hold after the bus connection dropped: what was on its way
	// to this runner was lost with it (takeover.suspend). The first
	// message taken after a reconnect begins it, before it is itself
	// taken; until a message comes, no newer one can pass the lost ones.
	conn := r.o.Bus.Conn()
	reconnects := conn.Stats().Reconnects
	r.log.Info("adapter ready", "adapter", r.o.Info.ID)
	bus.Pull(ctx, cons, r.o.Workers*32, time.Second, func(msg jetstream.Msg) {
		j := &job{msg: msg, stopping: ctx.Done()}
		j.env, j.err = bus.Decode(msg.Data())
		if workCtx.Err() != nil {
			_ = j.msg.Nak() // past the grace period: redelivered to whoever runs next
			return
		}
		held.add(msg)
		if n := conn.Stats().Reconnects; n != reconnects {
			reconnects = n
			tk.suspend()
			mine := held.claims()
			tk.busy.Go(func() { tk.rearm(ctx, mine, takeoverMax(r.o.AckWait)) })
		}
		tk.take(j)
	})
	<-tkDone
	tk.busy.Wait()
	// Stopped taking new work: the workers finish what they hold, within the
	// grace period, so shutdown stays quick even with a slow network.
	for _, q := range queues {
		q.close()
	}
	wg.Wait()
	return nil
}

func (r *Runner) startAdapter(ctx context.Context, h Host) error {
	delay := r.o.RetryBase
	var last string
	for {
		err := r.o.Adapter.Start(ctx, h)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if msg := err.Error(); msg != last {
			r.log.Error("adapter start failed; retrying", "err", err)
			last = msg
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = r.o.Adapter.Stop(stopCtx)
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff.Jitter(delay)):
		}
		delay = min(delay*2, r.o.RetryMax)
	}
}

// heldSet is the messages a runner has taken and not yet settled, and the
// stream sequences of those it settled lately (their acknowledgements may
// have been lost with a connection: takeover.rearm does not wait for them).
type heldSet struct {
	mu      sync.Mutex
	m       map[jetstream.Msg]struct{}
	settled *recent.IDs
}

// recentSettled is how many settled sequences a runner remembers: far more
// than MaxAckPending, what can be unacknowledged when a connection drops.
const recentSettled = 8192

func newHeldSet() *heldSet {
	return &heldSet{m: map[jetstream.Msg]struct{}{}, settled: recent.New(recentSettled)}
}

func (h *heldSet) add(m jetstream.Msg) {
	h.mu.Lock()
	h.m[m] = struct{}{}
	h.mu.Unlock()
}

func (h *heldSet) remove(m jetstream.Msg) {
	h.mu.Lock()
	delete(h.m, m)
	h.mu.Unlock()
	if md, err := m.Metadata(); err == nil {
		h.settled.Add(strconv.FormatUint(md.Sequence.Stream, 10))
	}
}

// claims returns whether this runner holds the message at a stream
// sequence (as of now) or settled it lately.
func (h *heldSet) claims() func(seq uint64) bool {
	h.mu.Lock()
	seqs := make(map[uint64]struct{}, len(h.m))
	for m := range h.m {
		if md, err := m.Metadata(); err == nil {
			seqs[md.Sequence.Stream] = struct{}{}
		}
	}
	h.mu.Unlock()
	return func(seq uint64) bool {
		if _, ok := seqs[seq]; ok {
			return true
		}
		return h.settled.Has(strconv.FormatUint(seq, 10))
	}
}

// keepAlive sends a progress ack for every held message each interval
// until stop is closed.
func (h *heldSet) keepAlive(interval time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		h.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(h.m))
		for m := range h.m {
			msgs = append(msgs, m)
		}
		h.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}

// work runs one worker's queue until it is closed and empty. A message
// that failed transiently is retried after its backoff by the worker
// itself, not handed back to JetStream (which would let the later messages
// of its conversation pass it, and redeliver out of order): its
// conversation is parked, and the messages of that conversation that come
// meanwhile wait behind it, in order; other conversations go on. When the
// retried message is settled they are released, ahead of the queue. At
// shutdown everything waiting is handed back at once.
func (r *Runner) work(ctx context.Context, q *fifo, held *heldSet) {
	type retry struct {
		head  *job
		timer *time.Timer
	}
	var (
		parked   = map[string][]*job{} // conversation → jobs behind its retry
		retrying = map[string]*retry{}
		mu       sync.Mutex // guards exited against the timers
		exited   bool
	)
	defer func() {
		mu.Lock()
		exited = true
		mu.Unlock()
		for _, rt := range retrying {
			rt.timer.Stop()
			_ = rt.head.msg.Nak()
			held.remove(rt.head.msg)
		}
		for _, js := range parked {
			for _, j := range js {
				_ = j.msg.Nak()
				held.remove(j.msg)
			}
		}
		for { // re-injected by a timer as the loop ended
			j, ok := q.tryPop()
			if !ok {
				return
			}
			_ = j.msg.Nak()
			held.remove(j.msg)
		}
	}()
	for {
		j, ok := q.pop()
		if !ok {
			return
		}
		if ctx.Err() != nil {
			// Past the grace period: hand it back now so the next
			// process need not wait for AckWait.
			_ = j.msg.Nak()
			held.remove(j.msg)
			continue
		}
		conv := conversationOf(j.env)
		if _, waiting := retrying[conv]; waiting && conv != "" && !j.retry {
			parked[conv] = append(parked[conv], j)
			continue
		}
		delay := r.handle(ctx, j)
		if delay > 0 && conv != "" {
			j.retry = true
			j.tries++
			rt := &retry{head: j}
			rt.timer = time.AfterFunc(delay, func() {
				mu.Lock()
				defer mu.Unlock()
				if !exited {
					q.pushFront(j)
				}
			})
			retrying[conv] = rt
			continue
		}
		if delay > 0 {
			_ = j.msg.NakWithDelay(delay) // nothing to keep in order
		}
		held.remove(j.msg)
		if j.retry {
			delete(retrying, conv)
			q.pushFront(parked[conv]...)
			delete(parked, conv)
		}
	}
}

// conversationOf is the key of e's conversation; "" for an envelope that
// did not decode.
func conversationOf(e *bus.Envelope) string {
	if e == nil {
		return ""
	}
	return BareJID(e.User) + "\x00" + e.Contact
}

// fifo is an unbounded queue with one consumer.
type fifo struct {
	mu     sync.Mutex
	items  []*job
	closed bool
	wake   chan struct{} // capacity 1: "something changed"
}

func newFIFO() *fifo { return &fifo{wake: make(chan struct{}, 1)} }

func (q *fifo) push(j *job) {
	q.mu.Lock()
	q.items = append(q.items, j)
	q.mu.Unlock()
	q.signal()
}

// pushFront puts js, in order, ahead of everything queued.
func (q *fifo) pushFront(js ...*job) {
	if len(js) == 0 {
		return
	}
	q.mu.Lock()
	q.items = append(slices.Clone(js), q.items...)
	q.mu.Unlock()
	q.signal()
}

// tryPop takes the next job without waiting.
func (q *fifo) tryPop() (*job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil, false
	}
	j := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	return j, true
}

func (q *fifo) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *fifo) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop waits for the next job; false once the queue is closed and empty.
func (q *fifo) pop() (*job, bool) {
	for {
		if j, ok := q.tryPop(); ok {
			return j, true
		}
		q.mu.Lock()
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		<-q.wake
	}
}

type job struct {
	msg jetstream.Msg
	env *bus.Envelope
	err error // from decoding
	// stopping is closed when shutdown begins (Run's context ends).
	stopping <-chan struct{}
	// retry: the job is being retried at the head of its conversation;
	// tries counts the retries done in this process.
	retry bool
	tries int
}

// queueFor picks the worker for a message's conversation. An envelope that
// did not decode goes to worker 0, which drops it with a log line.
func (r *Runner) queueFor(e *bus.Envelope) int {
	if e == nil {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(BareJID(e.User)))
	h.Write([]byte{0})
	h.Write([]byte(e.Contact))
	return int(h.Sum32() % uint32(r.o.Workers))
}

// handle sends one outbound envelope and settles it: ack on success or after
// the sender was told of a failure. After a transient failure it returns
// the backoff before the next attempt, leaving the message unsettled.
func (r *Runner) handle(ctx context.Context, j *job) (retryAfter time.Duration) {
	msg, e, err := j.msg, j.env, j.err
	if errors.Is(err, bus.ErrUnknownKind) && e != nil {
		// From a newer component (a rolling upgrade): its sender is told,
		// not left waiting.
		r.fail(ctx, msg, e, Reject(FeatureNotImplemented,
			"%s's adapter does not know %q events yet (it is older than the gateway's component)", r.network(), e.Kind))
		return
	}
	if err != nil {
		// Nobody can be told (the envelope does not say who sent it); keeping
		// it would block nothing but would be redelivered forever.
		r.log.Error("dropping undecodable envelope from the bus", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	if !r.storeWritable(ctx, j.stopping, e) {
		_ = msg.Nak() // shutting down: whoever runs next sends it
		return
	}
	if r.sent.Has(e.ID) {
		// Sent already; its acknowledgement did not survive.
		r.log.Info("outbound envelope delivered again by the bus; already sent, acknowledging it", "id", e.ID)
		r.o.Metrics.Message(r.o.Name, metrics.Out, metrics.Duplicate)
		ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := r.ack(ackCtx, msg); err != nil {
			r.log.Warn("ack of an envelope sent before", "id", e.ID, "err", err)
		}
		cancel()
		return
	}
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	attempt += j.tries
	var (
		send func(context.Context) error
		// recorded: the id map's write of what was sent, which runs
		// beside the acknowledgement (two stores' fsyncs in parallel, not
		// one after the other).
		recorded <-chan error
	)
	switch e.Kind {
	case bus.KindMessage:
		out, ref := r.outbound(e, attempt)
		if ref != nil {
			r.fail(ctx, msg, e, ref)
			return
		}
		send = func(ctx context.Context) error {
			var err error
			recorded, err = r.sendMessage(ctx, e, out)
			return err
		}
	case bus.KindReaction:
		send = func(ctx context.Context) error { return r.react(ctx, e) }
	case bus.KindPush:
		pu, ok := r.o.Adapter.(Pusher)
		if !ok {
			r.fail(ctx, msg, e, Reject(FeatureNotImplemented, "%s's adapter does not deliver push notifications", r.network()))
			return
		}
		p := Push{User: e.User, Node: e.Push.Node, Count: e.Push.Count, Sender: e.Push.Sender, Body: e.Push.Body, Key: e.ID, Attempt: attempt}
		send = func(ctx context.Context) error { return pu.Push(ctx, p) }
	case bus.KindRetraction:
		send = func(ctx context.Context) error { return r.retract(ctx, e) }
	case bus.KindPresence:
		ra, ok := r.o.Adapter.(RoomAdapter)
		if !ok || !r.o.Info.Capabilities.Rooms {
			r.fail(ctx, msg, e, Reject(FeatureNotImplemented, "this network has no rooms"))
			return
		}
		p := e.Presence
		if p.Type == bus.PresenceError {
			r.log.Warn("presence error on outbound subject", "id", e.ID)
			_ = msg.Term()
			return
		}
		if p.Type == bus.PresenceUnavailable {
			l := Leave{User: e.User, Room: e.Contact, Nick: p.Nick, Status: p.Status}
			send = func(ctx context.Context) error { return ra.Leave(ctx, l) }
		} else {
			j := Join{User: e.User, Room: e.Contact, Nick: p.Nick, Attempt: attempt}
			send = func(ctx context.Context) error { return ra.Join(ctx, j) }
		}
	case bus.KindError:
		// The component's answer to an event of ours it could not take
		// (bus.ErrUnknownKind on its side): nothing to send.
		r.log.Warn("the component refused an event this adapter published", "ref", e.Error.Ref, "condition", e.Error.Condition, "text", e.Error.Text)
		_ = msg.Ack()
		return
	default:
		r.log.Warn("unexpected envelope kind on outbound subject", "kind", e.Kind, "id", e.ID)
		_ = msg.Term()
		return
	}

	sendCtx, cancel := context.WithTimeout(ctx, r.o.SendTimeout)
	err = send(sendCtx)
	cancel()
	switch {
	case err == nil:
		r.o.Metrics.Message(r.o.Name, metrics.Out, metrics.Sent)
		r.sent.Add(e.ID)
		ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := r.ack(ackCtx, msg); err != nil {
			r.log.Warn("ack after send", "id", e.ID, "err", err)
		}
		cancel()
		if recorded != nil {
			if err := <-recorded; err != nil {
				// Sent, so not retried: a later reference to it will be
				// refused as unknown.
				r.log.Warn("message sent, but its network ids were not recorded; corrections and reactions of it will be refused", "id", e.ID, "err", err)
			}
		}
		if fault := r.o.Bus.StoreFault(); fault != nil {
			r.log.Warn("message sent as the store failed; its acknowledgement may not be recorded, so it may be handed to the adapter again after the repair",
				"id", e.ID, "err", fault)
		}
	case ctx.Err() != nil:
		// Cut off at the end of the shutdown grace: leave it for redelivery
		// rather than report a failure that did not happen.
		_ = msg.Nak()
	case errors.Is(err, ErrPermanent) || errors.Is(err, ErrUnsupported):
		r.fail(ctx, msg, e, err)
	case attempt >= r.o.MaxAttempts:
		r.fail(ctx, msg, e, &Error{
			Condition: RemoteServerTimeout,
			Text:      fmt.Sprintf("the network did not accept the message after %d attempts", attempt),
			Err:       err,
		})
	default:
		delay := backoff.Delay(r.o.RetryBase, r.o.RetryMax, attempt)
		r.log.Warn("send failed; will retry", "id", e.ID, "attempt", attempt, "retry_in", delay.Round(time.Millisecond), "err", err)
		r.o.Metrics.Message(r.o.Name, metrics.Out, metrics.Retried)
		return delay
	}
	return 0
}

// storeWritable waits while the bus's store cannot write (a failed disk):
// the acknowledgement of a message sent now could not be recorded, and the
// message would be sent again once the store is repaired — a duplicate for
// every adapter without its own record of what it sent. The message stays
// taken meanwhile (progress acks keep it), so order and attempt counts are
// kept. It reports false when shutdown begins first.
func (r *Runner) storeWritable(ctx context.Context, stopping <-chan struct{}, e *bus.Envelope) bool {
	err := r.o.Bus.StoreFault()
	if err == nil {
		if r.holding.CompareAndSwap(true, false) {
			r.log.Info("the store writes again; sending the held messages")
		}
		return true
	}
	if r.holding.CompareAndSwap(false, true) {
		r.log.Warn("holding outbound messages until the store can record their acknowledgements", "id", e.ID, "err", err)
	}
	tick := time.NewTicker(250 * time.Millisecond) // StoreFault is a map lookup
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-stopping:
			return false
		case <-tick.C:
		}
		if r.o.Bus.StoreFault() == nil {
			if r.holding.CompareAndSwap(true, false) {
				r.log.Info("the store writes again; sending the held messages")
			}
			return true
		}
	}
}

// recentSent is how many sent envelope ids a runner remembers: 1.5 MB
// when full (measured, nuid ids). A message whose acknowledgement was lost
// comes back once the ack wait (15 s) has passed, or after the store's
// repair; while the store cannot write nothing is sent (storeWritable), so
// what pushes its id out is what is sent in between: 16384 is many times
// what the consumer lets be in flight (64 per worker), and over two
// minutes at 100 sends a second. No time expiry: a repair that takes
// hours sends nothing meanwhile, and forgetting by age would forget
// exactly those ids. Not in KV: one more store write (with fsync) per
// message, and a gap still between the send and that write.
const recentSent = 16384

// outbound turns a message envelope into what the adapter is given, honouring
// the adapter's declared capabilities: a network without media or rooms is
// never handed them.
func (r *Runner) outbound(e *bus.Envelope, attempt int) (Outbound, error) {
	out := Outbound{
		ID:        e.Message.ID,
		From:      e.User,
		To:        e.Contact,
		Body:      e.Message.Body,
		Thread:    e.Message.Thread,
		Receipt:   e.Message.Receipt,
		Attempt:   attempt,
		Key:       e.ID,
		Groupchat: e.Message.Type == bus.TypeGroupchat,
		Subject:   e.Message.Subject,
		OriginID:  e.Message.OriginID,
	}
	if rt := e.Message.ReplyTo; rt != nil {
		out.ReplyTo = &Ref{ID: rt.ID, Text: rt.Quote}
	}
	if out.To == "" {
		return out, Reject(BadRequest, "the message has no recipient")
	}
	if out.Groupchat && !r.o.Info.Capabilities.Rooms {
		return out, Reject(FeatureNotImplemented, "this network has no rooms")
	}
	for _, m := range e.Message.Media {
		out.Media = append(out.Media, Media{URL: m.URL, Type: m.Type, Size: m.Size})
	}
	if len(out.Media) > 0 && !r.o.Info.Capabilities.Media {
		// The body of an XEP-0066 message carries the URL too; a network
		// without media gets the text only.
		out.Media = nil
		if strings.TrimSpace(out.Body) == "" {
			return out, Reject(FeatureNotImplemented, "this network cannot carry attachments")
		}
	}
	return out, nil
}

// fail tells the sender and then acks. If the error cannot be stored the
// message is left for redelivery: the sender must hear about it either way.
func (r *Runner) fail(ctx context.Context, msg jetstream.Msg, e *bus.Envelope, err error) {
	if e.Kind == bus.KindPush {
		// The server that published it had its answer, and the device's
		// owner is not the one to tell (docs/bus.md).
		r.log.Warn("push notification not delivered", "id", e.ID, "node", e.Contact, "err", err)
		r.o.Metrics.Message(r.o.Name, metrics.Out, metrics.Failed)
		_ = msg.Ack()
		return
	}
	var ge *Error
	if !errors.As(err, &ge) {
		ge = &Error{Condition: UndefinedCondition, Text: err.Error()}
		if errors.Is(err, ErrUnsupported) {
			ge.Condition = FeatureNotImplemented
		}
	}
	text := ge.Text
	if text == "" && ge.Err != nil {
		text = ge.Err.Error()
	}
	be := &bus.Error{
		Condition: string(ge.Condition),
		Type:      errorType(ge.Condition),
		Text:      text,
		Code:      ge.Code,
	}
	var env *bus.Envelope
	if e.Kind == bus.KindPresence {
		// A refused join is answered with a presence error from the room.
		env = r.envelope(bus.KindPresence, e.User, e.Contact)
		env.Presence = &bus.Presence{Type: bus.PresenceError, Nick: e.Presence.Nick, Error: be}
	} else {
		env = r.envelope(bus.KindError, e.User, e.Contact)
		be.Ref = stanzaRef(e)
		env.Error = be
	}
	if _, perr := r.o.Bus.Publish(ctx, bus.InSubject(r.o.Name), env, "err:"+e.ID); perr != nil {
		r.log.Error("could not store error for sender; will retry", "id", e.ID, "err", perr)
		_ = msg.NakWithDelay(r.o.RetryBase)
		return
	}
	r.log.Info("message refused", "id", e.ID, "kind", e.Kind, "condition", ge.Condition, "err", err)
	r.o.Metrics.Message(r.o.Name, metrics.Out, metrics.Failed)
	_ = msg.Ack()
}

// stanzaRef is the stanza id of what the user sent, which an error
// answers; "" when the envelope does not say.
func stanzaRef(e *bus.Envelope) string {
	switch {
	case e.Message != nil:
		return e.Message.ID
	case e.Reaction != nil:
		return e.Reaction.StanzaID
	case e.Retraction != nil:
		return e.Retraction.StanzaID
	}
	return ""
}

// errorType is RFC 6120's suggested type for each condition.
func errorType(c Condition) string {
	switch c {
	case BadRequest, JIDMalformed, NotAcceptable:
		return "modify"
	case Forbidden, RegistrationRequired:
		return "auth"
	case RecipientUnavailable, ResourceConstraint, RemoteServerTimeout:
		return "wait"
	default:
		return "cancel"
	}
}

type host struct{ r *Runner }

// envelope starts an envelope of this gateway.
func (r *Runner) envelope(kind bus.Kind, user, contact string) *bus.Envelope {
	return &bus.Envelope{Kind: kind, ID: nuid.Next(), Gateway: r.o.Name, Time: time.Now().UTC(), User: user, Contact: contact}
}

func (h *host) Deliver(ctx context.Context, m Inbound) error {
	r := h.r
	env := r.envelope(bus.KindMessage, m.To, m.From)
	env.Message = &bus.Message{ID: m.ProviderID, Body: m.Body, Thread: m.Thread, Nick: m.Nick, Subject: m.Subject, OriginID: m.OriginID, Invite: m.Invite}
	if !m.Delay.IsZero() {
		d := m.Delay.UTC()
		env.Message.Delay = &d
	}
	var err error
	if env.Message.Replace, err = h.xmppID(ctx, m.To, m.From, m.Replace); err != nil {
		return err
	}
	if m.ReplyTo != "" {
		id, err := h.xmppID(ctx, m.To, m.From, m.ReplyTo)
		if err != nil {
			return err
		}
		env.Message.ReplyTo = &bus.ReplyTo{ID: id, Quote: m.ReplyQuote}
	}
	if m.Groupchat {
		env.Message.Type = bus.TypeGroupchat
	}
	for _, md := range m.Media {
		env.Message.Media = append(env.Message.Media, bus.Media{URL: md.URL, Type: md.Type, Size: md.Size})
	}
	msgID := ""
	if m.ProviderID != "" {
		msgID = "in:" + m.ProviderID
	}
	dup, err := r.o.Bus.Publish(ctx, bus.InSubject(r.o.Name), env, msgID)
	if err != nil {
		return err
	}
	if dup {
		r.o.Metrics.Message(r.o.Name, metrics.In, metrics.Duplicate)
	} else {
		r.o.Metrics.Message(r.o.Name, metrics.In, metrics.Queued)
	}
	return nil
}

func (h *host) Report(ctx context.Context, s Status) error {
	r := h.r
	env := r.envelope(bus.KindStatus, s.User, s.Contact)
	env.Status = &bus.Status{Ref: s.Ref, State: s.State, Code: s.Code, Reason: s.Reason}
	_, err := r.o.Bus.Publish(ctx, bus.InSubject(r.o.Name), env, StatusMsgID(r.o.Name, s))
	return err
}

// StatusMsgID is the Nats-Msg-Id of a status envelope: a report repeats
// only for the same bus message (Status.Key) and state. Stanza ids repeat
// across users, and across a user's resends; the dedup window spans every
// gateway's inbound stream, hence the gateway's name. An adapter that
// kept no key falls back to the sender's JID with the stanza id.
func StatusMsgID(gateway string, s Status) string {
	key := s.Key
	if key == "" {
		key = s.User + "|" + s.Ref
	}
	return "st:" + gateway + ":" + key + ":" + s.State
}

func (h *host) Occupant(ctx context.Context, o Occupant) error {
	r := h.r
	env := r.envelope(bus.KindPresence, o.User, o.Room)
	env.Presence = &bus.Presence{
		Nick: o.Nick, NewNick: o.NewNick, Self: o.Self,
		Role: o.Role, Affiliation: o.Affiliation, Status: o.Status,
	}
	if o.Left {
		env.Presence.Type = bus.PresenceUnavailable
	}
	_, err := r.o.Bus.Publish(ctx, bus.InSubject(r.o.Name), env, "")
	return err
}

// BareJID strips the resource from a JID string.
func BareJID(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}
