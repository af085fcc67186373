package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nuid"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/metrics"
)

// handler serves one stream. It must not call session methods (Serve holds
// the stream locks while it runs); replies go through w.
func (c *Component) handler(ctx context.Context) xmpp.Handler {
	iqs := c.iqMux(ctx)
	return xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		// The reader starts inside the element; give the decoder its start.
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
		switch start.Name.Local {
		case "message":
			var m inMessage
			if err := d.Decode(&m); err != nil {
				return c.undecodable(start, err)
			}
			return c.onMessage(ctx, t, &m)
		case "iq":
			return c.onIQ(ctx, iqs, t, start)
		case "presence":
			var p inPresence
			if err := d.Decode(&p); err != nil {
				return c.undecodable(start, err)
			}
			return c.onPresence(ctx, t, &p)
		}
		return nil
	})
}

// undecodable: the server sent XML that is well-formed but not a stanza we
// can read. Nobody can be answered reliably; log it and keep the stream.
func (c *Component) undecodable(start *xml.StartElement, err error) error {
	c.log.Warn("could not decode stanza; ignoring it", "element", start.Name.Local, "err", err)
	return nil
}

// parsed addresses of a stanza.
type route struct {
	from, to jid.JID
}

func (c *Component) parseRoute(from, to string) (route, error) {
	f, err := jid.Parse(from)
	if err != nil {
		return route{}, err
	}
	t, err := jid.Parse(to)
	if err != nil {
		return route{}, err
	}
	return route{from: f, to: t}, nil
}

// permitted applies allowed_domains and admins: the gateway is not an open
// relay for whoever can route a stanza to it.
func (c *Component) permitted(from jid.JID) bool {
	return c.allowed[strings.ToLower(from.Domainpart())] || c.admins[strings.ToLower(from.Bare().String())]
}

// refusal is an error stanza owed to the sender of a message.
type refusal struct{ typ, cond, text string }

// maxMessageBytes bounds body plus media URLs so the envelope fits the bus
// (NATS refuses payloads over its max_payload, 1 MiB by default).
const maxMessageBytes = bus.MaxEnvelopeSize - 16<<10

