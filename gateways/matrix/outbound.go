package matrix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
)

// target is where an outbound event goes: the user's session and the room.
type target struct {
	s    *session
	room id.RoomID
}

// resolve finds the session of from (a full JID) and the room of to; with
// create, a DM room that does not exist yet is created.
func (a *Adapter) resolve(ctx context.Context, from, to string, create bool) (target, error) {
	if err := ctx.Err(); err != nil {
		return target{}, fmt.Errorf("matrix: %w: %w", gateways.ErrNotConnected, err)
	}
	contact, ok := parseUser(to)
	if !ok && !isRoomAddress(to) {
		return target{}, gateways.Reject(gateways.JIDMalformed, "%q is not a Matrix user: write @bob:example.org as bob%%example.org", to)
	}
	r, err := a.current()
	if err != nil {
		return target{}, err
	}
	s, err := r.session(ctx, gateways.BareJID(from))
	if err != nil {
		return target{}, err
	}
	if err := s.waitReady(ctx); err != nil {
		return target{}, err
	}
	var room id.RoomID
	if isRoomAddress(to) {
		if room, _ = s.roomByAddr(to); room == "" {
			err = gateways.Reject(gateways.NotAcceptable, "join %s first", to)
		}
	} else if create {
		room, err = s.ensureDM(ctx, contact)
	} else if room = s.dmRoom(contact); room == "" {
		err = gateways.Reject(gateways.ItemNotFound, "there is no conversation with %s on Matrix yet", contact)
	}
	return target{s: s, room: room}, err
}

// txnID is the transaction id of the bus message key: a retried send is
// the same request, which the homeserver answers with the same event.
func txnID(key, what string) string {
	h := sha256.Sum256([]byte(what + "\x00" + key))
	return "xmppgw." + hex.EncodeToString(h[:12])
}

// send sends content to the target's room, encrypted when the room is.
func (t target) send(ctx context.Context, typ event.Type, content any, key, what string) (id.EventID, error) {
	if key == "" {
		key = fmt.Sprint(time.Now().UnixNano())
	}
	encrypted, err := t.s.encryptedRoom(ctx, t.room)
	if err != nil {
		return "", err
	}
	if encrypted {
		c, err := t.s.waitCrypto(ctx)
		if err != nil {
			return "", err
		}
		if content, err = c.encrypt(ctx, t.room, typ, content); err != nil {
			return "", classify(err, "encrypting for "+string(t.room))
		}
		typ = event.EventEncrypted
	}
	resp, err := t.s.cli.SendMessageEvent(ctx, t.room, typ, content, mautrix.ReqSendEvent{TransactionID: txnID(key, what)})
	if err != nil {
		return "", classify(err, "sending to "+string(t.room))
	}
	return resp.EventID, nil
}

// text is the content of a plain message; "/me " makes an emote.
func text(body string) *event.MessageEventContent {
	if rest, ok := strings.CutPrefix(body, "/me "); ok {
		return &event.MessageEventContent{MsgType: event.MsgEmote, Body: rest}
	}
	return &event.MessageEventContent{MsgType: event.MsgText, Body: body}
}

// Send sends a message to a contact, in their DM room (created on first
// use).
func (a *Adapter) Send(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	if m.Groupchat {
		return a.sendRoom(ctx, m, func() any { return text(m.Body) }, event.EventMessage)
	}
	t, err := a.resolve(ctx, m.From, m.To, true)
	if err != nil {
		return gateways.Sent{}, err
	}
	if len(m.Media) > 0 {
		return t.sendMedia(ctx, m)
	}
	ev, err := t.send(ctx, event.EventMessage, text(m.Body), m.Key, "message")
	if err != nil {
		return gateways.Sent{}, err
	}
	return gateways.Sent{IDs: []string{string(ev)}}, nil
}

// SendReply sends a reply (m.in_reply_to) to the message replied to.
func (a *Adapter) SendReply(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	if m.ReplyTo == nil || len(m.ReplyTo.NetworkIDs) == 0 {
		return a.Send(ctx, m)
	}
	reply := func() any {
		c := text(m.Body)
		c.RelatesTo = (&event.RelatesTo{}).SetReplyTo(id.EventID(m.ReplyTo.NetworkIDs[0]))
		return c
	}
	if m.Groupchat {
		return a.sendRoom(ctx, m, reply, event.EventMessage)
	}
	t, err := a.resolve(ctx, m.From, m.To, true)
	if err != nil {
		return gateways.Sent{}, err
	}
	c := reply()
	ev, err := t.send(ctx, event.EventMessage, c, m.Key, "message")
	if err != nil {
		return gateways.Sent{}, err
	}
	return gateways.Sent{IDs: []string{string(ev)}}, nil
}

