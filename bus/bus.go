package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names. Both are work queues: a message leaves the stream once the
// consumer that owns its subject acknowledges it.
const (
	StreamOut = "XMPPGW_OUT" // component → adapters (XMPP → network)
	StreamIn  = "XMPPGW_IN"  // adapters → component (network → XMPP)
)

// KV buckets created at start.
const (
	// BucketRegistrations holds per-user gateway state (registrations, number
	// assignments). Kept forever.
	BucketRegistrations = "xmppgw_registrations"
	// BucketMessages maps network message ids to XMPP stanza ids (receipts,
	// errors that arrive later). Entries expire.
	BucketMessages = "xmppgw_messages"
	// BucketIDs maps the XMPP ids of the messages users sent to the
	// network's ids, per conversation, and keeps the reaction sets, so
	// that corrections, replies, reactions, retractions and markers can be
	// translated both ways. Entries expire after Options.IDsTTL.
	BucketIDs = "xmppgw_ids"
)

// DefaultIDsTTL is how long the id map keeps an entry: a correction,
// reaction or retraction of an older message is refused as too old.
const DefaultIDsTTL = 30 * 24 * time.Hour

// OutSubject is where the component publishes messages for gateway gw.
func OutSubject(gw string) string { return "xmppgw." + gw + ".out" }

// InSubject is where adapters publish events for the users of gateway gw.
func InSubject(gw string) string { return "xmppgw." + gw + ".in" }

// EphemeralOutSubject and EphemeralInSubject carry the ephemeral events
// (typing, markers) of gateway gw: plain NATS publish and subscribe, outside
// JetStream. A typing indicator is worth nothing a few seconds later, so
// it costs no store write (no fsync), is never retried and never queued
// behind the durable work; when no one listens it is gone, which is what
// a hint may do. Subscribers use queue groups (the consumers' names) so
// that one process of each side takes each event.
func EphemeralOutSubject(gw string) string { return "xmppgw." + gw + ".ephemeral.out" }
func EphemeralInSubject(gw string) string  { return "xmppgw." + gw + ".ephemeral.in" }

// Consumer names: one durable per gateway and direction, shared by every
// process doing that role so work is split rather than duplicated.
func AdapterConsumer(gw string) string   { return "adapter_" + gw }
func ComponentConsumer(gw string) string { return "component_" + gw }

// Options configures Open. The zero value is not usable: set DataDir (embedded)
// or URL (external).
type Options struct {
	// URL, when set, connects to external NATS servers (comma-separated).
	URL             string
	CredentialsFile string
	TLSCAFile       string
	TLSCertFile     string
	TLSKeyFile      string

	// DataDir is where the embedded server keeps JetStream data.
	DataDir string
	// Listen opens a TCP client port on the embedded server (host:port) so that
	// out-of-process adapters can connect. Empty: no listener at all.
	Listen string

	// Replicas for streams and buckets; must be 1 for the embedded server.
	Replicas int
	// SyncAlways: the embedded server fsyncs each write before acknowledging
	// it. Without it, writes reach the disk every 2 minutes: a process crash
	// loses nothing (the OS has the data), a power loss may.
	SyncAlways bool
	// IDsTTL is the expiry of the id map (BucketIDs); default
	// DefaultIDsTTL.
	IDsTTL time.Duration
	// Name identifies this process to the NATS servers.
	Name   string
	Logger *slog.Logger
}

// Bus is a ready connection with its streams and buckets in place.
type Bus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	emb     *embedded // nil when external
	log     *slog.Logger
	closer  sync.Once
	stop    chan struct{} // closed by Close: ends the store watcher
	watcher sync.WaitGroup

	health *health // whether the embedded store takes writes
	idsTTL time.Duration
	// committers group the writes to each stream that takes atomic
	// batches (group.go); nil with external NATS.
	committers map[string]*committer

	// lost is closed when the connection to the embedded server drops,
	// and replaced: what waits for an answer on it knows the answer may
	// never come.
	lostMu sync.Mutex
	lost   chan struct{}
}

func (b *Bus) connectionLost() {
	b.lostMu.Lock()
	defer b.lostMu.Unlock()
	close(b.lost)
	b.lost = make(chan struct{})
}

