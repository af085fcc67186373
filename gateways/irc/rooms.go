package irc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
)

const (
	// recentTTL is how long an error reply is matched to the message sent
	// to its target before it.
	recentTTL = time.Minute
	// CTCP queries are answered at most ctcpBurst at once, then one a
	// second.
	ctcpBurst = 3
)

type roomState int

const (
	roomJoining   roomState = iota // JOIN sent; Join calls wait for the names list
	roomJoined                     // the names list arrived
	roomRejoining                  // was joined when the connection dropped
)

// room is a channel a user is in (or entering) and what they know of it.
type room struct {
	name    string // as the user asked for it: the room's address
	state   roomState
	jids    []string // the user's full JIDs in the room, in join order
	members map[string]*member
	old     map[string]*member // before a reconnect, to tell who left meanwhile
	topic   string
	waiters []chan error // Join calls waiting for the outcome
}

// member is an occupant: nick and membership prefixes ("@", "+"…).
type member struct {
	nick, prefixes string
}

func newRoom(name string) *room {
	return &room{name: name, members: map[string]*member{}}
}

func (r *room) addJID(j string) {
	if !slices.Contains(r.jids, j) {
		r.jids = append(r.jids, j)
	}
}

func (r *room) removeJID(j string) {
	r.jids = slices.DeleteFunc(r.jids, func(x string) bool { return x == j })
}

func (r *room) removeWaiter(w chan error) {
	r.waiters = slices.DeleteFunc(r.waiters, func(x chan error) bool { return x == w })
}

// disconnected keeps a joined room for its rejoin.
func (r *room) disconnected() {
	if r.state == roomJoined {
		r.state = roomRejoining
		r.old = r.members
	}
	r.members = map[string]*member{}
}

// sortedMembers lists members by nick, for a stable order.
func (r *room) sortedMembers() []*member {
	ms := make([]*member, 0, len(r.members))
	for _, m := range r.members {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].nick < ms[j].nick })
	return ms
}

func sortedRooms(rooms map[string]*room) []*room {
	rs := make([]*room, 0, len(rooms))
	for _, r := range rooms {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].name < rs[j].name })
	return rs
}

// role maps membership prefixes to an XEP-0045 role: channel operators
// (and the owner, admin and half-op prefixes of some servers) moderate;
// everyone else, voiced or not, participates.
func role(prefixes string) string {
	if strings.ContainsAny(prefixes, "~&@%") {
		return "moderator"
	}
	return "participant"
}

// roster is what a client entering the room sees: the others, itself
// (completing the join), then the subject.
func (r *room) roster(jid, self string) []effect {
	var effs []effect
	selfPrefixes := ""
	for _, m := range r.sortedMembers() {
		if fold(m.nick) == fold(self) {
			selfPrefixes = m.prefixes
			continue
		}
		effs = append(effs, effect{occ: &gateways.Occupant{User: jid, Room: r.name, Nick: m.nick, Role: role(m.prefixes)}})
	}
	effs = append(effs, effect{occ: &gateways.Occupant{User: jid, Room: r.name, Nick: self, Self: true, Role: role(selfPrefixes)}})
	topic := r.topic
	effs = append(effs, effect{in: &gateways.Inbound{Groupchat: true, From: r.name, To: jid, Subject: &topic}})
	return effs
}

// effect is one hand-over to the gateway.
type effect struct {
	occ *gateways.Occupant
	in  *gateways.Inbound
	st  *gateways.Status
}

// outbox collects what handling one message produces: effects in order,
// Join calls to wake once they are handed over, replies to send.
type outbox struct {
	effects []effect
	wakes   []wake
	replies []string
}

type wake struct {
	ch  chan error
	err error
}

func (o *outbox) occupant(oc gateways.Occupant) { o.effects = append(o.effects, effect{occ: &oc}) }
func (o *outbox) deliver(in gateways.Inbound)   { o.effects = append(o.effects, effect{in: &in}) }