// outbound turns a message stanza into the envelope for the network, without
// side effects. It returns a nil envelope and a nil refusal for messages that
// carry nothing for the network (chat states, receipts, empty bodies, errors).
func (c *Component) outbound(m *inMessage) (env *bus.Envelope, msgID string, ref *refusal) {
	if m.Type == "error" {
		return nil, "", nil
	}
	r, err := c.parseRoute(m.From, m.To)
	if err != nil {
		return nil, "", &refusal{"modify", "jid-malformed", "the address is not a valid JID: " + err.Error()}
	}
	if !c.permitted(r.from) {
		return nil, "", &refusal{"auth", "forbidden", c.notServed()}
	}
	// Text a client marked as fallback (XEP-0428) is not what the user
	// wrote: it never reaches the network (fallback.go).
	body := withoutFallback(firstBody(m.Body), m.Fallbacks)
	size := len(body)
	var media []bus.Media
	for _, o := range m.OOB {
		if u := strings.TrimSpace(o.URL); u != "" {
			media = append(media, bus.Media{URL: u})
			size += len(u)
		}
	}
	contact, msgType := unescapeLocal(r.to.Localpart()), ""
	var subject *string
	room := r.to.Localpart() != "" && c.isRoom(contact)
	switch {
	case m.Type == "groupchat" && (!room || r.to.Resourcepart() != ""):
		return nil, "", &refusal{"modify", "bad-request", "groupchat messages go to a room's bare address, such as #room@" + c.o.Domain}
	case m.Type == "groupchat":
		msgType = bus.TypeGroupchat
		if len(m.Subject) > 0 {
			s := firstBody(m.Subject)
			subject = &s
			size += len(s)
		}
	case room && r.to.Resourcepart() != "":
		// A private message to an occupant is a direct message to its nick.
		contact = r.to.Resourcepart()
	case room:
		return nil, "", &refusal{"modify", "bad-request", "send messages to a room with type groupchat, after joining it"}
	}
	if env, ref := c.event(m, r, contact, msgType, strings.TrimSpace(body) == "" && len(media) == 0 && subject == nil); env != nil || ref != nil {
		if ref != nil {
			return nil, "", ref
		}
		if m.ID != "" && !env.Kind.Ephemeral() {
			msgID = "out:" + r.from.String() + "|" + m.ID
		}
		return env, msgID, nil
	}
	if strings.TrimSpace(body) == "" && len(media) == 0 && subject == nil {
		if why := c.unsupported(m); why != "" {
			return nil, "", &refusal{"cancel", "feature-not-implemented", why}
		}
		return nil, "", nil
	}
	if r.to.Localpart() == "" {
		return nil, "", &refusal{"cancel", "service-unavailable",
			"this is the " + c.o.Domain + " gateway itself; message a contact such as " + c.exampleContact()}
	}
	if size > maxMessageBytes {
		return nil, "", &refusal{"modify", "not-acceptable",
			fmt.Sprintf("the message is %d bytes; this gateway carries at most %d", size, maxMessageBytes)}
	}
	stanzaID := m.ID
	if stanzaID == "" {
		stanzaID = nuid.Next()
	}
	env = &bus.Envelope{
		Kind:    bus.KindMessage,
		ID:      nuid.Next(),
		Gateway: c.o.Name,
		Time:    time.Now().UTC(),
		User:    r.from.String(),
		Contact: contact,
		Message: &bus.Message{
			ID:      stanzaID,
			Body:    body,
			Media:   media,
			Thread:  m.Thread,
			Receipt: m.Request != nil,
			Type:    msgType,
			Subject: subject,
		},
	}
	f := c.o.Features
	if m.Replace != nil && m.Replace.ID != "" && f.Corrections {
		env.Message.Replace = m.Replace.ID
	}
	if m.Reply != nil && m.Reply.ID != "" && f.Replies {
		env.Message.ReplyTo = &bus.ReplyTo{ID: m.Reply.ID, Quote: replyQuote(firstBody(m.Body), m.Fallbacks)}
	}
	if m.OriginID != nil && m.OriginID.ID != "" && m.OriginID.ID != stanzaID {
		env.Message.OriginID = m.OriginID.ID
	}
	// Dedup key: the same stanza (a client resending after a reconnect) is
	// stored once. Without a client id there is nothing to dedup on.
	if m.ID != "" {
		msgID = "out:" + r.from.String() + "|" + m.ID
	}
	// Measure what the bus stores too: JSON writes <, > and & as six bytes
	// each, and the id and thread travel as well, so a body under the limit
	// can still make an envelope the bus refuses (then the sender would be
	// told to retry something that can never be stored).
	// JSON grows a byte to at most six, so only messages within a sixth of
	// the limit need the exact (encoding) check; the rest skip it.
	size += len(m.Thread) + len(stanzaID)
	if size*6+len(msgID)+4096 <= maxMessageBytes {
		return env, msgID, nil
	}
	if data, err := bus.Encode(env); err == nil && len(data)+len(msgID) > maxMessageBytes {
		return nil, "", &refusal{"modify", "not-acceptable",
			fmt.Sprintf("the message takes %d bytes once encoded; this gateway carries at most %d", len(data)+len(msgID), maxMessageBytes)}
	}
	return env, msgID, nil
}

func (c *Component) onMessage(ctx context.Context, w encoder, m *inMessage) error {
	env, msgID, ref := c.outbound(m)
	if env != nil && env.Kind.Ephemeral() {
		// Typing and markers: a hint, published and forgotten.
		if err := c.o.Bus.PublishEphemeral(bus.EphemeralOutSubject(c.o.Name), env); err != nil {
			c.log.Debug("ephemeral event dropped", "kind", env.Kind, "err", err)
		}
		return nil
	}
	switch {
	case ref != nil:
		c.o.Metrics.Message(c.o.Name, metrics.Out, metrics.Rejected)
		return c.refuse(w, m, ref.typ, ref.cond, ref.text)
	case env == nil && m.Type == "error":
		// Never answer an error with an error. The user's server bounced
		// something we sent: the user is offline and the server keeps no
		// offline messages, or the account is gone.
		c.log.Warn("the XMPP server bounced a message to a user", "user", m.From, "contact", m.To, "id", m.ID)
		c.o.Metrics.Message(c.o.Name, metrics.In, metrics.Failed)
		return nil
	case env == nil:
		c.o.Metrics.Message(c.o.Name, metrics.Out, metrics.Ignored)
		return nil
	}
	if ref := c.quotaExceeded(env.User); ref != nil {
		c.o.Metrics.Message(c.o.Name, metrics.Out, metrics.Rejected)
		return c.refuse(w, m, ref.typ, ref.cond, ref.text)
	}
	if fenced(ctx) {
		c.o.Metrics.Message(c.o.Name, metrics.Out, metrics.Failed)
		return c.refuse(w, m, "wait", "service-unavailable", handoverText)
	}
	// Not bound to ctx: a stanza read while the stream closes is still
	// stored (the bus outlives the component at shutdown). The deadline
	// runs from now, however long the answers before it take.
	pubCtx, cancel := storeContext(ctx, 5*time.Second)
	pending := c.o.Bus.Start(bus.OutSubject(c.o.Name), env, msgID)
	later(ctx, w, func(w encoder) {
		defer cancel()
		c.stored(pubCtx, w, m, env, msgID, pending)
	})
	return nil
}