// lostSignal is closed at the connection's next drop.
func (b *Bus) lostSignal() <-chan struct{} {
	b.lostMu.Lock()
	defer b.lostMu.Unlock()
	return b.lost
}

// IDsTTL is the expiry of the id map (BucketIDs).
func (b *Bus) IDsTTL() time.Duration { return b.idsTTL }

// StoreFault returns the write error the embedded store reports, or nil.
// While it is not nil nothing can be recorded durably — not even an
// acknowledgement: a message delivered now would come back after the
// store is repaired. It is nil for external NATS, whose servers keep their
// own health.
func (b *Bus) StoreFault() error { return b.health.fault() }

// InjectStoreFault makes the bus act as if its embedded store had
// reported a write error on stream: for tests and drills of what holds
// back while the disk is broken. As with a real fault, the store watcher
// restarts the embedded server once the fault is stuckAfter old and the
// data directory takes writes, which clears it. No effect with external
// NATS.
func (b *Bus) InjectStoreFault(stream string, err error) {
	if b.emb != nil {
		b.health.markFault(stream, err)
	}
}

// Open starts or connects to NATS and creates or updates the streams and KV
// buckets. It returns once the bus can store messages.
func Open(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Replicas < 1 {
		o.Replicas = 1
	}
	if o.Name == "" {
		o.Name = "xmppgw"
	}
	b := &Bus{log: o.Logger, health: newHealth(o.Logger)}
	var err error
	if o.URL == "" {
		err = b.startEmbedded(o)
	} else {
		err = b.connect(o)
	}
	if err != nil {
		b.shutdown()
		return nil, err
	}
	b.js, err = jetstream.New(b.nc)
	if err != nil {
		b.shutdown()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	if o.IDsTTL <= 0 {
		o.IDsTTL = DefaultIDsTTL
	}
	b.idsTTL = o.IDsTTL
	if err := b.provision(ctx, o.Replicas, o.IDsTTL); err != nil {
		b.shutdown()
		return nil, err
	}
	return b, nil
}

func (b *Bus) startEmbedded(o Options) error {
	if o.DataDir == "" {
		return errors.New("bus: embedded server needs a data directory (bus.data_dir)")
	}
	if o.Replicas != 1 {
		return fmt.Errorf("bus: embedded server is a single node; replicas must be 1, not %d", o.Replicas)
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fmt.Errorf("bus: data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bus: data dir: %w", err)
	}
	var host string
	var port int
	if o.Listen != "" {
		h, p, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return fmt.Errorf("bus: listen %q: %w", o.Listen, err)
		}
		host = h
		if port, err = strconv.Atoi(p); err != nil {
			return fmt.Errorf("bus: listen %q: bad port", o.Listen)
		}
	}
	b.emb = &embedded{
		dir:   dir,
		log:   o.Logger.With("subsystem", "nats-server"),
		fault: b.health.markFault,
		opts: func() *server.Options {
			return &server.Options{
				ServerName: "xmppgw-embedded",
				JetStream:  true,
				StoreDir:   dir,
				DontListen: o.Listen == "",
				Host:       host,
				Port:       port,
				NoSigs:     true,
				// JetStream would otherwise default to a share of system memory.
				JetStreamMaxMemory: 64 << 20,
				SyncAlways:         o.SyncAlways,
			}
		},
	}
	if err := b.emb.start(); err != nil {
		return err
	}
	// The connection outlives a restart of the server (see watchStore): it
	// reconnects through b.emb to whichever server is current.
	b.lost = make(chan struct{})
	b.nc, err = nats.Connect(b.emb.clientURL(), nats.InProcessServer(b.emb), nats.Name(o.Name),
		nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { b.connectionLost() }))
	if err != nil {
		return fmt.Errorf("bus: connect to embedded server: %w", err)
	}
	b.stop = make(chan struct{})
	b.watcher.Add(1)
	go b.watchStore(b.stop)
	return nil
}

