package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// BucketLeases holds the leases: one key per lease, whose value is the
// holder. Entries expire LeaseTTL after their last write, so the lease of a
// process that died passes on without anyone deleting it.
const BucketLeases = "xmppgw_leases"

// LeaseTTL is how long a lease outlives its holder's last renewal: the most
// a standby waits after the holder died without releasing it.
const LeaseTTL = 3 * time.Second

const (
	// renewEvery paces the holder's renewals: three tries within a TTL.
	renewEvery = LeaseTTL / 4
	// heldFor is how long the holder trusts a renewal, counted from before it
	// was sent: less than the TTL, which the server counts from after it
	// stored it, so the holder gives the lease up (and closes what it
	// guards) before any other process can take it. The difference is the
	// time the holder has to close.
	heldFor = LeaseTTL - LeaseTTL/4
	// renewRetry paces renewals after one failed; renewTimeout bounds one.
	renewRetry   = 100 * time.Millisecond
	renewTimeout = 250 * time.Millisecond
	// acquireEvery paces a standby's attempts to take an expired lease.
	acquireEvery = 250 * time.Millisecond
	// releaseTimeout bounds the delete that hands the lease over.
	releaseTimeout = time.Second
)

// ErrLeaseLost is the cause of a held context's end when the lease was lost:
// taken over, expired, or not renewable in time.
var ErrLeaseLost = errors.New("bus: lease lost")

// errReleased ends a held context when its holder gives the lease up.
var errReleased = errors.New("bus: lease released")

// Lease is a named lease that at most one process holds at a time, as a key
// in BucketLeases:
//
//   - acquire: KV Create of the key with this process' holder id; it fails
//     while the key exists, so a standby retries every 250 ms;
//   - renew: KV Update on the revision last written, every TTL/4; it fails
//     when the entry changed or vanished, and the lease is lost at once
//     (unless the entry still holds this holder's id: a renewal that timed
//     out here but was stored);
//   - a holder that cannot renew (the bus unreachable) retries every 100 ms
//     and gives the lease up 3/4 of a TTL after its last successful renewal
//     was sent, before the entry can expire on the server and another
//     process take it; once the bus answers again, an entry that still
//     holds its id (nobody took the lease since) is taken back at once;
//   - release: KV Delete on the last revision, so a standby takes over
//     within 250 ms instead of waiting for the entry to expire.
//
// The guarantee holds while the holder's process runs at normal speed: a
// process stopped for longer than TTL/4 (SIGSTOP, swapping) wakes up
// believing it holds a lease another process may already hold.
type Lease struct {
	b      *Bus
	key    string
	holder string
	log    *slog.Logger

	mu sync.Mutex
	kv jetstream.KeyValue // nil until the bucket was opened
}

// Lease returns the lease called name (a KV key: letters, digits, "-", "_",
// "="; "." separates tokens) with a holder id unique to this call: host
// name, process id and a random part.
func (b *Bus) Lease(name string) *Lease {
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown"
	}
	return &Lease{
		b:      b,
		key:    name,
		holder: host + "/" + strconv.Itoa(os.Getpid()) + "/" + nuid.Next(),
		log:    b.log.With("lease", name),
	}
}

// Holder is this lease's holder id, the value stored while it holds it.
func (l *Lease) Holder() string { return l.holder }

// bucket opens the leases bucket, creating it (or updating its replicas to
// those of the streams) the first time.
func (l *Lease) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kv != nil {
		return l.kv, nil
	}
	replicas := 1
	if s, err := l.b.js.Stream(ctx, StreamOut); err == nil {
		replicas = s.CachedInfo().Config.Replicas
	}
	kv, err := l.b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketLeases,
		Description: "who holds each lease (the active component of each gateway)",
		TTL:         LeaseTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: kv bucket %s: %w", BucketLeases, err)
	}
	l.kv = kv
	return kv, nil
}

