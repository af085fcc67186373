package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
)

// lateAfter: a message older than this when it is handed over is marked
// delayed (XEP-0203) even outside a catch-up.
const lateAfter = 10 * time.Second

// conv is where an event is shown to the user: a contact's chat, or a
// room they joined (as the occupant Nick).
type conv struct {
	from      string // the contact's or the room's address
	to        string // the user's bare JID, or the full JID that joined the room
	groupchat bool
	nick      string
}

// convOf finds where evt is shown; false when nowhere (a room the user did
// not join from XMPP, a DM with someone else speaking).
func (s *session) convOf(evt *event.Event) (conv, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.rooms[evt.RoomID]; j != nil {
		return conv{from: j.addr, to: j.jid, groupchat: true, nick: j.nickOf(evt.Sender)}, true
	}
	if contact, ok := s.dmOf[evt.RoomID]; ok && contact == evt.Sender {
		return conv{from: userAddress(contact), to: s.user}, true
	}
	return conv{}, false
}

// timeline hands one timeline event of a joined room to the gateway. An
// error leaves the batch to be handed over again.
func (s *session) timeline(evt *event.Event) error {
	if evt.StateKey != nil {
		return s.state(evt)
	}
	if evt.Sender == s.acc.UserID {
		return nil // the user's own, from this device or another
	}
	c, ok := s.convOf(evt)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, hostTimeout)
	defer cancel()
	h := s.r.host
	switch evt.Type {
	case event.EventMessage:
		if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
			return nil // not a message we can read
		}
		m := evt.Content.AsMessage()
		in := gateways.Inbound{ProviderID: string(evt.ID), From: c.from, To: c.to, Groupchat: c.groupchat, Nick: c.nick}
		if target := m.RelatesTo.GetReplaceID(); target != "" && m.NewContent != nil {
			in.Replace = string(target)
			m = m.NewContent
		} else if reply := m.RelatesTo.GetReplyTo(); reply != "" {
			m.RemoveReplyFallback()
			in.ReplyTo = string(reply)
		}
		in.Body = s.body(m)
		if ts := time.UnixMilli(evt.Timestamp); s.catchUp || time.Since(ts) > lateAfter {
			in.Delay = ts
		}
		media, notice, err := s.media(ctx, m)
		if err != nil {
			return err
		}
		if media != nil {
			in.Media = []gateways.Media{*media}
		}
		if notice != "" {
			in.Body = strings.TrimSpace(in.Body + "\n" + notice)
		}
		// A fresh timeout: fetching an encrypted attachment took its time.
		dctx, dcancel := context.WithTimeout(s.ctx, hostTimeout)
		defer dcancel()
		return h.Deliver(dctx, in)
	case event.EventReaction:
		if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
			return nil
		}
		rel := evt.Content.AsReaction().RelatesTo
		if rel.Type != event.RelAnnotation || rel.EventID == "" || rel.Key == "" {
			return nil
		}
		if s.r.a.msgs != nil {
			rec, _ := json.Marshal(inReaction{Target: rel.EventID, Key: rel.Key, Room: evt.RoomID})
			if _, err := s.r.a.msgs.Put(ctx, s.r.a.inReactKey(s.user, evt.ID), rec); err != nil {
				return err
			}
		}
		return h.React(ctx, gateways.InboundReaction{
			User: c.to, Contact: c.from, Groupchat: c.groupchat, Nick: c.nick, Target: string(rel.EventID), Add: rel.Key,
			ProviderID: string(evt.ID), Fallback: rel.Key,
		})
	case event.EventRedaction:
		target := evt.Redacts
		if target == "" {
			_ = evt.Content.ParseRaw(evt.Type)
			if r, ok := evt.Content.Parsed.(*event.RedactionEventContent); ok {
				target = r.Redacts
			}
		}
		if target == "" {
			return nil
		}
		if rec, ok, err := s.inReaction(ctx, target); err != nil {
			return err
		} else if ok {
			return h.React(ctx, gateways.InboundReaction{
				User: c.to, Contact: c.from, Groupchat: c.groupchat, Nick: c.nick, Target: string(rec.Target), Remove: rec.Key, ProviderID: string(evt.ID),
			})
		}
		return h.Retract(ctx, gateways.InboundRetraction{User: c.to, Contact: c.from, Groupchat: c.groupchat, Nick: c.nick, Target: string(target), ProviderID: string(evt.ID)})
	}
	return nil
}

// state hands a state change of a room the user joined from XMPP to the
// gateway: members coming, going and renamed; the topic.
func (s *session) state(evt *event.Event) error {
	s.mu.Lock()
	j := s.rooms[evt.RoomID]
	s.mu.Unlock()
	if j == nil {
		return nil
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return nil
	}
	switch evt.Type {
	case event.StateMember:
		return s.member(evt.RoomID, j, evt)
	case event.StateTopic:
		ctx, cancel := context.WithTimeout(s.ctx, hostTimeout)
		defer cancel()
		topic := evt.Content.AsTopic().Topic
		s.mu.Lock()
		nick := j.nickOf(evt.Sender)
		s.mu.Unlock()
		return s.r.host.Deliver(ctx, gateways.Inbound{ProviderID: string(evt.ID), Groupchat: true, From: j.addr, To: j.jid, Nick: nick, Subject: &topic})
	}
	return nil
}

