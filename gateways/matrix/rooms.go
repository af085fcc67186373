package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/gateways"
)

// joined is a room the user entered from XMPP (XEP-0045).
type joined struct {
	addr  string // the room's address as the user joined it
	jid   string // the full JID that joined
	nick  string // the user's nick
	nicks map[id.UserID]string
}

// nickOf is a member's nick: their display name, else their localpart;
// the caller holds s.mu.
func (j *joined) nickOf(u id.UserID) string {
	if n := j.nicks[u]; n != "" {
		return n
	}
	local, _, _ := u.Parse()
	return local
}

// IsRoom tells room addresses (#alias%server, !id%server) from users.
func (a *Adapter) IsRoom(address string) bool { return isRoomAddress(address) }

// Join joins the room by alias or id; the occupants (joined members, by
// display name), then the user, then the topic follow.
func (a *Adapter) Join(ctx context.Context, j gateways.Join) error {
	alias, ok := parseRoom(j.Room)
	if !ok {
		return gateways.Reject(gateways.JIDMalformed, "%q is not a Matrix room: write #room:example.org as #room%%example.org", j.Room)
	}
	r, err := a.current()
	if err != nil {
		return err
	}
	s, err := r.session(ctx, gateways.BareJID(j.User))
	if err != nil {
		return err
	}
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	resp, err := s.cli.JoinRoom(ctx, alias, nil)
	if err != nil {
		return classify(err, "joining "+alias)
	}
	members, err := s.cli.JoinedMembers(ctx, resp.RoomID)
	if err != nil {
		return classify(err, "listing the members of "+alias)
	}
	jr := &joined{addr: j.Room, jid: j.User, nick: j.Nick, nicks: map[id.UserID]string{}}
	for u, m := range members.Joined {
		jr.nicks[u] = m.DisplayName
	}
	rec, _ := json.Marshal(roomRecord{Addr: j.Room, JID: j.User, Nick: j.Nick})
	if _, err := a.kv.Put(ctx, a.roomKey(s.user, resp.RoomID), rec); err != nil {
		return fmt.Errorf("matrix: registrations: %w: %w", gateways.ErrNotConnected, err)
	}
	s.mu.Lock()
	s.rooms[resp.RoomID] = jr
	var occupants []string
	for u := range members.Joined {
		if u != s.acc.UserID {
			occupants = append(occupants, jr.nickOf(u))
		}
	}
	s.mu.Unlock()
	for _, n := range occupants {
		if err := r.host.Occupant(ctx, gateways.Occupant{User: j.User, Room: j.Room, Nick: n}); err != nil {
			return err
		}
	}
	if err := r.host.Occupant(ctx, gateways.Occupant{User: j.User, Room: j.Room, Nick: j.Nick, Self: true}); err != nil {
		return err
	}
	var topic event.TopicEventContent
	if err := s.cli.StateEvent(ctx, resp.RoomID, event.StateTopic, "", &topic); err != nil {
		var he mautrix.HTTPError
		if !errors.As(err, &he) || !he.IsStatus(http.StatusNotFound) {
			return classify(err, "reading the topic of "+alias)
		}
	}
	subject := topic.Topic
	return r.host.Deliver(ctx, gateways.Inbound{Groupchat: true, From: j.Room, To: j.User, Subject: &subject})
}

// Leave leaves the room on Matrix.
func (a *Adapter) Leave(ctx context.Context, l gateways.Leave) error {
	r, err := a.current()
	if err != nil {
		return err
	}
	s, err := r.session(ctx, gateways.BareJID(l.User))
	if err != nil {
		return err
	}
	room, _ := s.roomByAddr(l.Room)
	if room != "" {
		if _, err := s.cli.LeaveRoom(ctx, room, &mautrix.ReqLeave{Reason: l.Status}); err != nil {
			return classify(err, "leaving "+l.Room)
		}
		s.mu.Lock()
		delete(s.rooms, room)
		s.mu.Unlock()
		if err := a.kv.Delete(ctx, a.roomKey(s.user, room)); err != nil {
			return fmt.Errorf("matrix: registrations: %w: %w", gateways.ErrNotConnected, err)
		}
	}
	return r.host.Occupant(ctx, gateways.Occupant{User: l.User, Room: l.Room, Nick: l.Nick, Self: true, Left: true, Status: l.Status})
}

// restoreRooms takes back the rooms the user had joined from XMPP before
// a restart, with their current members (changes while the adapter was
// away are not announced as such).
func (s *session) restoreRooms(ctx context.Context) error {
	a := s.r.a
	keys, err := a.kv.ListKeysFiltered(ctx, a.roomPrefix(s.user)+"*")
	if err != nil {
		return err
	}
	for k := range keys.Keys() {
		room, err := dec(strings.TrimPrefix(k, a.roomPrefix(s.user)))
		if err != nil {
			continue
		}
		e, err := a.kv.Get(ctx, k)
		if err != nil {
			return err
		}
		var rec roomRecord
		if json.Unmarshal(e.Value(), &rec) != nil {
			continue
		}
		members, err := s.cli.JoinedMembers(ctx, id.RoomID(room))
		if err != nil {
			var he mautrix.HTTPError
			if errors.As(err, &he) && he.IsStatus(http.StatusForbidden) {
				_ = a.kv.Delete(ctx, k) // no longer a member
				continue
			}
			return err
		}
		jr := &joined{addr: rec.Addr, jid: rec.JID, nick: rec.Nick, nicks: map[id.UserID]string{}}
		for u, m := range members.Joined {
			jr.nicks[u] = m.DisplayName
		}
		s.mu.Lock()
		s.rooms[id.RoomID(room)] = jr
		s.mu.Unlock()
	}
	return nil
}

