package matrix

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// One process syncs each user. Several processes may run the adapter
// (role adapters, sharing the bus); every one of them serves sends, which
// are plain requests, but only the holder of the user's sync lease runs
// the /sync loop, so nothing arrives twice from two devices' syncs and the
// sync token is written by one process. The lease is a key in the
// registrations bucket:
//
//	<gw>.sync.<user>  →  "<holder> <expiry, Unix ms>"
//
// taken with Create (or with Update at the revision read, when it has
// expired), renewed every leaseRenew, and deleted at Stop; a process that
// dies leaves it to expire, and another takes over within leaseTTL and
// resumes from the stored sync token.
const (
	leaseTTL   = 8 * time.Second
	leaseRenew = 2 * time.Second
)

func (a *Adapter) leaseKey(user string) string { return a.name + ".sync." + enc(user) }

func (s *session) leaseValue() []byte {
	return []byte(s.r.id + " " + strconv.FormatInt(time.Now().Add(leaseTTL).UnixMilli(), 10))
}

// tryLease takes or renews the user's sync lease.
func (s *session) tryLease(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, leaseRenew)
	defer cancel()
	kv, key := s.r.a.kv, s.r.a.leaseKey(s.user)
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.leaseRev != 0 {
		rev, err := kv.Update(ctx, key, s.leaseValue(), s.leaseRev)
		if err == nil {
			s.leaseRev = rev
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return true, err // not known to be lost: keep it while it lasts
		}
		s.leaseRev = 0
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		rev, err := kv.Create(ctx, key, s.leaseValue())
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil // another process just took it
		}
		if err != nil {
			return false, fmt.Errorf("sync lease: %w", err)
		}
		s.leaseRev = rev
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("sync lease: %w", err)
	}
	holder, exp, _ := strings.Cut(string(e.Value()), " ")
	ms, _ := strconv.ParseInt(exp, 10, 64)
	if holder != s.r.id && time.Now().Before(time.UnixMilli(ms)) {
		return false, nil
	}
	rev, err := kv.Update(ctx, key, s.leaseValue(), e.Revision())
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sync lease: %w", err)
	}
	s.leaseRev = rev
	return true, nil
}

// holdLease renews the lease just taken until the session ends or the
// lease is lost (another process took it, or renewing failed for longer
// than it lasts); the context it returns ends then.
func (s *session) holdLease() context.Context {
	lctx, lose := context.WithCancel(s.ctx)
	s.r.wg.Add(1)
	go func() {
		defer s.r.wg.Done()
		defer lose()
		t := time.NewTicker(leaseRenew)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			held, err := s.tryLease(lctx)
			switch {
			case err == nil && held:
				renewed = time.Now()
			case err == nil || time.Since(renewed) > leaseTTL-leaseRenew:
				return // lost, or about to expire unrenewed
			}
		}
	}()
	return lctx
}

// releaseLease gives the lease up at the end of the session, so that
// another process can take over at once.
func (s *session) releaseLease() {
	s.leaseMu.Lock()
	rev := s.leaseRev
	s.leaseRev = 0
	s.leaseMu.Unlock()
	if rev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.r.a.kv.Delete(ctx, s.r.a.leaseKey(s.user), jetstream.LastRevision(rev))
}
