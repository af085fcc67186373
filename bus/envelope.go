package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the envelope format version this package writes. Readers reject
// envelopes with a higher major version instead of guessing at their meaning.
const Version = 1

// Kind says what an envelope carries. Exactly the field named by the kind is
// set (Message, Status, Error or Presence).
type Kind string

// Envelope kinds.
const (
	// KindMessage is a chat message: outbound (XMPP user → network contact) on
	// the out subject, inbound (network contact → XMPP user) on the in subject.
	KindMessage Kind = "message"
	// KindStatus reports the fate of an earlier outbound message (delivered,
	// failed) as the network tells it.
	KindStatus Kind = "status"
	// KindError tells the XMPP user that an outbound message was refused or
	// could not be delivered. It always travels adapter → component.
	KindError Kind = "error"
	// KindPresence is about a user's place in a room (a group conversation
	// shown as a XEP-0045 room): outbound, joining or leaving; inbound, who
	// is in the room, including the user (self), and refused joins.
	KindPresence Kind = "presence"
)

// Envelope is one event on the bus. See docs/bus.md.
type Envelope struct {
	V       int       `json:"v"`
	Kind    Kind      `json:"kind"`
	ID      string    `json:"id"`      // unique per event; the dedup key on the bus
	Gateway string    `json:"gateway"` // gateway name (config key), not the domain
	Time    time.Time `json:"ts"`
	// User is the XMPP side. Outbound: the sender's full JID. Inbound: the
	// recipient (bare JID, or full JID when an error answers one resource).
	User string `json:"user"`
	// Contact is the network-side address, unescaped (e.g. "+15551234567"),
	// or the room for groupchat messages and presence ("#go-nuts"). Empty
	// only for an inbound message from the gateway itself (a notice).
	Contact string `json:"contact"`

	Message  *Message  `json:"message,omitempty"`
	Status   *Status   `json:"status,omitempty"`
	Error    *Error    `json:"error,omitempty"`
	Presence *Presence `json:"presence,omitempty"`
}

// Message types. The zero value is a one-to-one chat.
const (
	TypeChat      = "chat"
	TypeGroupchat = "groupchat"
)

// Message is the payload of a KindMessage envelope.
type Message struct {
	// ID is the XMPP stanza id for outbound messages and the network's message
	// id for inbound ones.
	ID      string  `json:"id,omitempty"`
	Body    string  `json:"body,omitempty"`
	Media   []Media `json:"media,omitempty"`
	Thread  string  `json:"thread,omitempty"`
	Receipt bool    `json:"receipt,omitempty"` // the XMPP sender asked for a XEP-0184 receipt
	// Type is "" or "chat" for one-to-one messages, "groupchat" for
	// messages to or in a room (then Contact is the room).
	Type string `json:"type,omitempty"`
	// Nick is, for an inbound groupchat message, the occupant who spoke;
	// empty for a message from the room itself (a notice).
	Nick string `json:"nick,omitempty"`
	// Subject is the room's subject (topic) when the message sets or
	// announces it; an empty string means the room has none. Groupchat only.
	Subject *string `json:"subject,omitempty"`
	// Replace, outbound only: the message corrects the user's earlier
	// message with this stanza id (XEP-0308); Body is the corrected text.
	Replace string `json:"replace,omitempty"`
	// OriginID, inbound only: the message is a room's reflection of the
	// user's own message, and this is the stanza id the user's client gave
	// it; the component writes the reflection with it (XEP-0045 §7.4).
	OriginID string `json:"origin_id,omitempty"`
}

// Presence types.
const (
	PresenceAvailable   = ""            // joined, or present in the room
	PresenceUnavailable = "unavailable" // left
	PresenceError       = "error"       // the join was refused (Error says why)
)

// Presence is the payload of a KindPresence envelope; Contact is the room.
// Outbound (component → adapter) it asks to join (available) or leave
// (unavailable) the room as Nick. Inbound it says that the occupant Nick is
// in the room or left it; Self marks the user's own occupant, which the
// adapter sends last when the join completed, after every other occupant.
type Presence struct {
	Type string `json:"type,omitempty"` // "", "unavailable" or "error"
	Nick string `json:"nick"`           // occupant nick; outbound: the nick asked for
	// NewNick, with type unavailable, says the occupant is now known as
	// NewNick (XEP-0045 status 303); an available presence for NewNick follows.
	NewNick     string `json:"new_nick,omitempty"`
	Self        bool   `json:"self,omitempty"`
	Role        string `json:"role,omitempty"`        // moderator, participant (default), visitor
	Affiliation string `json:"affiliation,omitempty"` // owner, admin, member, none (default)
	Status      string `json:"status,omitempty"`      // human text: a part or quit message
	Error       *Error `json:"error,omitempty"`       // type error: why the join was refused
}

