package component

import (
	"context"
	"sync"
	"time"

	"mellium.im/xmpp"
)

// The stream reader does not wait for the store (issue #16). A message
// read from the stream is handed to the bus at once (bus.Start: queued for
// the next group commit) and its answer (nothing, or an error stanza for
// the sender) is left to the stream's pipeline, which waits for each
// store answer in the order the messages were read. So the reader keeps up
// with the server while the store makes whole groups durable with one
// fsync, and what sits unread in the component socket when the process is
// killed (XEP-0114 has no acknowledgements: that is lost) stays small.

// pipelineDepth bounds the messages read and not yet answered: beyond it
// the reader waits, and TCP holds the server back.
const pipelineDepth = 1024

// pipelineDrain bounds the wait for the answers owed before the stream
// closes: every message in the pipeline has its own store deadline
// (storeContext, from when it was read), so this is a backstop.
const pipelineDrain = 10 * time.Second

// pipeline answers, in order, the messages of one stream.
type pipeline struct {
	w       encoder
	work    chan func(encoder)
	pending sync.WaitGroup
	once    sync.Once
	done    chan struct{}
}

func newPipeline(sess *xmpp.Session) *pipeline {
	p := &pipeline{w: sessionEncoder{sess}, work: make(chan func(encoder), pipelineDepth), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *pipeline) run() {
	defer close(p.done)
	for f := range p.work {
		f(p.w)
		p.pending.Done()
	}
}

// add queues f; it blocks while the pipeline is full.
func (p *pipeline) add(f func(encoder)) {
	p.pending.Add(1)
	p.work <- f
}

// wait waits, at most timeout, until everything queued is answered.
func (p *pipeline) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { p.pending.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// close answers what is queued (each message has its own deadline) and
// ends the pipeline; the reader must have stopped adding.
func (p *pipeline) close() {
	p.once.Do(func() { close(p.work) })
	<-p.done
}

type pipelineKey struct{}

func withPipeline(ctx context.Context, p *pipeline) context.Context {
	return context.WithValue(ctx, pipelineKey{}, p)
}

// later runs answer in the stream's pipeline, after the answers of every
// message read before; on the reader, with w, when the stream has none.
func later(ctx context.Context, w encoder, answer func(w encoder)) {
	if p, ok := ctx.Value(pipelineKey{}).(*pipeline); ok {
		p.add(answer)
		return
	}
	answer(w)
}

// drainingLocker takes the stream's between lock, then waits for the
// pipeline's answers, so that they go out before our </stream:stream>.
type drainingLocker struct {
	between *sync.Mutex
	pipe    *pipeline
	log     func(msg string, args ...any)
}

func (d drainingLocker) Lock() {
	d.between.Lock()
	if !d.pipe.wait(pipelineDrain) {
		d.log("closing the stream with messages still waiting for the store; each is answered or logged when its store deadline passes")
	}
}

func (d drainingLocker) Unlock() { d.between.Unlock() }