// adoptRoom takes a room another process joined from XMPP (a record in
// the registrations bucket) when it shows activity here; false when the
// room is not one the user joined from XMPP.
func (s *session) adoptRoom(ctx context.Context, roomID id.RoomID) (bool, error) {
	a := s.r.a
	e, err := a.kv.Get(ctx, a.roomKey(s.user, roomID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var rec roomRecord
	if json.Unmarshal(e.Value(), &rec) != nil {
		return false, nil
	}
	members, err := s.cli.JoinedMembers(ctx, roomID)
	if err != nil {
		return false, err
	}
	jr := &joined{addr: rec.Addr, jid: rec.JID, nick: rec.Nick, nicks: map[id.UserID]string{}}
	for u, m := range members.Joined {
		jr.nicks[u] = m.DisplayName
	}
	s.mu.Lock()
	s.rooms[roomID] = jr
	s.mu.Unlock()
	return true, nil
}

// roomByAddr finds a room the user joined from XMPP by its address.
func (s *session) roomByAddr(addr string) (id.RoomID, *joined) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r, j := range s.rooms {
		if j.addr == addr {
			return r, j
		}
	}
	return "", nil
}

// sendRoom sends a groupchat message (or a subject change) and reflects
// it to the user's clients with the id they gave it.
func (a *Adapter) sendRoom(ctx context.Context, m gateways.Outbound, content func() any, typ event.Type) (gateways.Sent, error) {
	t, err := a.resolve(ctx, m.From, m.To, false)
	if err != nil {
		return gateways.Sent{}, err
	}
	if m.Subject != nil {
		resp, err := t.s.cli.SendStateEvent(ctx, t.room, event.StateTopic, "", &event.TopicEventContent{Topic: *m.Subject},
			mautrix.ReqSendEvent{TransactionID: txnID(m.Key, "topic")})
		if err != nil {
			return gateways.Sent{}, classify(err, "setting the topic")
		}
		return gateways.Sent{IDs: []string{string(resp.EventID)}}, nil
	}
	var sent gateways.Sent
	if len(m.Media) > 0 {
		sent, err = t.sendMedia(ctx, m)
	} else {
		var ev id.EventID
		ev, err = t.send(ctx, typ, content(), m.Key, "message")
		sent.IDs = []string{string(ev)}
	}
	if err != nil || len(sent.IDs) == 0 {
		return sent, err
	}
	t.s.mu.Lock()
	j := t.s.rooms[t.room]
	var nick string
	if j != nil {
		nick = j.nick
	}
	t.s.mu.Unlock()
	if j != nil {
		_ = t.s.r.host.Deliver(ctx, gateways.Inbound{ProviderID: sent.IDs[0], Groupchat: true, From: m.To, To: m.From, Nick: nick,
			Body: m.Body, Media: m.Media, OriginID: m.ID})
	}
	return sent, nil
}

// member hands a membership change in a joined room to the gateway.
func (s *session) member(roomID id.RoomID, j *joined, evt *event.Event) error {
	who := id.UserID(evt.GetStateKey())
	m := evt.Content.AsMember()
	if who == s.acc.UserID {
		if m.Membership != event.MembershipJoin {
			// Left (from XMPP through another process, or from another
			// client) or kicked: the room no longer reaches the user.
			s.mu.Lock()
			delete(s.rooms, roomID)
			s.mu.Unlock()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, hostTimeout)
	defer cancel()
	s.mu.Lock()
	old, was := j.nicks[who]
	oldNick := j.nickOf(who)
	switch m.Membership {
	case event.MembershipJoin:
		j.nicks[who] = m.Displayname
	default:
		delete(j.nicks, who)
	}
	newNick := j.nickOf(who)
	s.mu.Unlock()
	h := s.r.host
	switch {
	case m.Membership == event.MembershipJoin && !was:
		return h.Occupant(ctx, gateways.Occupant{User: j.jid, Room: j.addr, Nick: newNick})
	case m.Membership == event.MembershipJoin && old != m.Displayname && oldNick != newNick:
		if err := h.Occupant(ctx, gateways.Occupant{User: j.jid, Room: j.addr, Nick: oldNick, Left: true, NewNick: newNick}); err != nil {
			return err
		}
		return h.Occupant(ctx, gateways.Occupant{User: j.jid, Room: j.addr, Nick: newNick})
	case m.Membership != event.MembershipJoin && was:
		return h.Occupant(ctx, gateways.Occupant{User: j.jid, Room: j.addr, Nick: oldNick, Left: true, Status: m.Reason})
	}
	return nil
}