// stored answers m once the store has answered for it (pipeline.go): an
// error stanza when it was not stored, nothing when it was.
func (c *Component) stored(ctx context.Context, w encoder, m *inMessage, env *bus.Envelope, msgID string, pending *bus.Pending) {
	dup, err := pending.Wait(ctx)
	if err == nil && dup {
		// The bus holds this id: a copy of a message in flight, or a
		// resend of one that failed (failures.go), which is sent again.
		again, lookupErr := c.resendMsgID(ctx, env.User, m.ID, msgID)
		switch {
		case lookupErr != nil:
			// A copy of a queued message, or a resend of a failed one:
			// without the failure count it cannot be told which. Neither
			// swallowed nor sent twice: the sender is asked to try again.
			c.log.Error("could not tell a resend from a copy; sender told", "from", m.From, "id", m.ID, "err", lookupErr)
			c.o.Metrics.Message(c.o.Name, metrics.Out, metrics.Failed)
			_ = c.refuse(w, m, "wait", "internal-server-error",
				"the gateway could not tell whether it already has this message; please send it again later")
			return
		case again != "":
			dup, err = c.o.Bus.Publish(ctx, bus.OutSubject(c.o.Name), env, again)
		}
	}
	if err != nil {
		c.log.Error("could not store outbound message; sender told", "from", m.From, "id", m.ID, "err", err)
		c.o.Metrics.Message(c.o.Name, metrics.Out, metrics.Failed)
		cond, text := "internal-server-error", "the gateway could not queue this message; please send it again later"
		if bus.IsStorageFull(err) {
			cond = "resource-constraint"
			text = "the gateway cannot store messages right now; please send it again later"
		}
		if errors.Is(err, bus.ErrOutcomeUnknown) {
			// Its store took the message and did not answer: it may be
			// queued after all. Say so, rather than invite a duplicate.
			text = "the gateway could not confirm that it queued this message (its store did not answer); it may still be delivered"
		}
		_ = c.refuse(w, m, "wait", cond, text)
		return
	}
	if dup {
		c.o.Metrics.Message(c.o.Name, metrics.Out, metrics.Duplicate)
	} else {
		c.queued.add(env.User, outRef(env), time.Now())
		c.o.Metrics.Message(c.o.Name, metrics.Out, metrics.Queued)
	}
}

// isRoom says whether a contact address is one of the network's rooms.
func (c *Component) isRoom(contact string) bool {
	return c.o.IsRoom != nil && c.o.IsRoom(contact)
}

// exampleContact is a contact address to show in help texts.
func (c *Component) exampleContact() string {
	if c.o.IdentityType == "sms" || c.o.ContactType == "sms" {
		return "+15551234567@" + c.o.Domain
	}
	return "someone@" + c.o.Domain
}

func firstBody(bodies []langText) string {
	// Prefer the body without xml:lang (the stream default language).
	for _, b := range bodies {
		if b.Lang == "" {
			return b.Value
		}
	}
	if len(bodies) > 0 {
		return bodies[0].Value
	}
	return ""
}

// refuse answers a message the gateway did not store with an error. When
// the reply cannot be written (our </stream:stream> went out at shutdown,
// or the server went away between reading the stanza and answering it),
// XEP-0114 has no acknowledgements: the message is neither stored nor
// reported, and the log says so with what identifies it. The stream is
// still read to its end (nil, not the error: an error from a handler ends
// mellium's Serve, and whatever the server wrote after this stanza would
// go unread and unlogged; each such stanza is logged here in turn).
func (c *Component) refuse(w encoder, m *inMessage, typ, cond, text string) error {
	if err := c.replyMessageError(w, m, typ, cond, text); err != nil {
		c.log.Error("outbound message neither stored nor reported: the stream closed before the error reply could be written",
			"from", m.From, "to", m.To, "id", m.ID, "reason", text, "err", err)
	}
	return nil
}