// inReaction looks up a contact's reaction event.
func (s *session) inReaction(ctx context.Context, ev id.EventID) (inReaction, bool, error) {
	if s.r.a.msgs == nil {
		return inReaction{}, false, nil
	}
	e, err := s.r.a.msgs.Get(ctx, s.r.a.inReactKey(s.user, ev))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return inReaction{}, false, nil
	}
	if err != nil {
		return inReaction{}, false, err
	}
	var rec inReaction
	if json.Unmarshal(e.Value(), &rec) != nil {
		return inReaction{}, false, nil
	}
	return rec, true, nil
}

// body is what XMPP shows of a message: the plain body (formatted_body is
// not carried), "/me " before an emote.
func (s *session) body(m *event.MessageEventContent) string {
	switch m.MsgType {
	case event.MsgEmote:
		return "/me " + m.Body
	case event.MsgImage, event.MsgVideo, event.MsgAudio, event.MsgFile:
		if (m.URL != "" || m.File != nil) && m.Body != "" && m.FileName == "" {
			return "" // the body is the file's name; the media says it
		}
	}
	return m.Body
}

// media is the attachment of a media message: a link of the gateway's
// (mediaLink) when http.public_url is set, else the homeserver's
// unauthenticated download URL. An encrypted attachment (encmedia.go)
// that cannot be delivered comes back as a notice for the user.
func (s *session) media(ctx context.Context, m *event.MessageEventContent) (*gateways.Media, string, error) {
	if m.File != nil && m.URL == "" {
		return s.encryptedMedia(ctx, m)
	}
	if m.URL == "" {
		return nil, "", nil
	}
	uri, err := m.URL.Parse()
	if err != nil {
		return nil, "", nil
	}
	md := &gateways.Media{}
	if m.Info != nil {
		md.Type, md.Size = m.Info.MimeType, int64(m.Info.Size)
	}
	if s.r.a.publicURL != "" && s.r.a.msgs != nil {
		if md.URL, err = s.r.a.mediaLink(ctx, s.user, uri, md.Type, nil, 0); err != nil {
			return nil, "", err
		}
		return md, "", nil
	}
	md.URL = strings.TrimSuffix(s.acc.Homeserver, "/") + "/_matrix/media/v3/download/" +
		url.PathEscape(uri.Homeserver) + "/" + url.PathEscape(uri.FileID)
	return md, "", nil
}

// ephemeral passes on typing and read receipts in DM rooms and in rooms
// the user joined from XMPP.
func (s *session) ephemeral(evt *event.Event) {
	s.mu.Lock()
	contact, dm := s.dmOf[evt.RoomID]
	j := s.rooms[evt.RoomID]
	s.mu.Unlock()
	if !dm && j == nil {
		return
	}
	// where: who the events come from, as the host wants them.
	where := func(u id.UserID) (conv, bool) {
		if u == s.acc.UserID {
			return conv{}, false
		}
		if j != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			return conv{from: j.addr, to: j.jid, groupchat: true, nick: j.nickOf(u)}, true
		}
		return conv{from: userAddress(contact), to: s.user}, u == contact
	}
	ctx, cancel := context.WithTimeout(s.ctx, hostTimeout)
	defer cancel()
	switch evt.Type {
	case event.EphemeralEventTyping:
		if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
			return
		}
		now := evt.Content.AsTyping().UserIDs
		s.mu.Lock()
		was := s.typing[evt.RoomID]
		s.typing[evt.RoomID] = now
		s.mu.Unlock()
		for _, u := range now {
			if c, ok := where(u); ok && !slices.Contains(was, u) {
				_ = s.r.host.Type(ctx, gateways.InboundTyping{User: c.to, Contact: c.from, Groupchat: c.groupchat, Nick: c.nick, State: bus.TypingComposing})
			}
		}
		for _, u := range was {
			if c, ok := where(u); ok && !slices.Contains(now, u) {
				_ = s.r.host.Type(ctx, gateways.InboundTyping{User: c.to, Contact: c.from, Groupchat: c.groupchat, Nick: c.nick, State: bus.TypingActive})
			}
		}
	case event.EphemeralEventReceipt:
		if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
			return
		}
		for evID, receipts := range *evt.Content.AsReceipt() {
			for typ, users := range receipts {
				if typ != event.ReceiptTypeRead {
					continue
				}
				for u := range users {
					if c, ok := where(u); ok {
						_ = s.r.host.Mark(ctx, gateways.InboundMarker{User: c.to, Contact: c.from, Groupchat: c.groupchat, Nick: c.nick, State: bus.MarkerDisplayed, Target: string(evID)})
					}
				}
			}
		}
	}
}
