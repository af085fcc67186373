package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/metrics"
)

// writeTimeout bounds writing one envelope's stanzas to the server.
const writeTimeout = 10 * time.Second

// ackTimeout bounds waiting for the store to confirm an acknowledgement.
const ackTimeout = 2 * time.Second

// deliver writes one inbound envelope to the XMPP stream and acknowledges it
// once written. A write failure leaves it on the bus for the next stream and
// ends this one: a timed-out write may have left half a stanza on the wire.
func (c *Component) deliver(sess *xmpp.Session, ended *atomic.Bool, msg jetstream.Msg) {
	// After the stream ended (the server closed it, or a write failed),
	// mellium still accepts writes into the dead socket: hand the envelope
	// back instead, briefly delayed so it is not spun on until the pull
	// loop stops; it is the next one delivered on the new stream.
	if ended.Load() || sess.State()&(xmpp.OutputStreamClosed|xmpp.InputStreamClosed) != 0 {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if err := c.o.Bus.StoreFault(); err != nil {
		// The store cannot record the acknowledgement (a failed disk):
		// written now, the message would reach the user again once the
		// store is repaired. Keep it on the bus until then.
		if c.holding.CompareAndSwap(false, true) {
			c.log.Warn("holding inbound messages until the store can record their acknowledgements", "err", err)
		}
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if c.holding.CompareAndSwap(true, false) {
		c.log.Info("the store writes again; delivering inbound messages")
	}
	e, err := bus.Decode(msg.Data())
	if errors.Is(err, bus.ErrUnknownKind) && e != nil {
		c.answerUnknown(e, msg)
		return
	}
	if err != nil {
		c.log.Error("dropping undecodable inbound envelope", "subject", msg.Subject(), "err", err)
		c.o.Metrics.Message(c.o.Name, metrics.In, metrics.Failed)
		_ = msg.Term()
		return
	}
	if c.written.Has(e.ID) {
		// Written already; its acknowledgement did not survive.
		c.log.Info("inbound envelope delivered again by the bus; already written, acknowledging it", "id", e.ID)
		c.o.Metrics.Message(c.o.Name, metrics.In, metrics.Duplicate)
		_ = msg.Ack()
		return
	}
	stanzas, err := c.stanzasFor(e)
	if err != nil {
		// The envelope cannot become a stanza (bad contact address): no
		// retry can fix it.
		c.log.Error("cannot deliver inbound envelope", "id", e.ID, "contact", e.Contact, "user", e.User, "err", err)
		c.o.Metrics.Message(c.o.Name, metrics.In, metrics.Failed)
		_ = msg.Term()
		return
	}
	if ref, ok := failureRef(e); ok {
		// Counted before the user is told, so that their resend under the
		// same id is sent (failures.go); until it can be, the failure waits.
		ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
		err := c.recordFailure(ctx, e.User, ref)
		cancel()
		if err != nil {
			c.log.Warn("could not record a failed message; its report waits", "id", e.ID, "ref", ref, "err", err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
	}
	// The deadline is set on the connection rather than through a context:
	// mellium arms a goroutine per write for a context and clears the
	// deadline right after firing it, which can leave a blocked write
	// blocked. Cleared after, so the Serve goroutine's replies are not cut
	// short by a stale deadline. Not bound to the run context: during
	// shutdown the consumer is drained, and what it hands over is written.
	conn := sess.Conn()
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	defer conn.SetWriteDeadline(time.Time{})
	for _, s := range stanzas {
		if err := sess.Encode(context.Background(), s); err != nil {
			c.log.Warn("writing to the XMPP server failed; closing the stream, the message will be redelivered", "id", e.ID, "err", err)
			ended.Store(true)
			_ = msg.NakWithDelay(time.Second)
			_ = conn.Close()
			return
		}
	}
	c.written.Add(e.ID)
	// Acknowledged synchronously: the store records the acknowledgement
	// (with sync_always, durably) before it answers, and reports a write
	// that fails at once, so a fault that arrived between the check above
	// and now is seen here.
	ackCtx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	if err := msg.DoubleAck(ackCtx); err != nil {
		c.log.Warn("ack inbound envelope", "id", e.ID, "err", err)
	}
	cancel()
	if fault := c.o.Bus.StoreFault(); fault != nil {
		// Written, but the store failed before it recorded that: once it
		// is repaired the message may come back and be written again,
		// with the same stanza id (clients that keep ids drop it).
		c.log.Warn("inbound message written as the store failed; it may be delivered again after the repair, with the same stanza id",
			"id", e.ID, "stanza_id", firstStanzaID(e), "err", fault)
	}
	if e.Kind == bus.KindMessage {
		c.o.Metrics.Message(c.o.Name, metrics.In, metrics.Sent)
	}
}

// stanzasFor maps an envelope to what the user receives. Media travel one
// item per message (XEP-0066: body and url the same) after the text, which
// is how clients such as Conversations show attachments inline.
func (c *Component) stanzasFor(e *bus.Envelope) ([]any, error) {
	from := c.domain.String() // an empty contact is the gateway itself
	if e.Contact != "" {
		contact, err := c.contactJID(e.Contact)
		if err != nil {
			return nil, err
		}
		from = contact.String()
	}
	user, err := jid.Parse(e.User)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", e.User, err)
	}
	to := user.String()
	switch e.Kind {
	case bus.KindMessage:
		if e.Message.Invite != "" {
			return c.inviteStanza(e, from, to)
		}
		return c.messageStanzas(e, from, to), nil
	case bus.KindReaction:
		x := e.Reaction
		typ, from := c.eventFrom(x.Type, x.Nick, from)
		return []any{outMessage{ID: stanzaID(e.ID, 0), From: from, To: to, Type: typ,
			Reactions: &reactionsOut{ID: x.ID, Reactions: x.Emoji}, Store: &storeHint{}}}, nil
	case bus.KindRetraction:
		x := e.Retraction
		typ, from := c.eventFrom(x.Type, x.Nick, from)
		return []any{outMessage{ID: stanzaID(e.ID, 0), From: from, To: to, Type: typ, Body: retractFallback,
			Retract: &retractOut{ID: x.ID}, Fallback: []fallbackOut{{For: nsRetract}}, Store: &storeHint{}}}, nil
	case bus.KindMarker:
		x := e.Marker
		typ, from := c.eventFrom(x.Type, x.Nick, from)
		return []any{outMessage{ID: stanzaID(e.ID, 0), From: from, To: to, Type: typ, Marker: markerElement(x.State, x.ID)}}, nil
	case bus.KindTyping:
		x := e.Typing
		typ, from := c.eventFrom(x.Type, x.Nick, from)
		return []any{outMessage{From: from, To: to, Type: typ,
			State: &elementOut{XMLName: xml.Name{Space: nsChatStates, Local: x.State}}, NoStore: &noStoreHint{}}}, nil
	case bus.KindPresence:
		return []any{c.roomPresence(e, from, to)}, nil
	case bus.KindStatus:
		switch e.Status.State {
		case bus.StateDelivered:
			return []any{outMessage{ID: stanzaID(e.ID, 0), From: from, To: to, Received: &receiptOut{ID: e.Status.Ref}}}, nil
		case bus.StateFailed:
			text := e.Status.Reason
			if e.Status.Code != "" {
				text = fmt.Sprintf("%s (error %s)", text, e.Status.Code)
			}
			out := []any{errorMessage(e.Status.Ref, from, to, "cancel", "recipient-unavailable", text, c.o.Domain)}
			// A delivery report comes after the sending, when the sender's
			// resource may be gone: tell the bare JID too.
			notice, err := failureNotice(stanzaID(e.ID, 1), from, to, e.Status.Ref, "recipient-unavailable", e.Status.Code, text)
			if err != nil {
				return nil, err
			}
			return append(out, notice), nil
		}
		return nil, nil // "sent" and unknown states: nothing to show
	case bus.KindError:
		er := e.Error
		out := []any{errorMessage(er.Ref, from, to, er.Type, er.Condition, errorTextOf(er), c.o.Domain)}
		if er.Ref != "" && !c.queued.recent(to, er.Ref, time.Now()) {
			notice, err := failureNotice(stanzaID(e.ID, 1), from, to, er.Ref, er.Condition, er.Code, errorTextOf(er))
			if err != nil {
				return nil, err
			}
			out = append(out, notice)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown kind %q", e.Kind)
}

// deliverEphemeral writes a typing notification or marker, if the stream
// is up; anything wrong drops it.
func (c *Component) deliverEphemeral(sess *xmpp.Session, ended *atomic.Bool, data []byte) {
	if ended.Load() || sess.State()&(xmpp.OutputStreamClosed|xmpp.InputStreamClosed) != 0 {
		return
	}
	e, err := bus.Decode(data)
	if err != nil || !e.Kind.Ephemeral() {
		c.log.Debug("dropping an ephemeral event", "err", err)
		return
	}
	stanzas, err := c.stanzasFor(e)
	if err != nil {
		c.log.Debug("dropping an ephemeral event", "id", e.ID, "err", err)
		return
	}
	// No context deadline: mellium would arm it on the shared connection
	// while another write may hold it. A write blocked on a server that
	// reads nothing is cut by the next delivery's write deadline.
	for _, s := range stanzas {
		if err := sess.Encode(context.Background(), s); err != nil {
			return
		}
	}
}

// answerUnknown answers an inbound envelope of a kind this version does
// not know (from a newer adapter, in a rolling upgrade): the adapter is
// told with an error envelope on its out subject, feature-not-implemented,
// referencing the envelope's id, and the envelope is removed.
func (c *Component) answerUnknown(e *bus.Envelope, msg jetstream.Msg) {
	c.log.Warn("the adapter sent an event of a kind this gateway does not know; answering it feature-not-implemented", "kind", e.Kind, "id", e.ID)
	contact := e.Contact
	if contact == "" {
		contact = "-"
	}
	answer := &bus.Envelope{Kind: bus.KindError, ID: nuid.Next(), Gateway: c.o.Name, Time: time.Now().UTC(), User: e.User, Contact: contact,
		Error: &bus.Error{Ref: e.ID, Condition: "feature-not-implemented", Type: "cancel",
			Text: fmt.Sprintf("this gateway's component does not know %q events (it is older than the adapter)", e.Kind)}}
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	if _, err := c.o.Bus.Publish(ctx, bus.OutSubject(c.o.Name), answer, "unknown:"+e.ID); err != nil {
		c.log.Warn("could not answer an event of unknown kind; it stays on the bus", "id", e.ID, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	c.o.Metrics.Message(c.o.Name, metrics.In, metrics.Failed)
	_ = msg.Term()
}

// firstStanzaID is the id of the first stanza written for e, the one a
// repeat of it is recognised by (messageStanzas).
func firstStanzaID(e *bus.Envelope) string {
	m := e.Message
	if m == nil {
		return stanzaID(e.ID, 0)
	}
	part := 0
	if m.Body == "" && m.Subject == nil && len(m.Media) > 0 {
		part = 1 // no text: the first media item comes first
	}
	switch {
	case part == 0 && m.OriginID != "":
		return m.OriginID
	case m.ID != "":
		return bus.NetworkStanzaID(m.ID, part)
	}
	return stanzaID(e.ID, part)
}

// eventFrom is the type and sender of an event: in a room, from the
// occupant.
func (c *Component) eventFrom(typ, nick, from string) (string, string) {
	if typ == bus.TypeGroupchat {
		if nick != "" {
			from += "/" + nick
		}
		return "groupchat", from
	}
	return "chat", from
}

// messageStanzas writes a network's message: the text, then one message
// per media item (XEP-0066: body and url the same), which is how clients
// such as Conversations show attachments inline. Ids are made from the
// network's id (xep0359.go).
func (c *Component) messageStanzas(e *bus.Envelope, from, to string) []any {
	m := e.Message
	room := from
	typ := "chat"
	var active *chatStateOut
	if m.Type == bus.TypeGroupchat {
		typ = "groupchat"
		if m.Nick != "" {
			from += "/" + m.Nick
		}
	} else {
		active = &chatStateOut{}
	}
	id := func(part int) string {
		if m.ID != "" {
			return bus.NetworkStanzaID(m.ID, part)
		}
		return stanzaID(e.ID, part)
	}
	decorate := func(s *outMessage) {
		s.OriginID = &originIDOut{ID: s.ID}
		if typ == "groupchat" {
			s.StanzaID = &stanzaIDOut{ID: s.ID, By: room}
		}
		if c.o.Features.Markers && typ == "chat" {
			s.Markable = &markableOut{}
		}
		s.Delay = delayOf(m.Delay, room)
	}
	var out []any
	if m.Body != "" || m.Subject != nil || len(m.Media) == 0 {
		first := outMessage{ID: id(0), From: from, To: to, Type: typ, Subject: m.Subject, Body: m.Body, Thread: m.Thread, Active: active}
		if m.OriginID != "" {
			// The room's reflection of the user's own message: with
			// the id their client gave it, which it matches on.
			first.ID = m.OriginID
		}
		decorate(&first)
		if m.Replace != "" {
			first.Replace = &replaceOut{ID: m.Replace}
		}
		if rt := m.ReplyTo; rt != nil {
			first.Reply = &replyOut{ID: rt.ID}
			if q, n := quoted(rt.Quote); n > 0 {
				first.Body = q + first.Body
				first.Fallback = []fallbackOut{{For: nsReply, Bodies: []fallbackRangeOut{{Start: 0, End: n}}}}
			}
		}
		out = append(out, first)
	}
	for i, md := range m.Media {
		s := outMessage{ID: id(i + 1), From: from, To: to, Type: typ, Body: md.URL, Thread: m.Thread, OOB: &oobOut{URL: md.URL}}
		decorate(&s)
		out = append(out, s)
	}
	return out
}

// errorTextOf is an error's human text with the provider's code appended.
func errorTextOf(er *bus.Error) string {
	if er.Code != "" {
		return fmt.Sprintf("%s (error %s)", er.Text, er.Code)
	}
	return er.Text
}

// roomPresence is an occupant's presence as XEP-0045 §7.2 shows it: from
// room/nick, with the occupant's role and affiliation, and status codes 110
// (this is you) and 303 (nick changed).
func (c *Component) roomPresence(e *bus.Envelope, room, to string) outPresence {
	p := e.Presence
	from := room
	if p.Nick != "" {
		from += "/" + p.Nick
	}
	if p.Type == bus.PresenceError {
		typ := p.Error.Type
		if typ == "" {
			typ = "cancel"
		}
		return outPresence{ID: e.ID, From: from, To: to, Type: "error", Error: newStanzaError(typ, p.Error.Condition, errorTextOf(p.Error), c.o.Domain)}
	}
	x := &mucUser{Item: mucItem{Affiliation: p.Affiliation, Role: p.Role}}
	if x.Item.Affiliation == "" {
		x.Item.Affiliation = "none"
	}
	switch {
	case p.Type == bus.PresenceUnavailable:
		x.Item.Role = "none"
	case x.Item.Role == "":
		x.Item.Role = "participant"
	}
	if p.NewNick != "" && p.Type == bus.PresenceUnavailable {
		x.Item.Nick = p.NewNick
		x.Status = append(x.Status, mucStatus{303})
	}
	if p.Self {
		x.Status = append(x.Status, mucStatus{110})
	}
	return outPresence{ID: e.ID, From: from, To: to, Type: p.Type, Status: p.Status, MUC: x}
}

// errorMessage references the failed message by its id (RFC 6120 §8.3: the
// error stanza carries the id of the stanza that caused it).
func errorMessage(ref, from, to, typ, cond, text, by string) outMessage {
	if typ == "" {
		typ = "cancel"
	}
	return outMessage{ID: ref, From: from, To: to, Type: "error", Error: newStanzaError(typ, cond, text, by)}
}

// stanzaID derives stable ids from the envelope id, so a redelivered envelope
// produces the same stanza ids and clients can drop the duplicate.
func stanzaID(envID string, i int) string {
	if i == 0 {
		return envID
	}
	return fmt.Sprintf("%s-%d", envID, i)
}

func (c *Component) contactJID(contact string) (jid.JID, error) {
	j, err := jid.New(escapeLocal(contact), c.domain.Domainpart(), "")
	if err != nil {
		return jid.JID{}, fmt.Errorf("contact %q is not a valid JID localpart: %w", contact, err)
	}
	return j, nil
}

// recentWritten is how many written envelope ids the component remembers:
// far more than can be in flight between a write and its acknowledgement.
const recentWritten = 4096