// embedded is the in-process NATS server, replaceable while the process
// runs: after a disk fault its file store keeps the write error until it is
// restarted, even once the disk accepts writes again.
type embedded struct {
	dir  string
	log  *slog.Logger
	opts func() *server.Options
	// fault hears of store write errors as the server logs them.
	fault func(stream string, err error)

	mu  sync.Mutex
	srv *server.Server
}

// InProcessConn connects nats.go to the current server.
func (e *embedded) InProcessConn() (net.Conn, error) {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv == nil {
		return nil, errors.New("embedded NATS server is not running")
	}
	return srv.InProcessConn()
}

func (e *embedded) clientURL() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv.ClientURL()
}

func (e *embedded) start() error {
	srv, err := server.NewServer(e.opts())
	if err != nil {
		return fmt.Errorf("bus: embedded server: %w", err)
	}
	srv.SetLoggerV2(&natsLogger{l: e.log, fault: e.fault}, false, false, false)
	srv.Start()
	e.mu.Lock()
	e.srv = srv
	e.mu.Unlock()
	if !srv.ReadyForConnections(10 * time.Second) {
		return errors.New("bus: embedded server did not become ready within 10s")
	}
	return nil
}

// stop shuts the current server down; safe when none runs.
func (e *embedded) stop() {
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Store recovery: a stream with a reported write error, or publishes to a
// subject failing for this long without a success and a probe of the store
// failing too, while the data directory takes writes again, mean the store
// kept an old write error.
const (
	stuckAfter      = 3 * time.Second  // a subject failing this long
	restartInterval = 10 * time.Second // at most one restart per interval
)

// watchStore restarts the embedded server when its store stays broken
// although the disk accepts writes again (space freed, remounted
// read-write). Clients reconnect within milliseconds; unacknowledged work
// is redelivered, nothing acknowledged is lost.
func (b *Bus) watchStore(stop <-chan struct{}) {
	defer b.watcher.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lastRestart time.Time
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		b.checkStoreHealth()
		since, last := b.health.stuck()
		if since.IsZero() || time.Since(since) < stuckAfter {
			continue
		}
		if b.health.fault() == nil {
			// Only publishes have failed, and a subject's mark would
			// otherwise wait for that subject's next publish: ask the
			// store itself. A restart is not free (work in hand is
			// delivered again), so it takes a failed probe too.
			began := time.Now()
			err := b.probeStore()
			select {
			case <-stop:
				return // closing: the probe may have failed for that
			default:
			}
			if err == nil {
				b.health.probed(began)
				b.log.Info("publishes failed but the store takes writes; not restarting the embedded NATS server",
					"failing_for", time.Since(since).Round(time.Millisecond), "last_error", last)
				continue
			}
			last = fmt.Errorf("%v; probe: %w", last, err)
		}
		if time.Since(lastRestart) < restartInterval {
			continue
		}
		if err := probeWritable(b.emb.dir); err != nil {
			continue // still full or read-only: keep refusing work
		}
		lastRestart = time.Now()
		b.log.Warn("the data directory accepts writes again but the store still refuses them; restarting the embedded NATS server",
			"failing_for", time.Since(since).Round(time.Millisecond), "last_error", last)
		if err := b.restartEmbedded(); err != nil {
			b.log.Error("restarting the embedded NATS server failed; will retry", "err", err)
		}
	}
}