// Edit replaces the text of the user's message (m.replace).
func (a *Adapter) Edit(ctx context.Context, e gateways.Edit) (gateways.Sent, error) {
	if len(e.Target.NetworkIDs) == 0 {
		return gateways.Sent{}, gateways.Reject(gateways.ItemNotFound, "the corrected message is not known to the gateway (too old?)")
	}
	t, err := a.resolve(ctx, e.From, e.To, false)
	if err != nil {
		return gateways.Sent{}, err
	}
	c := text(e.Body)
	c.SetEdit(id.EventID(e.Target.NetworkIDs[0]))
	ev, err := t.send(ctx, event.EventMessage, c, e.Key, "edit")
	if err != nil {
		return gateways.Sent{}, err
	}
	if e.Groupchat {
		// Reflected, like every message in a room.
		t.s.mu.Lock()
		j := t.s.rooms[t.room]
		t.s.mu.Unlock()
		if j != nil {
			_ = t.s.r.host.Deliver(ctx, gateways.Inbound{ProviderID: string(ev), Groupchat: true, From: e.To, To: e.From, Nick: j.nick,
				Body: e.Body, OriginID: e.ID, Replace: e.Target.NetworkIDs[0]})
		}
	}
	return gateways.Sent{IDs: []string{string(ev)}}, nil
}

// React sends the added reactions (m.annotation) and redacts the removed
// ones, whose event ids it kept.
func (a *Adapter) React(ctx context.Context, r gateways.Reaction) error {
	if len(r.Target.NetworkIDs) == 0 {
		return gateways.Reject(gateways.ItemNotFound, "the message reacted to is not known to the gateway (too old?)")
	}
	t, err := a.resolve(ctx, r.From, r.To, false)
	if err != nil {
		return err
	}
	user := gateways.BareJID(r.From)
	target := id.EventID(r.Target.NetworkIDs[0])
	for _, key := range r.Added {
		c := &event.ReactionEventContent{RelatesTo: event.RelatesTo{Type: event.RelAnnotation, EventID: target, Key: key}}
		ev, err := t.send(ctx, event.EventReaction, c, r.Key, "react\x00"+key)
		if err != nil {
			return err
		}
		if a.msgs != nil {
			if _, err := a.msgs.Put(ctx, a.reactKey(user, target, key), []byte(ev)); err != nil {
				return fmt.Errorf("matrix: messages: %w", err)
			}
		}
	}
	for _, key := range r.Removed {
		if a.msgs == nil {
			break
		}
		e, err := a.msgs.Get(ctx, a.reactKey(user, target, key))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // never sent, or expired: nothing to take back
		}
		if err != nil {
			return fmt.Errorf("matrix: messages: %w", err)
		}
		if err := t.redact(ctx, id.EventID(e.Value()), r.Key); err != nil {
			return err
		}
		_ = a.msgs.Delete(ctx, a.reactKey(user, target, key))
	}
	return nil
}

// redact redacts an event; one already gone is not an error.
func (t target) redact(ctx context.Context, ev id.EventID, key string) error {
	_, err := t.s.cli.RedactEvent(ctx, t.room, ev, mautrix.ReqRedact{TxnID: txnID(key, "redact\x00"+string(ev))})
	if err != nil {
		var he mautrix.HTTPError
		if errors.As(err, &he) && he.RespError != nil && he.RespError.ErrCode == mautrix.MNotFound.ErrCode {
			return nil
		}
		return classify(err, "redacting "+string(ev))
	}
	return nil
}

// Retract redacts the user's message.
func (a *Adapter) Retract(ctx context.Context, r gateways.Retraction) error {
	if len(r.Target.NetworkIDs) == 0 {
		return gateways.Reject(gateways.ItemNotFound, "the retracted message is not known to the gateway (too old?)")
	}
	t, err := a.resolve(ctx, r.From, r.To, false)
	if err != nil {
		return err
	}
	for _, ev := range r.Target.NetworkIDs {
		if err := t.redact(ctx, id.EventID(ev), r.Key); err != nil {
			return err
		}
	}
	return nil
}

// Mark sends a read receipt for a displayed marker; received markers have
// no Matrix counterpart (delivery is implied).
func (a *Adapter) Mark(ctx context.Context, m gateways.Marker) error {
	if m.State != bus.MarkerDisplayed || len(m.Target.NetworkIDs) == 0 {
		return nil
	}
	t, err := a.resolve(ctx, m.From, m.To, false)
	if err != nil {
		return err
	}
	ev := id.EventID(m.Target.NetworkIDs[len(m.Target.NetworkIDs)-1])
	if err := t.s.cli.SendReceipt(ctx, t.room, ev, event.ReceiptTypeRead, nil); err != nil {
		return classify(err, "sending a read receipt")
	}
	return nil
}

// typingTimeout is how long a composing state lasts on Matrix unless
// renewed; XEP-0085 clients send paused or active when they stop.
const typingTimeout = 30 * time.Second

// Type sends typing notifications.
func (a *Adapter) Type(ctx context.Context, ty gateways.Typing) error {
	t, err := a.resolve(ctx, ty.From, ty.To, false)
	if err != nil {
		return err
	}
	if _, err := t.s.cli.UserTyping(ctx, t.room, ty.State == bus.TypingComposing, typingTimeout); err != nil {
		return classify(err, "sending typing")
	}
	return nil
}
