package matrix

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/gateways"
)

// End-to-end encryption. Each user's device has its own Olm account and
// Megolm sessions (e2ee, crypto.go), opened by the process that holds the
// user's sync lease, since only one process may advance the device's
// ratchets. The sync loop hands it every batch's to-device events (room
// keys) before the batch's rooms, and the rooms' state (who is a member,
// which rooms are encrypted); an m.room.encrypted event is decrypted and
// then handled like the event it carries. One whose key has not arrived
// is held (in memory and in the registrations bucket, so that a restart
// does not lose it) and tried again after each batch; its key is
// requested from the sender's devices and the user's other ones. After
// keyWait the user is told plainly that a message could not be decrypted,
// in the conversation it belongs to. An outbound event to an encrypted
// room is encrypted for the members' devices.

// e2ee is one device's end-to-end encryption: crypto.go (build tag goolm,
// mautrix's pure-Go Olm), or crypto_off.go without it.
type e2ee interface {
	// sync takes a batch's to-device events (room keys), device list
	// changes and one-time key counts, before its rooms.
	sync(ctx context.Context, resp *mautrix.RespSync, since string)
	// state takes a state event of a joined room (encryption, members,
	// history visibility), its content parsed.
	state(ctx context.Context, evt *event.Event)
	// decrypt returns the event an m.room.encrypted event carries; an
	// error wrapping errNoKey when its key has not arrived (yet).
	decrypt(ctx context.Context, evt *event.Event) (*event.Event, error)
	// requestKey asks the sender's devices and the user's other devices
	// for the key of evt.
	requestKey(ctx context.Context, evt *event.Event)
	// encrypt encrypts content for the devices of room's members, sharing
	// the room's key with those that lack it first.
	encrypt(ctx context.Context, room id.RoomID, typ event.Type, content any) (*event.EncryptedEventContent, error)
	// close releases the store. The device's state stays on disk.
	close()
}

var (
	// errNoKey: the key of an encrypted event has not arrived.
	errNoKey = errors.New("the key of this message has not reached the gateway")
	// errCryptoUnusable: encryption cannot work for this device, retrying
	// will not help (the error says why).
	errCryptoUnusable = errors.New("end-to-end encryption is unavailable")
	// errNotBuilt: the binary was built without the goolm tag.
	errNotBuilt = fmt.Errorf("%w: this gateway was built without it (build tag goolm)", errCryptoUnusable)
)

// keyWait is how long an encrypted event whose key is missing is held
// before the user is told it could not be decrypted. Clients send the key
// before the message, so it is mostly there at once; when not, it comes
// from the sender's device or answers the key request within seconds.
var keyWait = 30 * time.Second

// cryptoPath is the SQLite file of a device's encryption state.
func (a *Adapter) cryptoPath(user string, acc account) string {
	return filepath.Join(a.cryptoDir, enc(user)+"."+enc(string(acc.DeviceID))+".db")
}

// removeCryptoStore deletes a device's encryption state: it was logged
// out or replaced. Best effort.
func (a *Adapter) removeCryptoStore(user string, acc account) {
	if acc.DeviceID == "" {
		return
	}
	p := a.cryptoPath(user, acc)
	for _, f := range []string{p, p + "-wal", p + "-shm", p + "-journal"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			a.log.Warn("removing a logged-out device's encryption keys failed", "user", user, "path", f, "error", err)
		}
	}
}

// forgetDevice deletes what the gateway keeps of a device's encryption:
// its pickle key, the events held for their keys, its store in this
// process's crypto_dir (a session of it running here deletes its store
// too when it ends).
func (a *Adapter) forgetDevice(ctx context.Context, user string, acc account) {
	_ = a.kv.Delete(ctx, a.pickleKeyKey(user))
	if keys, err := a.kv.ListKeysFiltered(ctx, a.pendingPrefix(user)+"*"); err == nil {
		for k := range keys.Keys() {
			_ = a.kv.Delete(ctx, k)
		}
	}
	a.removeCryptoStore(user, acc)
}

func (a *Adapter) pickleKeyKey(user string) string { return a.name + ".pickle." + enc(user) }
func (a *Adapter) pendingPrefix(user string) string {
	return a.name + ".undecrypted." + enc(user) + "."
}

// pickleRecord is the key the device's Olm and Megolm state is encrypted
// with on disk (pickled): kept in the registrations bucket, not beside
// the file, so that a copy of the crypto directory alone reveals no key.
type pickleRecord struct {
	Device id.DeviceID `json:"device"`
	Key    []byte      `json:"key"`
}