// restartEmbedded stops and starts the embedded server and lets work
// through again once the connection is on the new server. Until then a
// publish would wait in nats.go's reconnect buffer, and its acknowledgement
// could be failed by the reconnect still being processed (committer's
// settleLost gives such messages their answer, at the cost of a publish
// more).
func (b *Bus) restartEmbedded() error {
	b.emb.stop()
	if err := b.emb.start(); err != nil {
		return err
	}
	b.emb.mu.Lock()
	id := b.emb.srv.ID()
	b.emb.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for b.nc.ConnectedServerId() != id || !b.nc.IsConnected() {
		if b.nc.IsClosed() {
			break // the bus is closing
		}
		if time.Now().After(deadline) {
			b.log.Warn("the connection has not moved to the restarted embedded server within 5s; letting work through", "status", b.nc.Status().String())
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.health.restarted()
	return nil
}

// probeGateway names no gateway (their names start with a letter or a
// digit): no consumer takes what the probe stores on the work streams.
const probeGateway = "_probe"

// probeTimeout bounds one probe: the watcher's tick is 500 ms.
const probeTimeout = time.Second

// probeStore writes to each work stream's store and removes what it wrote,
// bypassing the breaker: a message on a subject of the stream that no
// consumer takes (xmppgw._probe.out, .in), then its deletion. It tests the
// very file stores, and account limits, that the work uses.
func (b *Bus) probeStore() error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	data := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	for _, subject := range []string{OutSubject(probeGateway), InSubject(probeGateway)} {
		ack, err := b.js.Publish(ctx, subject, data)
		if err != nil {
			return fmt.Errorf("store %s: %w", subject, err)
		}
		s, err := b.js.Stream(ctx, ack.Stream)
		if err == nil {
			err = s.DeleteMsg(ctx, ack.Sequence)
		}
		if err != nil {
			return fmt.Errorf("remove the probe from %s: %w", ack.Stream, err)
		}
	}
	return nil
}

// checkStoreHealth asks the embedded server for its streams' write errors:
// the same faults its log reports as they happen, should one be worded in a
// way storeWriteError does not know.
func (b *Bus) checkStoreHealth() {
	b.emb.mu.Lock()
	srv := b.emb.srv
	b.emb.mu.Unlock()
	if srv == nil {
		return
	}
	for _, e := range srv.Healthz(&server.HealthzOptions{Details: true}).Errors {
		if e.Type == server.HealthzErrorStream && e.Stream != "" && strings.Contains(e.Error, "write error") {
			b.health.markFault(e.Stream, errors.New(e.Error))
		}
	}
}

// probeWritable writes, syncs and removes a file of probeSize bytes in dir.
func probeWritable(dir string) error {
	const probeSize = 1 << 20
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, probeSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (b *Bus) connect(o Options) error {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.connectionLost()
			if err != nil {
				b.log.Warn("bus disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("bus reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	}
	if o.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredentialsFile))
	}
	if o.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(o.TLSCAFile))
	}
	if o.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(o.TLSCertFile, o.TLSKeyFile))
	}
	b.lost = make(chan struct{})
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return fmt.Errorf("bus: connect to %s: %w", redactURL(o.URL), err)
	}
	b.nc = nc
	return nil
}

// redactURL drops user:password from NATS URLs before they reach a log.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if s := strings.Index(p, "://"); s >= 0 && s < at {
				parts[i] = p[:s+3] + "[redacted]" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

func (b *Bus) provision(ctx context.Context, replicas int, idsTTL time.Duration) error {
	for _, sc := range []jetstream.StreamConfig{
		{Name: StreamOut, Subjects: []string{"xmppgw.*.out"}},
		{Name: StreamIn, Subjects: []string{"xmppgw.*.in"}},
	} {
		sc.Retention = jetstream.WorkQueuePolicy
		sc.Storage = jetstream.FileStorage
		sc.Replicas = replicas
		sc.Duplicates = 10 * time.Minute
		sc.MaxAge = 7 * 24 * time.Hour
		sc.MaxMsgSize = MaxEnvelopeSize
		sc.Discard = jetstream.DiscardNew
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range []jetstream.KeyValueConfig{
		{Bucket: BucketRegistrations, Description: "per-user gateway state"},
		{Bucket: BucketMessages, Description: "network message id → stanza id", TTL: 7 * 24 * time.Hour},
		{Bucket: BucketIDs, Description: "XMPP ids ⇄ network ids per conversation, reaction sets", TTL: idsTTL},
	} {
		kc.Replicas = replicas
		kc.Storage = jetstream.FileStorage
		if _, err := b.js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("bus: kv bucket %s: %w", kc.Bucket, err)
		}
	}
	if b.emb == nil {
		// External NATS: servers of any version, clustered. Grouping is
		// measured and its guarantee documented for the embedded server
		// (docs/group-commit.md); external publishes stay one by one.
		return nil
	}
	b.committers = map[string]*committer{}
	for _, name := range []string{StreamOut, StreamIn, "KV_" + BucketMessages, "KV_" + BucketIDs} {
		atomic, err := b.allowAtomic(ctx, name)
		if err != nil {
			return err
		}
		b.committers[name] = newCommitter(b, name, atomic)
	}
	return nil
}

