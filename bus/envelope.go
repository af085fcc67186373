package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
	// KindReaction sets the reactions of one person on one message
	// (XEP-0444): the full set of emoji, replacing the earlier set; an
	// empty set removes them all. Durable, ordered with the messages of
	// its conversation.
	KindReaction Kind = "reaction"
	// KindRetraction takes back (unsends) one message (XEP-0424). Durable.
	KindRetraction Kind = "retraction"
	// KindMarker says a message, and those before it, reached the reader
	// or were read (XEP-0333). Ephemeral: see EphemeralOutSubject.
	KindMarker Kind = "marker"
	// KindTyping is a chat state (XEP-0085): composing, paused, active,
	// gone. Ephemeral: see EphemeralOutSubject.
	KindTyping Kind = "typing"
	// KindPush is a push notification for one device (XEP-0357), on the
	// out subject of a push gateway: the user's server published it to
	// the gateway (its app server), whose adapter delivers it through the
	// device's push service (UnifiedPush, FCM, APNs). User is the device's
	// owner (bare JID), Contact the device's node. Durable.
	KindPush Kind = "push"
)

// Ephemeral reports whether events of kind k travel outside the durable
// path: published on the ephemeral subjects (plain NATS, no JetStream),
// never stored, retried or counted against a quota, and dropped when
// nobody is there to take them.
func (k Kind) Ephemeral() bool { return k == KindMarker || k == KindTyping }

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

	Message    *Message    `json:"message,omitempty"`
	Status     *Status     `json:"status,omitempty"`
	Error      *Error      `json:"error,omitempty"`
	Presence   *Presence   `json:"presence,omitempty"`
	Reaction   *Reaction   `json:"reaction,omitempty"`
	Retraction *Retraction `json:"retraction,omitempty"`
	Marker     *Marker     `json:"marker,omitempty"`
	Typing     *Typing     `json:"typing,omitempty"`
	Push       *Push       `json:"push,omitempty"`
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
	// Replace: the message corrects an earlier one (XEP-0308), whose id
	// this is; Body is the corrected text. A correction of a correction
	// names the first message, as XEP-0308 does.
	Replace string `json:"replace,omitempty"`
	// ReplyTo: the message replies to an earlier one (XEP-0461).
	ReplyTo *ReplyTo `json:"reply_to,omitempty"`
	// OriginID, outbound: the XEP-0359 origin-id the client gave the
	// message, when it differs from ID (clients may refer to it by either).
	// Inbound: the message is a room's reflection of the user's own
	// message, and this is the stanza id the user's client gave it; the
	// component writes the reflection with it (XEP-0045 §7.4).
	OriginID string `json:"origin_id,omitempty"`
	// Invite, inbound: the message is a XEP-0249 invitation to the room
	// with this address (a room the network created, such as a group
	// text), from Contact; Body is its reason.
	Invite string `json:"invite,omitempty"`
	// Delay, inbound: when the network received a message delivered
	// later (a room's history); the component adds a XEP-0203 delay.
	Delay *time.Time `json:"delay,omitempty"`
}

// Message ids in references. Every id an event refers to (message.replace,
// message.reply_to.id, reaction.id, retraction.id, marker.id) is the id the
// XMPP user's client knows the message by: on the out subject, as the
// user's client sent it (the stanza id or origin-id of their message, or the
// id of a message the gateway wrote to them); on the in subject, the same
// ids. The gateway's runner translates them to and from the network's ids
// (docs/bus.md, "Message ids"); a message the gateway writes to a user has
// the id NetworkStanzaID(network id), so a reference to it carries the
// network's id in a form the runner reads back.

// ReplyTo is the message a reply refers to.
type ReplyTo struct {
	ID string `json:"id"`
	// Quote is the text quoted from the message replied to, as the
	// replier's client showed it (XEP-0461's fallback), without "> ".
	Quote string `json:"quote,omitempty"`
}

// Reaction is the payload of a KindReaction envelope.
type Reaction struct {
	ID    string   `json:"id"`    // the message reacted to
	Emoji []string `json:"emoji"` // the full set from this person; empty: none left
	// StanzaID, outbound: the id of the stanza that carried it, which an
	// error about it references.
	StanzaID string `json:"stanza_id,omitempty"`
	// Type "groupchat": in the room Contact; Nick, inbound, is who reacted.
	Type string `json:"type,omitempty"`
	Nick string `json:"nick,omitempty"`
}

// Retraction is the payload of a KindRetraction envelope.
type Retraction struct {
	ID       string `json:"id"` // the message taken back
	StanzaID string `json:"stanza_id,omitempty"`
	Type     string `json:"type,omitempty"`
	Nick     string `json:"nick,omitempty"`
}

// Marker states.
const (
	MarkerReceived  = "received"
	MarkerDisplayed = "displayed"
)

// Marker is the payload of a KindMarker envelope: every message up to and
// including ID was received, or displayed (read).
type Marker struct {
	State string `json:"state"`
	ID    string `json:"id"`
	Type  string `json:"type,omitempty"`
	Nick  string `json:"nick,omitempty"`
}

// Typing states (XEP-0085 chat states).
const (
	TypingComposing = "composing"
	TypingPaused    = "paused"
	TypingActive    = "active"
	TypingGone      = "gone"
)