// pickleKey returns the pickle key of user's device; fresh when it was
// made now (a store of the device already on disk was pickled with a key
// that is lost).
func (a *Adapter) pickleKey(ctx context.Context, user string, acc account) (key []byte, fresh bool, err error) {
	k := a.pickleKeyKey(user)
	e, err := a.kv.Get(ctx, k)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, err
	}
	if err == nil {
		var rec pickleRecord
		if json.Unmarshal(e.Value(), &rec) == nil && rec.Device == acc.DeviceID && len(rec.Key) > 0 {
			return rec.Key, false, nil
		}
	}
	rec := pickleRecord{Device: acc.DeviceID, Key: make([]byte, 32)}
	if _, err := rand.Read(rec.Key); err != nil {
		return nil, false, err
	}
	b, _ := json.Marshal(rec)
	if e == nil {
		_, err = a.kv.Create(ctx, k, b)
	} else {
		_, err = a.kv.Update(ctx, k, b, e.Revision())
	}
	if err != nil {
		return nil, false, err
	}
	return rec.Key, true, nil
}

// pendingEvent is an encrypted event waiting for its key.
type pendingEvent struct {
	Event *event.Event `json:"event"`
	First time.Time    `json:"first"` // when it was first seen
}

// crypto returns the device's encryption, nil when not (yet) open here.
func (s *session) crypto() e2ee {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crypt
}

// cryptoFailure says why there is no encryption here.
func (s *session) cryptoFailure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cryptErr != nil {
		return s.cryptErr
	}
	return errors.New("the device's keys are held by another process of the gateway")
}

// openCrypto opens the device's encryption (the caller holds the sync
// lease) and takes up the events held for their keys. An error is worth
// retrying (the homeserver or the bus did not answer); a device whose
// encryption cannot work is recorded as such, and its users are told at
// each encrypted event.
func (s *session) openCrypto() error {
	if err := s.loadPending(); err != nil {
		return err
	}
	c, err := openE2EE(s.ctx, s)
	if err != nil && !errors.Is(err, errCryptoUnusable) {
		return fmt.Errorf("opening the encryption keys: %w", err)
	}
	if err != nil {
		if errors.Is(err, errNotBuilt) {
			s.r.a.log.Debug("no end-to-end encryption", "user", s.user, "error", err)
		} else {
			s.r.a.log.Error("end-to-end encryption unavailable for this device", "user", s.user, "mxid", s.acc.UserID, "device", s.acc.DeviceID, "error", err)
		}
	}
	s.mu.Lock()
	s.crypt, s.cryptErr = c, err
	s.mu.Unlock()
	close(s.cryptReady)
	return nil
}

// cryptoOpened: openCrypto succeeded (with or without encryption).
func (s *session) cryptoOpened() bool {
	select {
	case <-s.cryptReady:
		return true
	default:
		return false
	}
}

// closeCrypto closes the device's encryption at the end of the session,
// and deletes its state when the device was logged out.
func (s *session) closeCrypto() {
	s.mu.Lock()
	c, forget := s.crypt, s.forget
	s.crypt = nil
	s.mu.Unlock()
	if c != nil {
		c.close()
	}
	if forget {
		s.r.a.removeCryptoStore(s.user, s.acc)
	}
}

// logout ends the session of a device that was logged out; its
// encryption state is deleted once the session has closed it.
func (s *session) logout() {
	s.mu.Lock()
	s.forget = true
	s.mu.Unlock()
	s.stop()
}

// waitCrypto waits until the device's encryption is open here.
func (s *session) waitCrypto(ctx context.Context) (e2ee, error) {
	select {
	case <-s.cryptReady:
	case <-ctx.Done():
		return nil, fmt.Errorf("matrix: %s: the room is encrypted and %v: %w", s.acc.UserID, s.cryptoFailure(), gateways.ErrNotConnected)
	case <-s.ctx.Done():
		return nil, errStopped
	}
	if c := s.crypto(); c != nil {
		return c, nil
	}
	return nil, &gateways.Error{Condition: gateways.FeatureNotImplemented, Permanent: true,
		Text: "this Matrix room is end-to-end encrypted, and the gateway cannot encrypt for it: " + s.cryptoFailure().Error()}
}

// noteState takes a state event of a joined room: whether the room is
// encrypted, and what the device's encryption needs to know.
func (s *session) noteState(evt *event.Event) {
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return
	}
	if evt.Type == event.StateEncryption {
		s.mu.Lock()
		s.enc[evt.RoomID] = true // encryption cannot be turned off
		s.mu.Unlock()
	}
	if c := s.crypto(); c != nil {
		c.state(s.ctx, evt)
	}
}

// encryptedRoom tells whether room is encrypted: from its state seen in
// the syncs, else asked once.
func (s *session) encryptedRoom(ctx context.Context, room id.RoomID) (bool, error) {
	s.mu.Lock()
	encrypted, known := s.enc[room]
	s.mu.Unlock()
	if known {
		return encrypted, nil
	}
	var c event.EncryptionEventContent
	err := s.cli.StateEvent(ctx, room, event.StateEncryption, "", &c)
	var he mautrix.HTTPError
	switch {
	case err == nil:
		encrypted = c.Algorithm != ""
	case errors.As(err, &he) && he.IsStatus(http.StatusNotFound):
		encrypted = false
	default:
		return false, classify(err, "reading whether "+string(room)+" is encrypted")
	}
	s.mu.Lock()
	s.enc[room] = s.enc[room] || encrypted
	s.mu.Unlock()
	if encrypted {
		evt := &event.Event{Type: event.StateEncryption, RoomID: room, StateKey: new(string),
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: cmp.Or(c.Algorithm, id.AlgorithmMegolmV1)}}}
		if cr := s.crypto(); cr != nil {
			cr.state(ctx, evt)
		}
	}
	return encrypted, nil
}