// allowAtomic turns on atomic batch publishes for stream (a KV bucket's
// configuration does not carry the setting, and CreateOrUpdateKeyValue
// writes it back off at every start: it is set again here each time). It
// reports whether the server kept it: a server before 2.12 drops the
// field it does not know.
func (b *Bus) allowAtomic(ctx context.Context, name string) (bool, error) {
	s, err := b.js.Stream(ctx, name)
	if err != nil {
		return false, fmt.Errorf("bus: stream %s: %w", name, err)
	}
	cfg := s.CachedInfo().Config
	if cfg.AllowAtomicPublish {
		return true, nil
	}
	cfg.AllowAtomicPublish = true
	updated, err := b.js.UpdateStream(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("bus: stream %s: allow atomic batches: %w", name, err)
	}
	return updated.CachedInfo().Config.AllowAtomicPublish, nil
}

// JetStream gives adapters and the component direct access for what this
// package does not wrap (KV buckets, consumer info).
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Conn is the underlying NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Embedded reports whether this process runs the NATS server itself.
func (b *Bus) Embedded() bool { return b.emb != nil }

// Publish stores e durably on subject; it returns only after JetStream has
// acknowledged the write. msgID deduplicates within the stream's window:
// duplicate is true when an equal id was already stored (and nothing new was).
func (b *Bus) Publish(ctx context.Context, subject string, e *Envelope, msgID string) (duplicate bool, err error) {
	return b.Start(subject, e, msgID).Wait(ctx)
}

// answerTimeout bounds how long a publish waits for the store's answer,
// whatever the caller allows: an embedded store that takes this long is
// stalled (a healthy one answers in well under a millisecond, a few with
// fsync). Shorter than the component's 5 s, so that its publishes, not
// only its callers' patience, find out.
const answerTimeout = 4 * time.Second

// storeFailed reports whether err, from a publish whose caller still
// waited, is the store's own failure: the server answering with a
// server-side error (a write that failed, no space, JetStream disabled),
// no answer within the bus's own bound, or nothing answering for the
// stream at all. A caller's cancellation or deadline is not, nor is a
// refusal of the message itself (too large, a failed expectation), nor a
// connection closing.
func storeFailed(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

// PublishEphemeral sends e on an ephemeral subject (EphemeralOutSubject,
// EphemeralInSubject): no store, no acknowledgement, no retry. An error
// means it was not sent; nobody listening is not an error.
func (b *Bus) PublishEphemeral(subject string, e *Envelope) error {
	data, err := Encode(e)
	if err != nil {
		return err
	}
	return b.nc.Publish(subject, data)
}

// ConsumerConfig shapes a durable work consumer.
type ConsumerConfig struct {
	Stream  string
	Name    string
	Subject string
	// AckWait is how long a delivered message may stay unacknowledged before
	// JetStream redelivers it.
	AckWait time.Duration
	// MaxAckPending bounds in-flight messages for this consumer.
	MaxAckPending int
}

// Consumer creates or updates a durable pull consumer with explicit acks.
// Delivery attempts are unlimited here: the consuming side counts attempts
// (from message metadata) and decides when to give up and report an error.
func (b *Bus) Consumer(ctx context.Context, c ConsumerConfig) (jetstream.Consumer, error) {
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 1000
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, c.Stream, jetstream.ConsumerConfig{
		Durable:       c.Name,
		FilterSubject: c.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxAckPending: c.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s on %s: %w", c.Name, c.Stream, err)
	}
	return cons, nil
}

// Pending reports, for a consumer, how many messages wait to be delivered and
// how many are delivered but not yet acknowledged.
func (b *Bus) Pending(ctx context.Context, stream, consumer string) (waiting, unacked uint64, err error) {
	c, err := b.js.Consumer(ctx, stream, consumer)
	if err != nil {
		return 0, 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.NumPending, uint64(info.NumAckPending), nil
}

// Ready returns nil when the bus can store messages right now.
func (b *Bus) Ready(ctx context.Context) error {
	if b.nc == nil || !b.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("JetStream unavailable: %w", err)
	}
	return b.health.ready()
}

// Close drains the connection (in-flight handlers finish, pending publishes
// are flushed) and stops the embedded server. Safe to call more than once.
func (b *Bus) Close(ctx context.Context) error {
	var err error
	b.closer.Do(func() {
		// What is queued is committed (or fails) before the connection
		// drains.
		for _, c := range b.committers {
			c.stop()
		}
		if b.nc != nil && !b.nc.IsClosed() {
			done := make(chan struct{})
			b.nc.SetClosedHandler(func(*nats.Conn) { close(done) })
			if derr := b.nc.Drain(); derr != nil {
				b.nc.Close()
			} else {
				select {
				case <-done:
				case <-ctx.Done():
					b.nc.Close()
					err = fmt.Errorf("bus: drain: %w", ctx.Err())
				}
			}
		}
		b.stopServer()
	})
	return err
}

func (b *Bus) shutdown() {
	for _, c := range b.committers {
		c.stop()
	}
	if b.nc != nil {
		b.nc.Close()
	}
	b.stopServer()
}

func (b *Bus) stopServer() {
	if b.stop != nil {
		close(b.stop)
		b.stop = nil
		b.watcher.Wait() // a restart in progress finishes first
	}
	if b.emb != nil {
		b.emb.stop()
	}
}

// natsLogger sends the embedded server's log to slog. Its notices are chatty
// start-up detail, so they go to debug. Store write errors are also passed
// to fault as they happen: the server reports them no other way until its
// health is asked for (see checkStoreHealth).
type natsLogger struct {
	l     *slog.Logger
	fault func(stream string, err error)
}

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	n.l.Error(msg)
	if n.fault != nil {
		if stream, ok := storeWriteError(msg); ok {
			n.fault(stream, errors.New(msg))
		}
	}
}

