package matrix

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/gateways"
)

// session is one user's Matrix device: a /sync loop and the rooms it
// knows.
type session struct {
	r    *run
	user string // bare JID
	acc  account
	cli  *mautrix.Client // requests
	scli *mautrix.Client // /sync
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}
	// ready is closed after the first sync: the DM rooms are known.
	ready chan struct{}

	mu     sync.Mutex
	direct map[id.UserID][]id.RoomID // m.direct, as the homeserver has it
	dmOf   map[id.RoomID]id.UserID   // the contact of each DM room
	typing map[id.RoomID][]id.UserID // who was typing, per room
	rooms  map[id.RoomID]*joined     // rooms joined from XMPP
	err    error                     // the last sync's failure, nil once one succeeded
	// catchUp: the batch being handled is the first after a start, an
	// outage or a takeover, so its messages are delivered late
	// (XEP-0203). Loop only.
	catchUp bool

	leaseMu  sync.Mutex
	leaseRev uint64     // the revision of our sync lease; 0 when not held
	create   sync.Mutex // one DM room created at a time

	// End-to-end encryption (encryption.go), opened by the lease holder.
	crypt      e2ee                         // nil until open here, or unavailable
	cryptErr   error                        // why it is unavailable, once known
	cryptReady chan struct{}                // closed once crypt or cryptErr is set
	enc        map[id.RoomID]bool           // whether rooms are encrypted, as known
	forget     bool                         // the device was logged out: delete its state at the end
	pending    map[id.EventID]*pendingEvent // held for their keys; loop only
}

func parseAccount(b []byte) (account, error) {
	var acc account
	err := json.Unmarshal(b, &acc)
	return acc, err
}

// newSession starts user's sync loop. The caller holds r.mu.
func (r *run) newSession(user string, acc account) (*session, error) {
	cli, err := r.a.client(acc)
	if err != nil {
		return nil, err
	}
	scli, _ := r.a.client(acc)
	scli.Client = r.a.sync
	ctx, cancel := context.WithCancel(r.ctx)
	s := &session{
		r: r, user: user, acc: acc, cli: cli, scli: scli, ctx: ctx, stop: cancel,
		done: make(chan struct{}), ready: make(chan struct{}),
		direct: map[id.UserID][]id.RoomID{}, dmOf: map[id.RoomID]id.UserID{}, typing: map[id.RoomID][]id.UserID{},
		rooms: map[id.RoomID]*joined{}, cryptReady: make(chan struct{}), enc: map[id.RoomID]bool{},
		pending: map[id.EventID]*pendingEvent{},
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(s.done)
		s.loop()
	}()
	return s, nil
}

// waitReady waits for the first sync, so that DM rooms are known.
func (s *session) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	default:
	}
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		last := s.err
		s.mu.Unlock()
		if last != nil {
			return fmt.Errorf("matrix: %s: not connected to the homeserver (%v): %w", s.acc.UserID, last, gateways.ErrNotConnected)
		}
		return fmt.Errorf("matrix: %s: %w: %w", s.acc.UserID, gateways.ErrNotConnected, ctx.Err())
	case <-s.ctx.Done():
		return errStopped
	}
}

