package sms

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/gateways"
)

// Group texts are XEP-0045 rooms. A group is its set of phone numbers —
// the user's own and the others' — and its room's address is that set,
// sorted, joined with commas:
//
//	+15550009999,+15551230001,+15551230002@sms.example.com
//
// so the same group always has the same room, whoever wrote first, and a
// user can start one by joining the room that names its numbers. The
// occupants are the other numbers (their nicks are the numbers) and the
// user, under the nick they joined with.
//
// Membership lasts: the gateway keeps each user's groups in the
// registrations bucket (no expiry). An inbound group text for a group the
// user has not seen yet sends them a XEP-0249 invitation to its room
// first. A message that arrives while none of the user's clients is in
// the room is held (at most heldLimit, in the messages bucket, 7 days) and
// given to the next client that joins, before the subject, with its time
// (XEP-0203).
//
// Sending needs a provider that sends group MMS (GroupSender: Telnyx,
// between US and Canadian numbers, at most 8 others); a groupchat message
// becomes one group MMS from the user's number to every other member. A
// user whose number is at a provider without group MMS (Twilio), a group
// of more others than the provider allows, or a member it cannot reach
// is refused not-allowed, naming the reason, and nothing is sent.

// Rooms is a Gateway whose users have group texts as rooms. A gateway
// has them when one of its providers can send group MMS
// (Options.Rooms).
type Rooms struct{ *Gateway }

var (
	_ gateways.RoomAdapter     = (*Rooms)(nil)
	_ gateways.CommandProvider = (*Rooms)(nil)
	_ gateways.Editor          = (*Rooms)(nil)
	_ gateways.Replier         = (*Rooms)(nil)
)

// heldLimit bounds the messages held for a room nobody is in.
const heldLimit = 50

// IsRoom tells a group's address (numbers joined with commas) from a
// contact's.
func (g *Gateway) IsRoom(address string) bool { return strings.Contains(address, ",") }

// IsRoom tells a group's address from a contact's.
func (r *Rooms) IsRoom(address string) bool { return r.Gateway.IsRoom(address) }

// RoomAddress is the address of the group of numbers: sorted, without
// repeats, joined with commas.
func RoomAddress(numbers []string) string {
	s := slices.Clone(numbers)
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ",")
}

// group is a user's group text: what the gateway keeps of it.
type group struct {
	Room    string   `json:"room"`
	User    string   `json:"user"` // bare JID
	Numbers []string `json:"numbers"`
	Invited bool     `json:"invited,omitempty"`
	// Joined are the user's full JIDs in the room now, with their nicks.
	Joined map[string]string `json:"joined,omitempty"`
}

// held is a message that came while nobody was in the room.
type held struct {
	ID    string           `json:"id"`
	From  string           `json:"from"`
	Body  string           `json:"body,omitempty"`
	Media []gateways.Media `json:"media,omitempty"`
	At    time.Time        `json:"at"`
}

func (g *Gateway) groupKey(user, room string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(user) + "\x00" + room))
	return g.name + ".g." + hex.EncodeToString(sum[:16])
}

func (g *Gateway) heldKey(user, room string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(user) + "\x00" + room))
	return g.id + "." + g.name + ".held." + hex.EncodeToString(sum[:16])
}

// loadGroup reads user's group room; a new one when there is none yet.
func (g *Gateway) loadGroup(ctx context.Context, user, room string) (group, uint64, error) {
	gr := group{Room: room, User: strings.ToLower(user), Numbers: strings.Split(room, ",")}
	e, err := g.regs.Get(ctx, g.groupKey(user, room))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return gr, 0, nil
	}
	if err != nil {
		return gr, 0, fmt.Errorf("reading the group: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &gr); err != nil {
		return gr, 0, fmt.Errorf("reading the group: %w", err)
	}
	return gr, e.Revision(), nil
}

