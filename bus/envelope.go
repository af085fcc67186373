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
// set (Message, Status or Error).
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
	// Contact is the network-side address, unescaped (e.g. "+15551234567").
	Contact string `json:"contact"`

	Message *Message `json:"message,omitempty"`
	Status  *Status  `json:"status,omitempty"`
	Error   *Error   `json:"error,omitempty"`
}

// Message is the payload of a KindMessage envelope.
type Message struct {
	// ID is the XMPP stanza id for outbound messages and the network's message
	// id for inbound ones.
	ID      string  `json:"id,omitempty"`
	Body    string  `json:"body,omitempty"`
	Media   []Media `json:"media,omitempty"`
	Thread  string  `json:"thread,omitempty"`
	Receipt bool    `json:"receipt,omitempty"` // the XMPP sender asked for a XEP-0184 receipt
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
	case e.Contact == "":
		return bad("missing \"contact\"")
	}
	set := 0
	for _, p := range []bool{e.Message != nil, e.Status != nil, e.Error != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return bad("exactly one of \"message\", \"status\", \"error\" must be set, found %d", set)
	}
	switch e.Kind {
	case KindMessage:
		if e.Message == nil {
			return bad("kind %q without \"message\"", e.Kind)
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
	default:
		return bad("unknown kind %q", e.Kind)
	}
	return nil
}