func (n *natsLogger) Debugf(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Tracef(format string, v ...any) {}

// storeWriteError recognises the embedded server's reports of a write
// error in a stream's store (nats-server v2.15's wording) and names the
// stream; "JetStream" when JetStream itself shuts down for lack of space.
func storeWriteError(msg string) (stream string, ok bool) {
	if rest, found := strings.CutPrefix(msg, "Filestore ["); found {
		if name, tail, found := strings.Cut(rest, "] "); found && strings.HasPrefix(tail, "Critical write error") {
			return name, true
		}
	}
	if rest, found := strings.CutPrefix(msg, "JetStream stream '"); found {
		if acct, _, found := strings.Cut(rest, "' critical write error"); found {
			if _, name, found := strings.Cut(acct, " > "); found {
				return name, true
			}
		}
	}
	if strings.HasPrefix(msg, "JetStream out of ") && strings.Contains(msg, "will be DISABLED") {
		return "JetStream", true
	}
	return "", false
}

// IsStorageFull reports whether a Publish failed because the store is out of
// space or over its limits: the caller should refuse new work rather than
// retry at once.
func IsStorageFull(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10047, // insufficient storage resources available
			10077, // maximum messages exceeded
			10028: // insufficient resources (memory)
			return true
		}
	}
	if errors.Is(err, ErrStoreRefusing) {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "insufficient")
}

// Pull hands each message of cons to handle, one at a time and in order,
// until ctx ends. Every round is a fresh pull request that expires after
// maxWait, so no pull state can wedge for longer: nats.go's long-lived
// Consume was seen to stop delivering while messages were pending. When ctx
// ends, the round in hand is still handled (handing it back would reorder
// it), so Pull returns within about maxWait.
func Pull(ctx context.Context, cons jetstream.Consumer, batch int, maxWait time.Duration, handle func(jetstream.Msg)) {
	for ctx.Err() == nil {
		msgs, err := cons.Fetch(batch, jetstream.FetchMaxWait(maxWait))
		if err != nil {
			// Not connected, or the consumer is gone for a moment: the
			// connection reconnects by itself; try again shortly.
			select {
			case <-ctx.Done():
			case <-time.After(maxWait / 4):
			}
			continue
		}
		for m := range msgs.Messages() {
			handle(m)
		}
	}
}