// Backoff of a failing sync.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// loop syncs until the session ends. The token of a batch is stored once
// everything in it was handed to the gateway, so a restart resumes after
// the last batch delivered; a batch handed over twice (a crash between the
// two) is deduplicated by event id on the bus. Only the process holding
// the user's sync lease (lease.go) syncs; the others serve sends.
func (s *session) loop() {
	a := s.r.a
	defer s.releaseLease()
	defer s.closeCrypto()
	backoff := minBackoff
	prepared := false // m.direct and the rooms are loaded
	var since string
	var lctx context.Context // ends when the lease is lost; nil when not held
	catchUp := true          // the next batch is the first after a start, an outage or a takeover
	for s.ctx.Err() == nil {
		var resp *mautrix.RespSync
		var err error
		if !prepared {
			// An incremental sync carries m.direct only when it changes.
			if err = s.loadDirect(); err == nil {
				err = s.restoreRooms(s.ctx)
			}
			if err == nil {
				prepared = true
				close(s.ready)
			}
		}
		if err == nil && (lctx == nil || lctx.Err() != nil) {
			lctx = nil
			var held bool
			if held, err = s.tryLease(s.ctx); err == nil && !held {
				// Another process syncs this user; sends work from here
				// too. Look again when its lease may have run out.
				if !s.pause(leaseRenew) {
					return
				}
				continue
			}
			if err == nil {
				// The holder before us may have gone further.
				since, err = getString(s.ctx, a.kv, a.sinceKey(s.user))
				if err == nil {
					lctx = s.holdLease()
					catchUp = true
				}
			}
		}
		if err == nil && since != "" && !s.cryptoOpened() {
			// After the first sync of a new login, whose events are not
			// delivered (none can be encrypted for a device whose keys
			// are not uploaded yet): opening takes a moment, and what is
			// said meanwhile must not count as history.
			err = s.openCrypto()
		}
		if err == nil {
			wait := a.cfg.SyncTimeout
			if d := s.nextPendingDeadline(); !d.IsZero() {
				wait = max(min(wait, time.Until(d)+10*time.Millisecond), 0)
			}
			timeout := int(wait / time.Millisecond)
			if catchUp {
				timeout = 0
			}
			resp, err = s.scli.SyncRequest(lctx, timeout, since, "", false, event.PresenceOffline)
		}
		if err == nil {
			s.catchUp = catchUp
			err = s.handle(resp, since)
		}
		if err == nil && resp.NextBatch != "" && resp.NextBatch != since {
			// Stored even while stopping: the batch was handed over, and a
			// stop that raced this write would hand it over again after
			// a restart (dedup on the bus lasts only its window).
			pctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
			_, perr := a.kv.Put(pctx, a.sinceKey(s.user), []byte(resp.NextBatch))
			cancel()
			if perr != nil {
				err = fmt.Errorf("storing the sync token: %w", perr)
			} else {
				since = resp.NextBatch
			}
		}
		if err == nil {
			err = s.retryPending()
		}
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			if lctx != nil && lctx.Err() != nil {
				a.log.Info("another process took over the user's Matrix sync", "user", s.user)
				continue
			}
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			if unauthorized(err) {
				a.log.Warn("the homeserver no longer accepts this login; log in again", "user", s.user, "mxid", s.acc.UserID)
				_ = s.r.host.Deliver(s.ctx, gateways.Notice(s.user, "Matrix: the homeserver no longer accepts the gateway's login for "+string(s.acc.UserID)+"; log in again."))
				return
			}
			catchUp = true
			a.log.Debug("Matrix sync failed", "user", s.user, "error", err)
			if !s.pause(backoff) {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = minBackoff
		catchUp = false
		s.mu.Lock()
		s.err = nil
		s.mu.Unlock()
	}
}

// pause waits d; false when the session ended meanwhile.
func (s *session) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func unauthorized(err error) bool {
	var he mautrix.HTTPError
	return errors.As(err, &he) && he.RespError != nil && he.RespError.ErrCode == mautrix.MUnknownToken.ErrCode
}

// handle hands one sync batch to the gateway. since is the batch's
// token; "" for the first sync of a new login, whose history is not
// delivered (the user starts from now).
func (s *session) handle(resp *mautrix.RespSync, since string) error {
	initial := since == ""
	if c := s.crypto(); c != nil {
		c.sync(s.ctx, resp, since) // room keys before the rooms' events
	}
	for _, evt := range resp.AccountData.Events {
		if evt.Type.Type == event.AccountDataDirectChats.Type {
			_ = evt.Content.ParseRaw(event.AccountDataDirectChats)
			s.setDirect(*evt.Content.AsDirectChats())
		}
	}
	for roomID, inv := range resp.Rooms.Invite {
		if err := s.invited(roomID, inv); err != nil {
			return err
		}
	}
	// Rooms in a stable order, events in theirs.
	rooms := make([]id.RoomID, 0, len(resp.Rooms.Join))
	for roomID := range resp.Rooms.Join {
		rooms = append(rooms, roomID)
	}
	slices.Sort(rooms)
	for _, roomID := range rooms {
		jr := resp.Rooms.Join[roomID]
		s.mu.Lock()
		_, dm := s.dmOf[roomID]
		_, mine := s.rooms[roomID]
		s.mu.Unlock()
		if !dm && !mine && !initial {
			// Joined from XMPP through another adapter process?
			if _, err := s.adoptRoom(s.ctx, roomID); err != nil {
				return err
			}
		}
		for _, evt := range jr.State.Events {
			evt.RoomID = roomID
			s.noteState(evt)
			s.learn(roomID, evt)
		}
		for _, evt := range jr.Timeline.Events {
			evt.RoomID = roomID
			if evt.StateKey != nil {
				s.noteState(evt)
				s.learn(roomID, evt)
			}
			if initial {
				continue
			}
			if evt.Type == event.EventEncrypted && evt.Sender != s.acc.UserID {
				d, err := s.readable(evt)
				if err != nil {
					return err
				}
				if d == nil {
					continue // held for its key, or the user was told
				}
				evt = d
			}
			if err := s.timeline(evt); err != nil {
				return err
			}
		}
		if initial {
			continue
		}
		for _, evt := range jr.Ephemeral.Events {
			evt.RoomID = roomID
			s.ephemeral(evt)
		}
	}
	return nil
}

// loadDirect reads m.direct from the homeserver.
func (s *session) loadDirect() error {
	ctx, cancel := context.WithTimeout(s.ctx, s.r.a.cfg.RequestTimeout)
	defer cancel()
	var d event.DirectChatsEventContent
	if err := s.cli.GetAccountData(ctx, event.AccountDataDirectChats.Type, &d); err != nil {
		var he mautrix.HTTPError
		if errors.As(err, &he) && he.IsStatus(http.StatusNotFound) {
			return nil // none yet
		}
		return err
	}
	s.setDirect(d)
	return nil
}

// setDirect takes the m.direct account data as the homeserver has it.
func (s *session) setDirect(d event.DirectChatsEventContent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.direct = map[id.UserID][]id.RoomID(d)
	for u, rooms := range s.direct {
		for _, r := range rooms {
			s.dmOf[r] = u
		}
	}
}

// learn notes what a state event says about a room: who the other member
// of a DM is when m.direct does not say.
func (s *session) learn(roomID id.RoomID, evt *event.Event) {
	if evt.Type != event.StateMember {
		return
	}
	_ = evt.Content.ParseRaw(evt.Type)
	m := evt.Content.AsMember()
	if m == nil {
		return
	}
	who := id.UserID(evt.GetStateKey())
	if who == s.acc.UserID && m.IsDirect && evt.Sender != s.acc.UserID {
		s.mu.Lock()
		if _, ok := s.dmOf[roomID]; !ok {
			s.dmOf[roomID] = evt.Sender
		}
		s.mu.Unlock()
	}
}

// invited accepts an invitation to a direct chat, and records it in
// m.direct as clients do. An invitation to another room becomes a
// XEP-0249 invitation from the inviter; the user's client joins it (or
// not) like any room.
func (s *session) invited(roomID id.RoomID, inv *mautrix.SyncInvitedRoom) error {
	var inviter id.UserID
	var reason, alias, name string
	direct := false
	for _, evt := range inv.State.Events {
		_ = evt.Content.ParseRaw(evt.Type)
		switch evt.Type {
		case event.StateMember:
			if evt.GetStateKey() != string(s.acc.UserID) {
				continue
			}
			if m := evt.Content.AsMember(); m.Membership == event.MembershipInvite {
				inviter, direct, reason = evt.Sender, m.IsDirect, m.Reason
			}
		case event.StateCanonicalAlias:
			alias = string(evt.Content.AsCanonicalAlias().Alias)
		case event.StateRoomName:
			name = evt.Content.AsRoomName().Name
		}
	}
	if inviter == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.r.a.cfg.RequestTimeout)
	defer cancel()
	if !direct {
		room := roomAddress(string(roomID))
		if alias != "" {
			room = roomAddress(alias)
		}
		if reason == "" {
			reason = string(inviter) + " invites you to " + cmp.Or(name, alias, string(roomID))
		}
		return s.r.host.Deliver(ctx, gateways.Inbound{
			ProviderID: "invite:" + string(roomID) + ":" + string(inviter),
			From:       userAddress(inviter), To: s.user, Invite: room, Body: reason,
		})
	}
	if _, err := s.cli.JoinRoomByID(ctx, roomID); err != nil {
		s.r.a.log.Warn("joining a direct chat failed", "user", s.user, "room", roomID, "error", err)
		return nil
	}
	s.mu.Lock()
	s.dmOf[roomID] = inviter
	s.mu.Unlock()
	s.addDirect(ctx, inviter, roomID)
	return nil
}