// emit hands effects to the gateway in order. A failure is logged (IRC
// cannot redeliver) and the first is returned.
func (s *session) emit(effs []effect) error {
	h := s.r.host
	var first error
	for _, e := range effs {
		ctx, cancel := context.WithTimeout(s.ctx, hostTimeout)
		var err error
		switch {
		case e.occ != nil:
			err = h.Occupant(ctx, *e.occ)
		case e.in != nil:
			err = h.Deliver(ctx, *e.in)
		case e.st != nil:
			err = h.Report(ctx, *e.st)
		}
		cancel()
		if err != nil {
			s.log.Warn("could not hand IRC traffic to the gateway", "err", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// handle applies one message from the server and hands what it means to
// the gateway.
func (s *session) handle(c *conn, m message) {
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	var o outbox
	s.mu.Lock()
	s.apply(c, m, &o)
	s.mu.Unlock()
	err := s.emit(o.effects)
	for _, w := range o.wakes {
		if w.err == nil && err != nil {
			w.err = fmt.Errorf("irc: joined, but the gateway did not take the occupants: %w", err)
		}
		w.ch <- w.err
	}
	if len(o.replies) > 0 {
		c.enqueue(o.replies...)
	}
}

// apply updates the session for m; s.mu is held.
func (s *session) apply(c *conn, m message, o *outbox) {
	switch m.command {
	case "PING":
		c.sendPriority(line("PONG", m.trailing()))
	case "005":
		if len(m.params) > 2 {
			c.isup.parse(m.params[1 : len(m.params)-1])
			s.a.learn(c.isup)
		}
	case "NICK":
		s.onNick(c, m.nick(), m.param(0), o)
	case "JOIN":
		s.onJoin(c, m, o)
	case "PART":
		s.onLeft(c, m.param(0), m.nick(), cleanText(m.param(1)), o)
	case "KICK":
		status := "Kicked by " + m.nick()
		if reason := cleanText(m.param(2)); reason != "" && reason != m.nick() {
			status += ": " + reason
		}
		s.onLeft(c, m.param(0), m.param(1), status, o)
	case "QUIT":
		for _, r := range sortedRooms(s.rooms) {
			s.memberLeft(r, m.nick(), cleanText(m.param(0)), o)
		}
	case "MODE":
		s.onMode(c, m, o)
	case "TOPIC":
		if r := s.room(m.param(0)); r != nil {
			r.topic = cleanText(m.param(1))
			if r.state == roomJoined {
				topic := r.topic
				for _, j := range r.jids {
					o.deliver(gateways.Inbound{Groupchat: true, From: r.name, Nick: m.nick(), To: j, Subject: &topic})
				}
			}
		}
	case "331": // no topic
		if r := s.room(m.param(1)); r != nil {
			r.topic = ""
		}
	case "332": // topic
		if r := s.room(m.param(1)); r != nil {
			r.topic = cleanText(m.trailing())
		}
	case "353": // names: "= #chan :@alice +bob carol"; some servers omit "="
		ch := m.param(2)
		if len(m.params) < 4 {
			ch = m.param(1)
		}
		if r := s.room(ch); r != nil && r.state != roomJoined {
			for _, e := range strings.Fields(m.trailing()) {
				p, n := c.isup.splitPrefix(e)
				if n != "" {
					r.members[fold(n)] = &member{nick: n, prefixes: p}
				}
			}
		}
	case "366": // end of names
		s.onNamesEnd(c, m.param(1), o)
	case "PRIVMSG", "NOTICE":
		s.onMessage(c, m, o)
	case "INVITE":
		if from := m.nick(); from != "" {
			o.deliver(gateways.Inbound{From: from, To: s.user, Body: fmt.Sprintf("%s invites you to %s", from, m.param(1))})
		}
	case "ERROR":
		s.log.Info("the IRC server is closing the connection", "reason", m.trailing())
	default:
		if m.numeric() && (m.command[0] == '4' || m.command[0] == '5') {
			s.onError(c, m, o)
		}
	}
}

// room finds a room by channel name; s.mu is held.
func (s *session) room(name string) *room {
	return s.rooms[fold(name)]
}

func (s *session) onJoin(c *conn, m message, o *outbox) {
	nick := m.nick()
	r := s.room(m.param(0))
	if r == nil {
		return // a channel the user did not ask for (server autojoin)
	}
	if fold(nick) == fold(c.nick) {
		r.members = map[string]*member{}
		r.topic = "" // until the server says otherwise (332)
		if _, uh, ok := strings.Cut(m.prefix, "!"); ok && strings.Contains(uh, "@") {
			c.userHost = len(uh) // the server's prefix on our lines, exactly
		}
		return
	}
	r.members[fold(nick)] = &member{nick: nick}
	if r.state == roomJoined {
		for _, j := range r.jids {
			o.occupant(gateways.Occupant{User: j, Room: r.name, Nick: nick, Role: role("")})
		}
	}
}

// onNamesEnd completes a join: occupants, the user, the subject, and for a
// rejoin who left meanwhile and a note that it happened.
func (s *session) onNamesEnd(c *conn, ch string, o *outbox) {
	r := s.room(ch)
	if r == nil || r.state == roomJoined {
		return
	}
	rejoin := r.state == roomRejoining
	r.state = roomJoined
	for _, j := range r.jids {
		if rejoin {
			for _, m := range sortedMembers(r.old) {
				if _, still := r.members[fold(m.nick)]; !still && fold(m.nick) != fold(c.nick) {
					o.occupant(gateways.Occupant{User: j, Room: r.name, Nick: m.nick, Left: true})
				}
			}
		}
		o.effects = append(o.effects, r.roster(j, c.nick)...)
		if rejoin {
			o.deliver(gateways.Inbound{Groupchat: true, From: r.name, To: j, Body: "Reconnected; rejoined " + r.name})
		}
	}
	r.old = nil
	for _, w := range r.waiters {
		o.wakes = append(o.wakes, wake{ch: w})
	}
	r.waiters = nil
}

func sortedMembers(ms map[string]*member) []*member {
	r := room{members: ms}
	return r.sortedMembers()
}

// onNick renames an occupant in every room: the user's own nick, or
// another's.
func (s *session) onNick(c *conn, old, nick string, o *outbox) {
	self := fold(old) == fold(c.nick)
	if self {
		c.nick = nick
	}
	for _, r := range sortedRooms(s.rooms) {
		m := r.members[fold(old)]
		if m == nil {
			continue
		}
		delete(r.members, fold(old))
		m.nick = nick
		r.members[fold(nick)] = m
		if r.state != roomJoined {
			continue
		}
		for _, j := range r.jids {
			o.occupant(gateways.Occupant{User: j, Room: r.name, Nick: old, Left: true, NewNick: nick, Self: self, Role: role(m.prefixes)})
			o.occupant(gateways.Occupant{User: j, Room: r.name, Nick: nick, Self: self, Role: role(m.prefixes)})
		}
	}
}

// onLeft handles PART and KICK: of the user (the room is gone) or of
// another occupant.
func (s *session) onLeft(c *conn, ch, nick, status string, o *outbox) {
	r := s.room(ch)
	if r == nil {
		return
	}
	if fold(nick) != fold(c.nick) {
		s.memberLeft(r, nick, status, o)
		return
	}
	// Parted by the server or kicked; Leave forgets the room before it
	// parts, so this is not the user's own doing.
	if r.state == roomJoined {
		for _, j := range r.jids {
			o.occupant(gateways.Occupant{User: j, Room: r.name, Nick: c.nick, Self: true, Left: true, Status: status})
		}
	}
	for _, w := range r.waiters {
		o.wakes = append(o.wakes, wake{ch: w, err: gateways.Reject(gateways.ServiceUnavailable, "removed from %s while joining: %s", r.name, status)})
	}
	delete(s.rooms, fold(ch))
}

// memberLeft removes another occupant.
func (s *session) memberLeft(r *room, nick, status string, o *outbox) {
	m := r.members[fold(nick)]
	if m == nil {
		return
	}
	delete(r.members, fold(nick))
	if r.state != roomJoined {
		return
	}
	for _, j := range r.jids {
		o.occupant(gateways.Occupant{User: j, Room: r.name, Nick: m.nick, Left: true, Status: status, Role: role(m.prefixes)})
	}
}

// onMode follows membership modes (+o, -v…) so that roles stay right.
func (s *session) onMode(c *conn, m message, o *outbox) {
	r := s.room(m.param(0))
	if r == nil || !isChannel(m.param(0), c.isup.chanTypes) {
		return
	}
	modes, args := m.param(1), []string{}
	if len(m.params) > 2 {
		args = m.params[2:]
	}
	adding := true
	var changed []*member
	for i := 0; i < len(modes); i++ {
		ch := modes[i]
		switch ch {
		case '+':
			adding = true
			continue
		case '-':
			adding = false
			continue
		}
		if !c.isup.modeTakesParam(ch, adding) {
			continue
		}
		if len(args) == 0 {
			break
		}
		arg := args[0]
		args = args[1:]
		k := strings.IndexByte(c.isup.prefixModes, ch)
		mem := r.members[fold(arg)]
		if k < 0 || k >= len(c.isup.prefixChars) || mem == nil {
			continue
		}
		before := role(mem.prefixes)
		p := c.isup.prefixChars[k]
		if adding && strings.IndexByte(mem.prefixes, p) < 0 {
			mem.prefixes += string(p)
		} else if !adding {
			mem.prefixes = strings.ReplaceAll(mem.prefixes, string(p), "")
		}
		if role(mem.prefixes) != before && !slices.Contains(changed, mem) {
			changed = append(changed, mem)
		}
	}
	if r.state != roomJoined {
		return
	}
	for _, mem := range changed {
		for _, j := range r.jids {
			o.occupant(gateways.Occupant{User: j, Room: r.name, Nick: mem.nick, Self: fold(mem.nick) == fold(c.nick), Role: role(mem.prefixes)})
		}
	}
}

// onMessage delivers PRIVMSG and NOTICE from people: to the user, or into
// a room. CTCP ACTION is /me; other CTCP requests are answered, never
// shown; notices from the server are not messages for the user.
func (s *session) onMessage(c *conn, m message, o *outbox) {
	from, target, text := m.nick(), m.param(0), m.trailing()
	if from == "" {
		s.log.Debug("server notice", "text", text)
		return
	}
	if fold(from) == fold(c.nick) {
		return // our own line echoed back
	}
	if len(target) > 1 && strings.IndexByte(c.isup.prefixChars, target[0]) >= 0 && s.room(target[1:]) != nil {
		target = target[1:] // "@#chan": to the channel's operators
	}
	if cmd, args, ok := parseCTCP(text); ok {
		if cmd != "ACTION" {
			// Answers are rate limited, so that a flood of queries cannot
			// fill the user's send queue.
			if m.command == "PRIVMSG" && !isChannel(target, c.isup.chanTypes) {
				if reply := ctcpReply(cmd, args); reply != "" && s.ctcp.Allow() {
					o.replies = append(o.replies, line("NOTICE", from, reply))
				}
			}
			return
		}
		text = "/me " + args
	}
	body := cleanText(text)
	if strings.TrimSpace(body) == "" {
		return
	}
	msgid := m.tags["msgid"]
	if isChannel(target, c.isup.chanTypes) {
		r := s.room(target)
		if r == nil || r.state != roomJoined {
			return
		}
		for _, j := range r.jids {
			o.deliver(gateways.Inbound{ProviderID: providerID(msgid, j), Groupchat: true, From: r.name, Nick: from, To: j, Body: body})
		}
		return
	}
	o.deliver(gateways.Inbound{ProviderID: providerID(msgid, s.user), From: from, To: s.user, Body: body})
}

// providerID makes the server's message id unique per recipient: one
// channel line reaches several users of the gateway with the same id.
func providerID(msgid, to string) string {
	if msgid == "" {
		return "" // IRC has no ids of its own: nothing to deduplicate by
	}
	return "irc:" + msgid + ":" + to
}

// ctcpReply answers the CTCP queries clients commonly send.
func ctcpReply(cmd, args string) string {
	switch cmd {
	case "VERSION":
		return ctcp("VERSION", "xmppgw IRC gateway")
	case "PING":
		if len(args) > 64 {
			args = args[:64]
		}
		return ctcp("PING", safeParam(args))
	case "TIME":
		return ctcp("TIME", time.Now().UTC().Format(time.RFC1123))
	case "CLIENTINFO":
		return ctcp("CLIENTINFO", "ACTION CLIENTINFO PING TIME VERSION")
	}
	return ""
}

// onError handles an error reply: a refused join, a refused nick change,
// or a message that could not be delivered.
func (s *session) onError(c *conn, m message, o *outbox) {
	c.penalize(errorPenalty)
	subject, text := m.param(1), m.trailing()
	switch m.command {
	case "431", "432", "433", "436":
		o.deliver(gateways.Notice(s.user, fmt.Sprintf("Cannot change your IRC nick to %s: %s", subject, text)))
		return
	}
	if r := s.room(subject); r != nil && r.state != roomJoined {
		err := joinError(m.command, r.name, text)
		if r.state == roomRejoining {
			for _, j := range r.jids {
				o.occupant(gateways.Occupant{User: j, Room: r.name, Nick: c.nick, Self: true, Left: true, Status: "Could not rejoin: " + text})
			}
		}
		for _, w := range r.waiters {
			o.wakes = append(o.wakes, wake{ch: w, err: err})
		}
		delete(s.rooms, fold(subject))
		return
	}
	if ref, ok := s.recent[fold(subject)]; ok && time.Since(ref.at) < recentTTL {
		delete(s.recent, fold(subject))
		o.effects = append(o.effects, effect{st: &gateways.Status{
			Ref: ref.id, Key: ref.key, User: ref.from, Contact: ref.to, State: bus.StateFailed, Code: m.command, Reason: text,
		}})
		return
	}
	s.log.Debug("IRC error reply", "code", m.command, "params", m.params)
}

// joinError is the permanent error for a refused join, as XEP-0045 words
// the same refusals.
func joinError(code, ch, text string) error {
	cond, why := gateways.ServiceUnavailable, text
	switch code {
	case "403", "476", "479": // no such channel, bad mask, illegal name
		cond, why = gateways.ItemNotFound, "no such channel"
	case "405": // too many channels
		cond, why = gateways.NotAllowed, "you are in too many channels"
	case "471": // full (+l)
		cond, why = gateways.ServiceUnavailable, "the channel is full"
	case "473": // invite only (+i)
		cond, why = gateways.NotAllowed, "the channel is invite only"
	case "474": // banned (+b)
		cond, why = gateways.Forbidden, "you are banned from the channel"
	case "475": // key (+k)
		cond, why = gateways.Forbidden, "the channel needs a key, which the gateway cannot send"
	case "477", "489": // registered nicks only, TLS only
		cond = gateways.Forbidden
	}
	return &gateways.Error{Condition: cond, Text: fmt.Sprintf("cannot join %s: %s (%s)", ch, why, text), Code: code, Permanent: true}
}

// remember notes an outbound message for error replies; s.mu is held.
func (s *session) remember(m gateways.Outbound) {
	now := time.Now()
	if len(s.recent) > 64 {
		for k, ref := range s.recent {
			if now.Sub(ref.at) > recentTTL {
				delete(s.recent, k)
			}
		}
	}
	s.recent[fold(m.To)] = sentRef{id: m.ID, key: m.Key, from: m.From, to: m.To, at: now}
}

// learn keeps what a server announced for the whole adapter.
func (a *Adapter) learn(is isupport) {
	if is.chanTypes != "" {
		ct := is.chanTypes
		a.chanTypes.Store(&ct)
	}
	if is.nickLen > 0 {
		n := int32(min(is.nickLen, MaxNickLength))
		if old := a.nickLen.Swap(n); old != n && a.reg != nil {
			go func() { // learn runs on a connection's reader
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				a.reg.keepNickLen(ctx, int(n))
			}()
		}
	}
}

// privmsgLines turns a body into PRIVMSG lines that fit once the server
// has put our prefix on them; "/me …" becomes CTCP ACTION.
func privmsgLines(nick string, userHost int, target, body string) []string {
	action := body == "/me" || strings.HasPrefix(body, "/me ")
	overhead := 0
	if action {
		body = strings.TrimPrefix(strings.TrimPrefix(body, "/me"), " ")
		overhead = len(ctcp("ACTION", "x")) - 1
	}
	parts := splitText(body, textLimit(nick, userHost, "PRIVMSG", target, overhead))
	if action && len(parts) == 0 {
		parts = []string{""}
	}
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if action {
			p = ctcp("ACTION", p)
		}
		out = append(out, "PRIVMSG "+target+" :"+p)
	}
	return out
}

// join enters a room, or replays it to a client of the user entering a
// room the user is already in.
func (s *session) join(ctx context.Context, j gateways.Join) error {
	c, err := s.ready(ctx)
	if err != nil {
		return err
	}
	key := fold(j.Room)
	s.emitMu.Lock()
	s.mu.Lock()
	r := s.rooms[key]
	if r != nil && r.state == roomJoined {
		r.addJID(j.User)
		effs := r.roster(j.User, c.nick)
		s.mu.Unlock()
		err := s.emit(effs)
		s.emitMu.Unlock()
		return err
	}
	created := r == nil
	if created {
		r = newRoom(j.Room)
		s.rooms[key] = r
	}
	r.addJID(j.User)
	w := make(chan error, 1)
	r.waiters = append(r.waiters, w)
	s.mu.Unlock()
	s.emitMu.Unlock()

	if created {
		if err := c.send(ctx, line("JOIN", j.Room)); err != nil {
			s.mu.Lock()
			r.removeWaiter(w)
			if s.rooms[key] == r && r.state == roomJoining && len(r.waiters) == 0 {
				delete(s.rooms, key)
			}
			s.mu.Unlock()
			return err
		}
	}
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		r.removeWaiter(w)
		s.mu.Unlock()
		return fmt.Errorf("irc: no answer to joining %s: %w", j.Room, errors.Join(gateways.ErrNotConnected, ctx.Err()))
	case <-s.ctx.Done():
		return fmt.Errorf("irc: disconnected: %w", gateways.ErrNotConnected)
	}
}

// leave parts the channel once none of the user's clients is left in it,
// and confirms to the leaving client.
func (s *session) leave(_ context.Context, l gateways.Leave) error {
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	s.mu.Lock()
	key := fold(l.Room)
	r := s.rooms[key]
	nick, name, c := l.Nick, l.Room, s.conn
	part := false
	var effs []effect
	if r != nil {
		name = r.name
		if c != nil && r.state == roomJoined {
			nick = c.nick
		}
		r.removeJID(l.User)
		if len(r.jids) == 0 {
			delete(s.rooms, key)
			part = true
			for _, w := range r.waiters {
				w <- gateways.Reject(gateways.ServiceUnavailable, "left %s before the join completed", name)
			}
			r.waiters = nil
		}
	}
	s.mu.Unlock()
	if part && c != nil {
		if status := safeParam(l.Status); status != "" {
			c.enqueue(line("PART", name, status))
		} else {
			c.enqueue(line("PART", name))
		}
	}
	effs = append(effs, effect{occ: &gateways.Occupant{User: l.User, Room: name, Nick: nick, Self: true, Left: true, Status: l.Status}})
	return s.emit(effs)
}

// sendChannel says a message in a joined channel (or sets its topic) and
// reflects it to the user's clients in the room, as XEP-0045 rooms do.
func (s *session) sendChannel(ctx context.Context, m gateways.Outbound) error {
	c, err := s.ready(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	r := s.rooms[fold(m.To)]
	if r == nil {
		s.mu.Unlock()
		return gateways.Reject(gateways.NotAcceptable, "you are not in %s; join it first", m.To)
	}
	if r.state != roomJoined {
		s.mu.Unlock()
		return fmt.Errorf("irc: rejoining %s: %w", m.To, gateways.ErrNotConnected)
	}
	nick, userHost, name := c.nick, c.userHost, r.name
	s.remember(m)
	s.mu.Unlock()
	if m.Subject != nil {
		// The server answers with the TOPIC to everyone, us included,
		// which is the subject change the room shows.
		if err := c.send(ctx, line("TOPIC", name, safeParam(*m.Subject))); err != nil {
			return err
		}
	}
	if strings.TrimSpace(m.Body) == "" {
		return nil
	}
	if err := c.send(ctx, privmsgLines(nick, userHost, name, m.Body)...); err != nil {
		return err
	}
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	s.mu.Lock()
	jids := slices.Clone(r.jids)
	nick = c.nick
	s.mu.Unlock()
	var effs []effect
	for _, j := range jids {
		effs = append(effs, effect{in: &gateways.Inbound{Groupchat: true, From: name, Nick: nick, To: j, Body: m.Body, OriginID: m.ID}})
	}
	_ = s.emit(effs) // sent already: a lost reflection is logged, not retried
	return nil
}

// sendPrivate sends a private message to a nick.
func (s *session) sendPrivate(ctx context.Context, m gateways.Outbound) error {
	c, err := s.ready(ctx)
	if err != nil {
		return err
	}
	if strings.TrimSpace(m.Body) == "" {
		return nil
	}
	s.mu.Lock()
	nick, userHost := c.nick, c.userHost
	s.remember(m)
	s.mu.Unlock()
	return c.send(ctx, privmsgLines(nick, userHost, m.To, m.Body)...)
}