// Media is an attachment reachable by URL.
type Media struct {
	URL  string `json:"url"`
	Type string `json:"type,omitempty"` // MIME type when known
	Size int64  `json:"size,omitempty"`
}

// Delivery states carried by a Status.
const (
	StateSent      = "sent"
	StateDelivered = "delivered"
	StateFailed    = "failed"
)

// Status is the payload of a KindStatus envelope.
type Status struct {
	Ref    string `json:"ref"`              // stanza id of the outbound message
	State  string `json:"state"`            // sent | delivered | failed
	Code   string `json:"code,omitempty"`   // provider's code, e.g. Twilio "30003"
	Reason string `json:"reason,omitempty"` // human text
}

// Error is the payload of a KindError envelope. Condition is an RFC 6120
// stanza error condition ("jid-malformed", "service-unavailable", …) and Type
// its error type ("cancel", "modify", "auth", "wait").
type Error struct {
	Ref       string `json:"ref,omitempty"` // stanza id of the message this answers
	Condition string `json:"condition"`
	Type      string `json:"type,omitempty"`
	Text      string `json:"text,omitempty"`
	Code      string `json:"code,omitempty"` // provider's code when the network gave one
}

// ErrInvalidEnvelope is wrapped by every Decode and Validate error.
var ErrInvalidEnvelope = errors.New("invalid envelope")

// MaxEnvelopeSize bounds what Decode accepts; NATS' default max payload is
// 1 MiB and nothing legitimate comes close.
const MaxEnvelopeSize = 1 << 20

// Encode validates e and returns its JSON form. V is set to Version when zero.
func Encode(e *Envelope) ([]byte, error) {
	if e.V == 0 {
		e.V = Version
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// Decode parses and validates one envelope.
func Decode(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidEnvelope, len(data), MaxEnvelopeSize)
	}
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEnvelope, err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// Validate checks the invariants every reader relies on.
func (e *Envelope) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidEnvelope}, args...)...)
	}
	switch {
	case e.V < 1:
		return bad("missing version \"v\"")
	case e.V > Version:
		return bad("version %d is newer than supported version %d", e.V, Version)
	case e.ID == "":
		return bad("missing \"id\"")
	case e.Gateway == "":
		return bad("missing \"gateway\"")
	case e.User == "":
		return bad("missing \"user\"")
	case e.Contact == "" && e.Kind != KindMessage:
		return bad("missing \"contact\"")
	}
	set := 0
	for _, p := range []bool{e.Message != nil, e.Status != nil, e.Error != nil, e.Presence != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return bad("exactly one of \"message\", \"status\", \"error\", \"presence\" must be set, found %d", set)
	}
	switch e.Kind {
	case KindMessage:
		if e.Message == nil {
			return bad("kind %q without \"message\"", e.Kind)
		}
		switch e.Message.Type {
		case "", TypeChat, TypeGroupchat:
		default:
			return bad("unknown message type %q", e.Message.Type)
		}
		if e.Contact == "" && (e.Message.Type == TypeGroupchat || e.Message.Nick != "") {
			return bad("groupchat message without \"contact\" (the room)")
		}
	case KindStatus:
		if e.Status == nil {
			return bad("kind %q without \"status\"", e.Kind)
		}
		if e.Status.Ref == "" || e.Status.State == "" {
			return bad("status needs \"ref\" and \"state\"")
		}
	case KindError:
		if e.Error == nil {
			return bad("kind %q without \"error\"", e.Kind)
		}
		if e.Error.Condition == "" {
			return bad("error needs \"condition\"")
		}
	case KindPresence:
		if e.Presence == nil {
			return bad("kind %q without \"presence\"", e.Kind)
		}
		switch e.Presence.Type {
		case PresenceAvailable, PresenceUnavailable:
		case PresenceError:
			if e.Presence.Error == nil || e.Presence.Error.Condition == "" {
				return bad("presence of type error needs \"error\" with \"condition\"")
			}
		default:
			return bad("unknown presence type %q", e.Presence.Type)
		}
	default:
		return bad("unknown kind %q", e.Kind)
	}
	return nil
}