// addDirect adds a DM room to the user's m.direct on the homeserver.
func (s *session) addDirect(ctx context.Context, contact id.UserID, roomID id.RoomID) {
	var d event.DirectChatsEventContent
	if err := s.cli.GetAccountData(ctx, event.AccountDataDirectChats.Type, &d); err != nil {
		var he mautrix.HTTPError
		if !errors.As(err, &he) || !he.IsStatus(http.StatusNotFound) {
			s.r.a.log.Warn("reading m.direct failed", "user", s.user, "error", err)
			return
		}
	}
	if d == nil {
		d = event.DirectChatsEventContent{}
	}
	if slices.Contains(d[contact], roomID) {
		return
	}
	d[contact] = append(d[contact], roomID)
	if err := s.cli.SetAccountData(ctx, event.AccountDataDirectChats.Type, d); err != nil {
		s.r.a.log.Warn("updating m.direct failed", "user", s.user, "error", err)
		return
	}
	s.setDirect(d)
}

// dmRoom returns the DM room with contact, "" when there is none yet.
func (s *session) dmRoom(contact id.UserID) id.RoomID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rooms := s.direct[contact]; len(rooms) > 0 {
		return rooms[len(rooms)-1]
	}
	for r, u := range s.dmOf {
		if u == contact {
			return r
		}
	}
	return ""
}