// Acquire waits until this process holds the lease, or ctx ends (then it
// returns ctx's error). While another process holds it, standby is called
// once with that holder's id (standby may be nil).
//
// Once acquired, the lease is renewed in the background until release is
// called or it is lost; held is cancelled either way, with ErrLeaseLost as
// its cause (context.Cause) when lost. held does not end with ctx: the
// holder still holds the lease while it shuts down what the lease guards,
// and then calls release, which gives it up at once. release is safe to
// call more than once, also after the lease was lost.
func (l *Lease) Acquire(ctx context.Context, standby func(holder string)) (held context.Context, release func(), err error) {
	told := false
	var lastErr string
	for {
		kv, rev, sent, holder, err := l.tryTake(ctx)
		if err == nil {
			return l.hold(ctx, kv, rev, sent)
		}
		switch {
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case errors.Is(err, jetstream.ErrKeyExists):
			if !told && holder != "" {
				told = true
				l.log.Info("standby: another process holds the lease", "holder", holder)
				if standby != nil {
					standby(holder)
				}
			}
		case err.Error() != lastErr:
			lastErr = err.Error()
			l.log.Warn("cannot take the lease; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(acquireEvery):
		}
	}
}

// tryTake makes one attempt; sent is when it was sent. When the key exists,
// holder is its value. An entry that still holds this lease's own id (this
// process lost the lease because it could not renew, and nobody took it
// since: any other holder writes its own id) is taken back at once with an
// Update on its revision, instead of waiting for it to expire.
func (l *Lease) tryTake(ctx context.Context) (kv jetstream.KeyValue, rev uint64, sent time.Time, holder string, err error) {
	if nc := l.b.nc; nc != nil && nc.IsReconnecting() {
		_ = nc.ForceReconnect() // see renew
	}
	bctx, bcancel := context.WithTimeout(ctx, 10*time.Second) // creating a replicated bucket takes a while
	kv, err = l.bucket(bctx)
	bcancel()
	if err != nil {
		return nil, 0, time.Time{}, "", err
	}
	opCtx, cancel := context.WithTimeout(ctx, renewEvery)
	defer cancel()
	sent = time.Now()
	rev, err = kv.Create(opCtx, l.key, []byte(l.holder))
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return kv, rev, sent, "", err
	}
	holder = "unknown"
	e, gerr := kv.Get(opCtx, l.key)
	if gerr != nil {
		return kv, 0, sent, holder, err
	}
	holder = string(e.Value())
	if holder != l.holder {
		return kv, 0, sent, holder, err
	}
	sent = time.Now()
	if rev, err = kv.Update(opCtx, l.key, []byte(l.holder), e.Revision()); err != nil {
		return kv, 0, sent, "", fmt.Errorf("taking back this process' own entry: %w", err)
	}
	return kv, rev, sent, "", nil
}

func (l *Lease) hold(ctx context.Context, kv jetstream.KeyValue, rev uint64, sent time.Time) (context.Context, func(), error) {
	held, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := make(chan struct{})
	done := make(chan struct{})
	var last uint64 // the revision last written; read after done
	go func() {
		defer close(done)
		last = l.renew(held, cancel, stop, kv, rev, sent)
	}()
	var once sync.Once
	release := func() {
		once.Do(func() {
			close(stop)
			<-done
			cancel(errReleased)
			if last == 0 {
				return // lost: not ours to delete
			}
			dctx, dcancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer dcancel()
			if err := kv.Delete(dctx, l.key, jetstream.LastRevision(last)); err != nil {
				l.log.Warn("could not release the lease; it expires by itself", "after", LeaseTTL, "err", err)
				return
			}
			l.log.Info("lease released")
		})
	}
	l.log.Info("lease acquired", "holder", l.holder)
	return held, release, nil
}

// renew keeps the lease until stop is closed, returning the revision last
// written, or until it is lost, cancelling held and returning 0.
func (l *Lease) renew(held context.Context, cancel context.CancelCauseFunc, stop <-chan struct{}, kv jetstream.KeyValue, rev uint64, sent time.Time) uint64 {
	deadline := time.NewTimer(time.Until(sent.Add(heldFor)))
	defer deadline.Stop()
	next := time.NewTimer(renewEvery)
	defer next.Stop()
	lose := func(why error) uint64 {
		l.log.Warn("lease lost", "err", why)
		cancel(fmt.Errorf("%w: %w", ErrLeaseLost, why))
		return 0
	}
	for {
		select {
		case <-stop:
			return rev
		case <-deadline.C:
			return lose(fmt.Errorf("not renewed within %v", heldFor))
		case <-next.C:
		}
		at := time.Now()
		// The client's reconnect backoff (2 s by default) would let the
		// deadline pass after even a short restart of the server: try at
		// once instead.
		if nc := l.b.nc; nc != nil && nc.IsReconnecting() {
			_ = nc.ForceReconnect()
		}
		// Each attempt is short (a renewal published while the client is
		// disconnected waits in its buffer, and would wait out the
		// deadline), and none goes past the deadline: the lease is given
		// up by then.
		until := at.Add(renewTimeout)
		if d := sent.Add(heldFor); d.Before(until) {
			until = d
		}
		opCtx, opCancel := context.WithDeadline(held, until)
		newRev, err := kv.Update(opCtx, l.key, []byte(l.holder), rev)
		opCancel()
		switch {
		case err == nil:
			rev, sent = newRev, at
			deadline.Reset(time.Until(sent.Add(heldFor)))
			next.Reset(renewEvery)
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
			// The entry changed or vanished: another process may hold it —
			// unless it still holds this lease's id, written by an earlier
			// renewal that timed out here but was stored: only this
			// process writes its id. The deadline stays that of the last
			// confirmed renewal.
			gctx, gcancel := context.WithDeadline(held, sent.Add(heldFor))
			e, gerr := kv.Get(gctx, l.key)
			gcancel()
			if gerr == nil && string(e.Value()) == l.holder {
				rev = e.Revision()
				next.Reset(0)
				continue
			}
			return lose(fmt.Errorf("renew: %w", err))
		default:
			// The bus did not answer (a NATS client reconnecting, a leader
			// election): keep trying, more often, until the deadline.
			l.log.Debug("lease renewal failed; retrying", "err", err)
			next.Reset(renewRetry)
		}
	}
}