// replyMessageError bounces m back to its sender with an error, keeping its
// id so the client can mark the right message as failed.
func (c *Component) replyMessageError(w encoder, m *inMessage, typ, cond, text string) error {
	if m.From == "" {
		return nil
	}
	return w.Encode(outMessage{
		ID:    m.ID,
		From:  m.To,
		To:    m.From,
		Type:  "error",
		Error: newStanzaError(typ, cond, text, c.o.Domain),
	})
}

// onPresence approves subscriptions to the gateway and its contacts and says
// they are available (XEP-0100 §4.1.3): networks like SMS have no presence,
// and a contact shown offline makes some clients refuse to send.
func (c *Component) onPresence(ctx context.Context, w encoder, p *inPresence) error {
	r, err := c.parseRoute(p.From, p.To)
	if err != nil || p.Type == "error" {
		return nil
	}
	if room := unescapeLocal(r.to.Localpart()); room != "" && c.isRoom(room) && (p.Type == "" || p.Type == "unavailable") {
		return c.onRoomPresence(ctx, w, p, r, room)
	}
	if !c.permitted(r.from) {
		if p.Type == "subscribe" {
			return w.Encode(outPresence{From: r.to.Bare().String(), To: r.from.Bare().String(), Type: "unsubscribed"})
		}
		return nil
	}
	self := r.to.Bare().String()
	caps := c.caps(entGateway)
	if r.to.Localpart() != "" {
		caps = c.caps(entContact)
	}
	switch p.Type {
	case "subscribe":
		if err := w.Encode(outPresence{From: self, To: r.from.Bare().String(), Type: "subscribed"}); err != nil {
			return err
		}
		return w.Encode(outPresence{From: self, To: r.from.Bare().String(), Caps: caps})
	case "probe", "":
		if p.Type == "" && r.to.Localpart() != "" {
			return nil // directed available presence to a contact: nothing to say
		}
		return w.Encode(outPresence{From: self, To: r.from.String(), Caps: caps})
	case "unsubscribe":
		return w.Encode(outPresence{From: self, To: r.from.Bare().String(), Type: "unsubscribed"})
	}
	return nil
}

// onRoomPresence turns XEP-0045 joins and exits into presence envelopes. An
// available presence without the MUC <x/> is a status update from a client
// already in the room; the network has nothing to do with it.
func (c *Component) onRoomPresence(ctx context.Context, w encoder, p *inPresence, r route, room string) error {
	refuse := func(typ, cond, text string) error {
		if p.Type == "unavailable" {
			return nil // never answer an exit with an error
		}
		return w.Encode(outPresence{ID: p.ID, From: p.To, To: p.From, Type: "error", Error: newStanzaError(typ, cond, text, c.o.Domain)})
	}
	if !c.permitted(r.from) {
		return refuse("auth", "forbidden", c.notServed())
	}
	nick := r.to.Resourcepart()
	pr := &bus.Presence{Nick: nick, Status: p.Status}
	switch {
	case p.Type == "unavailable":
		pr.Type = bus.PresenceUnavailable
	case nick == "":
		return refuse("modify", "jid-malformed", "join a room as "+r.to.Bare().String()+"/yournick")
	case p.MUC == nil:
		return nil
	}
	env := &bus.Envelope{
		Kind:     bus.KindPresence,
		ID:       nuid.Next(),
		Gateway:  c.o.Name,
		Time:     time.Now().UTC(),
		User:     r.from.String(),
		Contact:  room,
		Presence: pr,
	}
	// Through the pipeline, like messages: stored in the order read, and
	// answered after the messages before it.
	pubCtx, cancel := storeContext(ctx, 5*time.Second)
	pending := c.o.Bus.Start(bus.OutSubject(c.o.Name), env, "")
	later(ctx, w, func(w encoder) {
		defer cancel()
		if _, err := pending.Wait(pubCtx); err != nil {
			c.log.Error("could not store a room join or exit", "from", p.From, "room", room, "err", err)
			if p.Type == "unavailable" {
				return // never answer an exit with an error
			}
			text := "the gateway could not queue the join; please try again later"
			if err := w.Encode(outPresence{ID: p.ID, From: p.To, To: p.From, Type: "error", Error: newStanzaError("wait", "internal-server-error", text, c.o.Domain)}); err != nil {
				c.log.Error("room join neither stored nor reported: the stream closed before the error reply could be written", "from", p.From, "room", room, "err", err)
			}
		}
	})
	return nil
}