// saveGroup writes gr if it is still at revision rev (0: new); false when
// another process changed it first.
func (g *Gateway) saveGroup(ctx context.Context, gr group, rev uint64) (bool, error) {
	v, _ := json.Marshal(gr)
	var err error
	if rev == 0 {
		_, err = g.regs.Create(ctx, g.groupKey(gr.User, gr.Room), v)
	} else {
		_, err = g.regs.Update(ctx, g.groupKey(gr.User, gr.Room), v, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keeping the group: %w", err)
	}
	return true, nil
}

func isWrongSequence(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// updateGroup applies change to user's group room and stores it, again
// on a concurrent change.
func (g *Gateway) updateGroup(ctx context.Context, user, room string, change func(*group) error) (group, error) {
	for range 10 {
		gr, rev, err := g.loadGroup(ctx, user, room)
		if err != nil {
			return gr, err
		}
		if err := change(&gr); err != nil {
			return gr, err
		}
		ok, err := g.saveGroup(ctx, gr, rev)
		if err != nil || ok {
			return gr, err
		}
	}
	return group{}, errors.New("the group changed too often to be updated")
}

// checkGroup says whether user, whose number is own, can text the group
// of numbers in room: a refusal names the reason. It returns the
// provider that sends for them and the other numbers.
func (g *Gateway) checkGroup(own, room string) (GroupSender, []string, error) {
	numbers := strings.Split(room, ",")
	for _, n := range numbers {
		if !E164.MatchString(n) {
			return nil, nil, gateways.Reject(gateways.JIDMalformed,
				"%q is not a group text's address: it lists phone numbers in E.164 form, sorted, joined with commas (%q is not one)", room, n)
		}
	}
	if canonical := RoomAddress(numbers); canonical != room {
		return nil, nil, gateways.Reject(gateways.JIDMalformed, "this group's room is %s@%s (the numbers sorted, each once)", canonical, g.domain)
	}
	if !slices.Contains(numbers, own) {
		return nil, nil, gateways.Reject(gateways.NotAcceptable,
			"a group text's room names every member, you too: this group's room is %s@%s", RoomAddress(append(numbers, own)), g.domain)
	}
	p := g.provider(own)
	gs, ok := p.(GroupSender)
	if !ok {
		if !g.anyGroupSender() {
			// Not this user's case: the gateway has no group texts at all.
			return nil, nil, gateways.Reject(gateways.FeatureNotImplemented,
				"%s cannot send group texts (group MMS: its API takes one recipient), and texting each member on their own would not be a group on their phones; nothing was sent", p.Name())
		}
		return nil, nil, gateways.Reject(gateways.NotAllowed,
			"your number %s is at %s, which cannot send group texts (group MMS); nothing was sent", own, p.Name())
	}
	others := slices.DeleteFunc(slices.Clone(numbers), func(n string) bool { return n == own })
	if len(others) == 0 {
		return nil, nil, gateways.Reject(gateways.NotAcceptable, "a group text needs someone else in it")
	}
	limit, allowed := gs.GroupLimits()
	if len(others) > limit {
		return nil, nil, gateways.Reject(gateways.NotAllowed,
			"a group text through %s has at most %d people besides you; this one has %d; nothing was sent", p.Name(), limit, len(others))
	}
	for _, n := range append([]string{own}, others...) {
		if why := allowed(n); why != "" {
			return nil, nil, gateways.Reject(gateways.NotAllowed, "%s: %s; nothing was sent", n, why)
		}
	}
	return gs, others, nil
}

// anyGroupSender: one of the gateway's providers sends group MMS.
func (g *Gateway) anyGroupSender() bool {
	for _, a := range g.accounts {
		if _, ok := a.Provider.(GroupSender); ok {
			return true
		}
	}
	return false
}

// own is user's number, or registration-required.
func (g *Gateway) own(ctx context.Context, user string) (string, error) {
	n, err := g.reg.Lookup(ctx, gateways.BareJID(user))
	if err != nil {
		return "", err
	}
	if n == "" {
		return "", gateways.Reject(gateways.RegistrationRequired,
			"you have no phone number on %s yet: register with the gateway (in your client's service discovery) or ask an administrator to assign one", g.domain)
	}
	return n, nil
}

// sendGroup sends a groupchat message: one group MMS to every other
// member, then the room's reflection to the user's clients in it.
func (g *Gateway) sendGroup(ctx context.Context, m gateways.Outbound, body, written string, media []string) (gateways.Sent, error) {
	if m.Subject != nil && body == "" && len(media) == 0 {
		return gateways.Sent{}, gateways.Reject(gateways.NotAllowed, "a group text has no subject to change")
	}
	own, err := g.own(ctx, m.From)
	if err != nil {
		return gateways.Sent{}, err
	}
	gs, others, err := g.checkGroup(own, m.To)
	if err != nil {
		return gateways.Sent{}, err
	}
	p := gs.(Provider)
	msg := Message{From: own, Group: others, Body: body, Media: media}
	id, err := g.deliver(ctx, p, m, msg, gs.SendGroup)
	if err != nil {
		return gateways.Sent{}, err
	}
	sent := gateways.Sent{Text: written}
	if id != "" {
		sent.IDs = []string{id}
	}
	// The room reflects the message to the user's clients in it
	// (XEP-0045 §7.4), under the id their client gave it.
	gr, _, err := g.loadGroup(ctx, gateways.BareJID(m.From), m.To)
	if err == nil {
		h := g.currentHost()
		for full, nick := range gr.Joined {
			if h == nil {
				break
			}
			in := gateways.Inbound{ProviderID: "reflect|" + cmpID(id, m.Key) + "|" + full, Groupchat: true, From: m.To, To: full,
				Nick: nick, Body: written, OriginID: m.ID}
			for _, u := range media {
				in.Media = append(in.Media, gateways.Media{URL: u})
			}
			if err := h.Deliver(ctx, in); err != nil {
				g.log.Warn("the room's reflection of a group text was not stored", "room", m.To, "err", err)
			}
		}
	}
	return sent, nil
}

func cmpID(id, key string) string {
	if id != "" {
		return id
	}
	return key
}

// receiveGroupAll delivers a group text to every user of the gateway
// whose number it went to (two users of one gateway can be in one group).
// in is the message as delivered to the first of them.
func (g *Gateway) receiveGroupAll(ctx context.Context, h gateways.Host, r Received, in gateways.Inbound) error {
	for _, n := range r.To {
		user, err := g.reg.UserFor(ctx, n)
		if err != nil {
			return err
		}
		if user == "" || n == r.From {
			continue
		}
		m := in
		m.To = user
		if err := g.receiveGroup(ctx, h, n, groupOthers(r, n), m); err != nil {
			return err
		}
	}
	return nil
}

// receiveGroup delivers a group text to the user whose number is to: an
// invitation to its room the first time, then the message in the room to
// each of the user's clients there, or held until one joins.
func (g *Gateway) receiveGroup(ctx context.Context, h gateways.Host, to string, others []string, in gateways.Inbound) error {
	room := RoomAddress(append(others, to))
	gr, err := g.updateGroup(ctx, in.To, room, func(*group) error { return nil })
	if err != nil {
		return err
	}
	if !gr.Invited {
		inv := gateways.Inbound{ProviderID: "invite|" + in.ProviderID, From: in.From, To: in.To, Invite: room,
			Body: fmt.Sprintf("%s texted a group: %s", in.From, strings.Join(slices.DeleteFunc(slices.Clone(gr.Numbers), func(n string) bool { return n == to }), ", "))}
		if err := h.Deliver(ctx, inv); err != nil {
			return err
		}
		if _, err := g.updateGroup(ctx, in.To, room, func(gr *group) error { gr.Invited = true; return nil }); err != nil {
			return err
		}
	}
	if len(gr.Joined) == 0 {
		return g.hold(ctx, in.To, room, held{ID: in.ProviderID, From: in.From, Body: in.Body, Media: in.Media, At: time.Now().UTC()})
	}
	for full := range gr.Joined {
		m := gateways.Inbound{ProviderID: in.ProviderID + "|" + full, Groupchat: true, From: room, To: full, Nick: in.From,
			Body: in.Body, Media: in.Media}
		if err := h.Deliver(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// hold keeps a message for the room's next join.
func (g *Gateway) hold(ctx context.Context, user, room string, m held) error {
	key := g.heldKey(user, room)
	for range 10 {
		var list []held
		var rev uint64
		e, err := g.msgs.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			_ = json.Unmarshal(e.Value(), &list)
			rev = e.Revision()
		}
		if slices.ContainsFunc(list, func(x held) bool { return x.ID == m.ID }) {
			return nil // a redelivered webhook
		}
		list = append(list, m)
		if len(list) > heldLimit {
			list = list[len(list)-heldLimit:]
		}
		v, _ := json.Marshal(list)
		if rev == 0 {
			_, err = g.msgs.Create(ctx, key, v)
		} else {
			_, err = g.msgs.Update(ctx, key, v, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return err
		}
	}
	return errors.New("the held messages changed too often")
}

// Join enters the user's client into a group's room: the other numbers,
// then the user, then what was held for the room, then its subject.
func (r *Rooms) Join(ctx context.Context, j gateways.Join) error {
	g := r.Gateway
	h := g.currentHost()
	if h == nil {
		return gateways.ErrNotConnected
	}
	own, err := g.own(ctx, j.User)
	if err != nil {
		return err
	}
	if _, _, err := g.checkGroup(own, j.Room); err != nil {
		return err
	}
	user := gateways.BareJID(j.User)
	gr, err := g.updateGroup(ctx, user, j.Room, func(gr *group) error {
		if gr.Joined == nil {
			gr.Joined = map[string]string{}
		}
		gr.Joined[j.User] = j.Nick
		gr.Invited = true
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range gr.Numbers {
		if n == own {
			continue
		}
		if err := h.Occupant(ctx, gateways.Occupant{User: j.User, Room: j.Room, Nick: n}); err != nil {
			return err
		}
	}
	if err := h.Occupant(ctx, gateways.Occupant{User: j.User, Room: j.Room, Nick: j.Nick, Self: true, Affiliation: "member"}); err != nil {
		return err
	}
	if err := g.replayHeld(ctx, h, j, user); err != nil {
		g.log.Warn("messages held for a group text's room could not be replayed", "room", j.Room, "err", err)
	}
	subject := "Group text: " + strings.Join(gr.Numbers, ", ")
	return h.Deliver(ctx, gateways.Inbound{Groupchat: true, From: j.Room, To: j.User, Subject: &subject})
}

// replayHeld gives the joining client what came while nobody was in the
// room, with the time it came, and forgets it.
func (g *Gateway) replayHeld(ctx context.Context, h gateways.Host, j gateways.Join, user string) error {
	key := g.heldKey(user, j.Room)
	e, err := g.msgs.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var list []held
	_ = json.Unmarshal(e.Value(), &list)
	for _, m := range list {
		in := gateways.Inbound{ProviderID: m.ID + "|" + j.User, Groupchat: true, From: j.Room, To: j.User, Nick: m.From,
			Body: m.Body, Media: m.Media, Delay: m.At}
		if err := h.Deliver(ctx, in); err != nil {
			return err
		}
	}
	return g.msgs.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
}

// Leave takes the user's client out of the room; the group stays.
func (r *Rooms) Leave(ctx context.Context, l gateways.Leave) error {
	g := r.Gateway
	h := g.currentHost()
	if h == nil {
		return gateways.ErrNotConnected
	}
	if _, err := g.updateGroup(ctx, gateways.BareJID(l.User), l.Room, func(gr *group) error {
		delete(gr.Joined, l.User)
		return nil
	}); err != nil {
		return err
	}
	return h.Occupant(ctx, gateways.Occupant{User: l.User, Room: l.Room, Nick: l.Nick, Self: true, Left: true, Status: l.Status})
}

// groupOthers are the other people in a group text: every number it was
// sent to but the user's own (to), and its sender. None for a direct text.
func groupOthers(r Received, to string) []string {
	if len(r.To) < 2 {
		return nil
	}
	others := []string{r.From}
	for _, n := range r.To {
		if n != to && n != r.From {
			others = append(others, n)
		}
	}
	return others
}