// Typing is the payload of a KindTyping envelope.
type Typing struct {
	State string `json:"state"`
	Type  string `json:"type,omitempty"`
	Nick  string `json:"nick,omitempty"`
}

// Push is the payload of a KindPush envelope: XEP-0357's notification
// summary, as much of it as the device asked to receive. Sender and Body
// are set only for a device registered with content; otherwise they never
// reach the bus.
type Push struct {
	Node string `json:"node"` // the device's node (equal to the envelope's contact)
	// Count is the summary's message-count (Prosody always says 1).
	Count  int    `json:"count,omitempty"`
	Sender string `json:"sender,omitempty"` // last-message-sender
	Body   string `json:"body,omitempty"`   // last-message-body
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

// ErrUnknownKind is wrapped, with ErrInvalidEnvelope, by the error of an
// envelope whose kind this version does not know: written by a newer
// component or adapter during a rolling upgrade. Decode still returns the
// envelope (its id, gateway, user and contact are valid) so that the reader
// can answer its sender with feature-not-implemented instead of dropping
// it.
var ErrUnknownKind = errors.New("unknown kind")

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
		if errors.Is(err, ErrUnknownKind) {
			return &e, err
		}
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
	if !e.Kind.known() {
		return fmt.Errorf("%w: %w %q", ErrInvalidEnvelope, ErrUnknownKind, e.Kind)
	}
	set := 0
	for _, p := range []bool{e.Message != nil, e.Status != nil, e.Error != nil, e.Presence != nil,
		e.Reaction != nil, e.Retraction != nil, e.Marker != nil, e.Typing != nil, e.Push != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return bad("exactly one payload (\"message\", \"status\", \"error\", \"presence\", \"reaction\", \"retraction\", \"marker\", \"typing\", \"push\") must be set, found %d", set)
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
		if e.Message.ReplyTo != nil && e.Message.ReplyTo.ID == "" {
			return bad("reply_to needs \"id\"")
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
	case KindReaction:
		if e.Reaction == nil {
			return bad("kind %q without \"reaction\"", e.Kind)
		}
		if e.Reaction.ID == "" {
			return bad("reaction needs \"id\"")
		}
		if err := checkType(e.Reaction.Type); err != nil {
			return bad("reaction: %v", err)
		}
	case KindRetraction:
		if e.Retraction == nil {
			return bad("kind %q without \"retraction\"", e.Kind)
		}
		if e.Retraction.ID == "" {
			return bad("retraction needs \"id\"")
		}
		if err := checkType(e.Retraction.Type); err != nil {
			return bad("retraction: %v", err)
		}
	case KindMarker:
		if e.Marker == nil {
			return bad("kind %q without \"marker\"", e.Kind)
		}
		switch e.Marker.State {
		case MarkerReceived, MarkerDisplayed:
		default:
			return bad("unknown marker state %q", e.Marker.State)
		}
		if e.Marker.ID == "" {
			return bad("marker needs \"id\"")
		}
		if err := checkType(e.Marker.Type); err != nil {
			return bad("marker: %v", err)
		}
	case KindTyping:
		if e.Typing == nil {
			return bad("kind %q without \"typing\"", e.Kind)
		}
		switch e.Typing.State {
		case TypingComposing, TypingPaused, TypingActive, TypingGone:
		default:
			return bad("unknown typing state %q", e.Typing.State)
		}
		if err := checkType(e.Typing.Type); err != nil {
			return bad("typing: %v", err)
		}
	case KindPush:
		if e.Push == nil {
			return bad("kind %q without \"push\"", e.Kind)
		}
		if e.Push.Node == "" || e.Push.Node != e.Contact {
			return bad("push needs \"node\", the same as \"contact\"")
		}
		if e.Push.Count < 0 {
			return bad("push: negative \"count\"")
		}
	}
	return nil
}

func (k Kind) known() bool {
	switch k {
	case KindMessage, KindStatus, KindError, KindPresence, KindReaction, KindRetraction, KindMarker, KindTyping, KindPush:
		return true
	}
	return false
}

func checkType(t string) error {
	switch t {
	case "", TypeChat, TypeGroupchat:
		return nil
	}
	return fmt.Errorf("unknown type %q", t)
}

// networkIDPrefix starts the stanza ids the component gives the messages it
// writes from a network message id: reversible, so a reference to such a
// message (a reaction, a marker) carries the network's id back.
const networkIDPrefix = "xg-"

// NetworkStanzaID is the stanza id (and XEP-0359 origin-id) of the part-th
// stanza (0: the text; 1, 2…: media items) of the message the network knows
// as networkID. The same network message always gets the same ids, so a
// redelivered message is recognised by clients.
func NetworkStanzaID(networkID string, part int) string {
	if part == 0 {
		return networkIDPrefix + networkID
	}
	return fmt.Sprintf("%s%d-%s", networkIDPrefix+"p", part, networkID)
}

// ParseNetworkStanzaID returns the network message id in an id made by
// NetworkStanzaID, and false for any other id.
func ParseNetworkStanzaID(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, networkIDPrefix)
	if !ok || rest == "" {
		return "", false
	}
	if p, ok := strings.CutPrefix(rest, "p"); ok {
		if n, net, ok := strings.Cut(p, "-"); ok && n != "" && strings.Trim(n, "0123456789") == "" && net != "" {
			return net, true
		}
	}
	return rest, true
}