// ensureDM returns the DM room with contact, creating it (and inviting
// them) when there is none, as Element does.
func (s *session) ensureDM(ctx context.Context, contact id.UserID) (id.RoomID, error) {
	if r := s.dmRoom(contact); r != "" {
		return r, nil
	}
	s.create.Lock()
	defer s.create.Unlock()
	if r := s.dmRoom(contact); r != "" {
		return r, nil
	}
	// Another adapter process may have made or accepted one since this
	// one read m.direct.
	if err := s.loadDirect(); err != nil {
		return "", classify(err, "reading m.direct")
	}
	if r := s.dmRoom(contact); r != "" {
		return r, nil
	}
	// Homeservers invite users who do not exist without complaint; their
	// profile tells (a refusal to show it, as some servers do to users
	// who share no room, is not taken as an answer).
	if _, err := s.cli.GetProfile(ctx, contact); err != nil {
		var he mautrix.HTTPError
		if errors.As(err, &he) && he.IsStatus(http.StatusNotFound) {
			return "", gateways.Reject(gateways.ItemNotFound, "there is no Matrix user %s", contact)
		}
		if !errors.As(err, &he) || he.Response == nil || he.Response.StatusCode >= 500 {
			return "", classify(err, "looking up "+string(contact))
		}
	}
	req := &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{contact}}
	encrypted := s.canEncryptFor(ctx, contact)
	if encrypted {
		req.InitialState = []*event.Event{{Type: event.StateEncryption, StateKey: new(string),
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}
	}
	resp, err := s.cli.CreateRoom(ctx, req)
	if err != nil {
		return "", classify(err, "creating a direct chat with "+string(contact))
	}
	s.mu.Lock()
	s.dmOf[resp.RoomID] = contact
	s.enc[resp.RoomID] = encrypted
	s.mu.Unlock()
	if encrypted {
		if c := s.crypto(); c != nil {
			evt := *req.InitialState[0]
			evt.RoomID = resp.RoomID
			c.state(ctx, &evt)
		}
	}
	s.addDirect(ctx, contact, resp.RoomID)
	return resp.RoomID, nil
}

// canEncryptFor tells whether a new direct chat with contact is created
// encrypted, as Element decides: when the device's encryption works here
// and the contact has a device with keys (one without could not read it).
func (s *session) canEncryptFor(ctx context.Context, contact id.UserID) bool {
	t := time.NewTimer(5 * time.Second) // opening at the start of the session
	defer t.Stop()
	select {
	case <-s.cryptReady:
	case <-t.C:
	case <-ctx.Done():
	}
	if s.crypto() == nil {
		return false
	}
	resp, err := s.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: map[id.UserID]mautrix.DeviceIDList{contact: nil}})
	if err != nil {
		return false
	}
	for _, d := range resp.DeviceKeys[contact] {
		if len(d.Keys) > 0 {
			return true
		}
	}
	return false
}

// classify turns a failed request into what the runner acts on.
func classify(err error, what string) error {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		code := he.Response.StatusCode
		text := what + " failed"
		if he.RespError != nil {
			text += ": " + he.RespError.Err
		}
		switch {
		case code == http.StatusTooManyRequests || code >= 500:
			return fmt.Errorf("matrix: %s: %w: %w", what, gateways.ErrNotConnected, err)
		case code == http.StatusUnauthorized:
			return &gateways.Error{Condition: gateways.RegistrationRequired, Text: "the homeserver no longer accepts the gateway's login; log in again", Permanent: true, Err: err}
		case code == http.StatusForbidden:
			return &gateways.Error{Condition: gateways.Forbidden, Text: text, Permanent: true, Err: err}
		case code == http.StatusNotFound:
			return &gateways.Error{Condition: gateways.ItemNotFound, Text: text, Permanent: true, Err: err}
		default:
			return &gateways.Error{Condition: gateways.NotAcceptable, Text: text, Permanent: true, Err: err}
		}
	}
	return fmt.Errorf("matrix: %s: %w: %w", what, gateways.ErrNotConnected, err)
}