// readable returns the event an encrypted event carries, or nil when it
// cannot be read now: held until its key comes, or the user told.
func (s *session) readable(evt *event.Event) (*event.Event, error) {
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return nil, s.undecryptable(evt, "it is malformed")
	}
	c := s.crypto()
	if c == nil {
		return nil, s.undecryptable(evt, s.cryptoFailure().Error())
	}
	d, err := c.decrypt(s.ctx, evt)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, errNoKey) {
		return nil, s.undecryptable(evt, err.Error())
	}
	if _, held := s.pending[evt.ID]; held {
		return nil, nil
	}
	p := &pendingEvent{Event: evt, First: time.Now()}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, s.undecryptable(evt, err.Error())
	}
	ctx, cancel := context.WithTimeout(s.ctx, hostTimeout)
	defer cancel()
	if _, err := s.r.a.kv.Put(ctx, s.r.a.pendingPrefix(s.user)+enc(string(evt.ID)), b); err != nil {
		return nil, fmt.Errorf("holding an event for its key: %w", err)
	}
	s.pending[evt.ID] = p
	c.requestKey(ctx, evt)
	return nil, nil
}

// undecryptable tells the user, in the conversation, that a message could
// not be decrypted.
func (s *session) undecryptable(evt *event.Event, why string) error {
	c, ok := s.convOf(evt)
	if !ok {
		return nil
	}
	s.r.a.log.Warn("a Matrix message could not be decrypted", "user", s.user, "room", evt.RoomID, "event", evt.ID, "sender", evt.Sender, "reason", why)
	ctx, cancel := context.WithTimeout(s.ctx, hostTimeout)
	defer cancel()
	return s.r.host.Deliver(ctx, gateways.Inbound{
		ProviderID: string(evt.ID), From: c.from, To: c.to, Groupchat: c.groupchat, Nick: c.nick,
		Body:  "[" + string(evt.Sender) + " sent an end-to-end encrypted message that the gateway could not decrypt: " + why + "]",
		Delay: time.UnixMilli(evt.Timestamp),
	})
}

// loadPending takes up the events held for their keys before a restart.
func (s *session) loadPending() error {
	ctx, cancel := context.WithTimeout(s.ctx, hostTimeout)
	defer cancel()
	keys, err := s.r.a.kv.ListKeysFiltered(ctx, s.r.a.pendingPrefix(s.user)+"*")
	if err != nil {
		return fmt.Errorf("listing the events held for their keys: %w", err)
	}
	for k := range keys.Keys() {
		e, err := s.r.a.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading an event held for its key: %w", err)
		}
		var p pendingEvent
		if json.Unmarshal(e.Value(), &p) != nil || p.Event == nil {
			_ = s.r.a.kv.Delete(ctx, k)
			continue
		}
		s.pending[p.Event.ID] = &p
	}
	return nil
}

// retryPending tries the held events again after a batch: those whose
// key came are delivered, those waiting longer than keyWait are told.
func (s *session) retryPending() error {
	if len(s.pending) == 0 {
		return nil
	}
	held := make([]*pendingEvent, 0, len(s.pending))
	for _, p := range s.pending {
		held = append(held, p)
	}
	slices.SortFunc(held, func(a, b *pendingEvent) int { return cmp.Compare(a.Event.Timestamp, b.Event.Timestamp) })
	c := s.crypto()
	for _, p := range held {
		var err error
		why := s.cryptoFailure().Error()
		if c != nil {
			var d *event.Event
			if d, err = c.decrypt(s.ctx, p.Event); err == nil {
				if err := s.timeline(d); err != nil {
					return err
				}
				s.unhold(p.Event.ID)
				continue
			}
			why = err.Error()
		}
		if c != nil && errors.Is(err, errNoKey) && time.Since(p.First) < keyWait {
			continue
		}
		if errors.Is(err, errNoKey) {
			why = fmt.Sprintf("its key did not arrive within %v (the sender's device did not share it with the gateway's)", keyWait)
		}
		if err := s.undecryptable(p.Event, why); err != nil {
			return err
		}
		s.unhold(p.Event.ID)
	}
	return nil
}

// nextPendingDeadline is when the first held event is given up, zero when
// none is held.
func (s *session) nextPendingDeadline() time.Time {
	var first time.Time
	for _, p := range s.pending {
		if d := p.First.Add(keyWait); first.IsZero() || d.Before(first) {
			first = d
		}
	}
	return first
}

func (s *session) unhold(ev id.EventID) {
	delete(s.pending, ev)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
	defer cancel()
	_ = s.r.a.kv.Delete(ctx, s.r.a.pendingPrefix(s.user)+enc(string(ev)))
}
