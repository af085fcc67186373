package gateways

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/internal/metrics"
)

// Adapter is one network connection shared by every user of a gateway.
type Adapter interface {
	// Start connects to the network and returns once Send can be called. h is
	// how the adapter hands inbound traffic to the gateway; it stays valid
	// until Stop returns.
	Start(ctx context.Context, h Host) error
	// Send delivers one message to the network. A nil error means the network
	// accepted it; Sent names what it became there.
	Send(ctx context.Context, m Outbound) (Sent, error)
	// Stop disconnects. It must be safe to call after a failed or no Start.
	Stop(ctx context.Context) error
}

// Host is the gateway side an adapter talks to.
type Host interface {
	// Deliver stores an inbound message durably; once it returns nil the
	// adapter may acknowledge the message to its network.
	Deliver(ctx context.Context, m Inbound) error
	// Report stores a delivery status for an earlier outbound message.
	Report(ctx context.Context, s Status) error
	// Occupant stores a change in a room's occupants, as the user sees it.
	// Only adapters with Capabilities.Rooms call it.
	Occupant(ctx context.Context, o Occupant) error
	// React stores a contact's reactions on a message (features.go).
	React(ctx context.Context, r InboundReaction) error
	// Retract stores a contact's retraction of their message.
	Retract(ctx context.Context, r InboundRetraction) error
	// Mark and Type pass on a read marker or a chat state: ephemeral,
	// never stored; an error means it was dropped, which is allowed.
	Mark(ctx context.Context, m InboundMarker) error
	Type(ctx context.Context, t InboundTyping) error
	// Recent lists the messages the user sent to contact that the
	// adapter asked to remember (Sent.Text), newest first: at most
	// RecentLimit, within the id map's expiry.
	Recent(ctx context.Context, user, contact string) ([]RecentMessage, error)
}

// Capabilities are what a network carries. The runner and the component
// consult them; nothing branches on adapter names.
type Capabilities struct {
	Media    bool // attachments (URLs) travel as media, not just text
	Receipts bool // the network reports delivery
	// Rooms: the network has group conversations, shown to XMPP users as
	// XEP-0045 rooms. The adapter implements RoomAdapter.
	Rooms bool
}

// Outbound is a message from an XMPP user to a network contact.
type Outbound struct {
	ID      string // XMPP stanza id (never empty: generated when the client sent none)
	From    string // sender's full JID
	To      string // network address of the contact, e.g. "+15551234567"
	Body    string
	Media   []Media
	Thread  string
	Receipt bool // the sender asked for a delivery receipt
	Attempt int  // 1 on the first try (as the bus counts; a disk fault can reset it)
	// Key identifies this message on the bus: the same on every delivery of
	// it, different for a client's later resend of the same stanza id. Use
	// it to recognise an earlier attempt of the same message.
	Key string
	// Groupchat: the message is to the room To (Rooms adapters only).
	Groupchat bool
	// Subject, when set on a groupchat message, changes the room's subject.
	Subject *string
	// OriginID is the XEP-0359 origin-id the client gave the message when
	// it differs from ID; clients may refer to the message by either.
	OriginID string
	// ReplyTo, for an adapter that is a Replier, is the message this one
	// answers (XEP-0461). Others get the user's text alone.
	ReplyTo *Ref
}

// Inbound is a message from a network contact to an XMPP user.
type Inbound struct {
	ProviderID string // the network's message id; deduplicates redelivery
	From       string // network address of the contact
	To         string // the XMPP user's bare JID
	Body       string
	Media      []Media
	Thread     string
	// Groupchat: the message was said in the room From, by Nick; an empty
	// Nick is the room itself speaking (a notice). To is then the full JID
	// that joined the room.
	Groupchat bool
	Nick      string
	// Subject, when set, is the room's subject (topic); "" means none. A
	// room announces it once the user has joined, after the occupants.
	Subject *string
	// OriginID, on a room's reflection of the user's own message, is the
	// stanza id their client gave it (Outbound.ID): the user's clients get
	// the reflection with that id and origin-id, and match it to the
	// message they sent (XEP-0045 §7.4, XEP-0359) instead of showing it
	// twice.
	OriginID string
	// Replace: the message corrects the network's message with this id
	// (XEP-0308); Body is the corrected text.
	Replace string
	// ReplyTo: the message answers the network's message with this id;
	// ReplyQuote is the text quoted from it, when the network gives one.
	ReplyTo    string
	ReplyQuote string
	// Invite: the message is a XEP-0249 invitation from From to the room
	// with this address, which the network created (a group text); Body
	// is its reason.
	Invite string
	// Delay, when set, is when the network received the message: it is
	// delivered later than it came (a room's history), XEP-0203.
	Delay time.Time
}

// Notice returns an Inbound from the gateway itself (From empty) telling
// user something about the service, such as a lost connection.
func Notice(user, text string) Inbound {
	return Inbound{To: user, Body: text}
}

// Join asks to enter a room as Nick on behalf of User.
type Join struct {
	User    string // the XMPP user's full JID: where the room's traffic goes
	Room    string // e.g. "#go-nuts"
	Nick    string // the nick asked for (the resource of the room JID)
	Attempt int
}

// Leave asks to leave a room.
type Leave struct {
	User   string // full JID
	Room   string
	Nick   string
	Status string // the user's parting words, if any
}

// Occupant is a change in a room's occupants as User sees it. Adapters send
// the occupants already present first and the user's own (Self) last, which
// completes the join; then the room's subject (an Inbound with Subject).
type Occupant struct {
	User string // full JID that joined
	Room string
	Nick string
	// Left: the occupant left the room. With NewNick set, it is a nick
	// change, and an Occupant for NewNick follows.
	Left    bool
	NewNick string
	Self    bool   // this occupant is User
	Role    string // moderator, participant (default), visitor
	// Affiliation: owner, admin, member, none (default).
	Affiliation string
	Status      string // part or quit message
}

// RoomAdapter is an adapter with Capabilities.Rooms.
type RoomAdapter interface {
	// IsRoom tells room addresses ("#go-nuts") from contacts ("alice").
	IsRoom(address string) bool
	// Join enters a room; success is reported through Host.Occupant (the
	// Self occupant), not by the return value, because joining completes
	// when the network says so. An error refuses the join.
	Join(ctx context.Context, j Join) error
	// Leave leaves a room; the Self occupant with Left follows.
	Leave(ctx context.Context, l Leave) error
}

// Media is an attachment reachable by URL.
type Media struct {
	URL  string
	Type string
	Size int64
}

// Status reports what became of an outbound message.
type Status struct {
	Ref string // the Outbound.ID it is about
	// Key is the Outbound.Key it is about: a report is a repeat only for
	// the same bus message (stanza ids repeat across users and resends).
	Key     string
	User    string // the sender's JID (as in Outbound.From)
	Contact string
	State   string // bus.StateSent, bus.StateDelivered, bus.StateFailed
	Code    string
	Reason  string
}

// Info describes an adapter to the registry.
type Info struct {
	// ID names the adapter in configuration (adapter: sandbox). Unique.
	ID string
	// Type is the XEP-0030 identity type of the gateway (category "gateway"):
	// "sms", "irc", … from the XMPP registrar's list.
	Type string
	// ContactType is the XEP-0030 identity type (category "client") of the
	// network's contacts: "sms" for phone numbers, "pc" when unsure.
	ContactType string
	// Name is the human-readable identity name shown by clients.
	Name         string
	Capabilities Capabilities
	// ExtraIdentities ("category/type") and ExtraFeatures are advertised
	// in disco#info on the gateway's domain next to its gateway identity:
	// what the adapter's own IQs serve (IQProvider).
	ExtraIdentities []string
	ExtraFeatures   []string
	// NewConfig returns a pointer to a zero adapter config that the config
	// loader decodes the gateways.<name>.<ID> block into, strictly. Nil when
	// the adapter takes no configuration.
	NewConfig func() any
	// New constructs the adapter. It must not connect or start goroutines.
	New func(Params) (Adapter, error)
}

// Params is what New receives.
type Params struct {
	Name      string // gateway name (config key)
	Domain    string // the component's domain
	Config    any    // what NewConfig returned, decoded and validated; nil if none
	PublicURL string // http.public_url, for webhooks
	Logger    *slog.Logger
	// Registrations and Messages are the shared KV buckets (bus
	// BucketRegistrations, BucketMessages). Nil when only checking the
	// configuration: New must not use them.
	Registrations jetstream.KeyValue
	Messages      jetstream.KeyValue
	// Metrics are the process' collectors, for an adapter's own counters
	// (nil in tests and when only checking the configuration).
	Metrics *metrics.Metrics
	// MaxConcurrency is how many Send calls may run at once (the runner
	// never exceeds it); size connection pools to it. 0 when unknown.
	MaxConcurrency int
	// DataDir is the process's data directory (bus.data_dir), where an
	// adapter may keep files of its own in a subdirectory named after it;
	// empty when the process has none (an external bus).
	DataDir string
}

// Optional capabilities, found by type assertion on an Adapter.

// HTTPProvider is an adapter that receives webhooks. Its handler is mounted
// at /<adapter ID>/<gateway name>/ on http.listen and sees full paths. A
// nil handler: the adapter serves nothing over HTTP as configured (the
// Matrix adapter without http.public_url).
type HTTPProvider interface {
	HTTPHandler() http.Handler
}

// RegistrarProvider is an adapter whose users hold network addresses
// (numbers); the component serves XEP-0077 and ad-hoc commands with it.
type RegistrarProvider interface {
	Registrar() Registrar
}

// AddressChooser is a Registrar whose users choose their address (an IRC
// nick) when they register, instead of being assigned one.
type AddressChooser interface {
	// AddressField describes the registration form's field: its label and
	// the instructions shown above it.
	AddressField() (label, instructions string)
	// RegisterAs gives user the address they asked for, replacing theirs.
	RegisterAs(ctx context.Context, user, address string) (string, error)
}

// AddressNamer is a Registrar whose addresses are not phone numbers: it
// names them for the gateway's ad-hoc commands ("nick", "Matrix ID") and
// says whether an administrator can give one to a user (Assign, Unassign);
// when not, those commands are not offered.
type AddressNamer interface {
	AddressName() (noun string, assignable bool)
}

// Registrar is what RegistrarProvider returns; users are bare JIDs.
type Registrar interface {
	Lookup(ctx context.Context, user string) (string, error)
	Register(ctx context.Context, user string) (string, error)
	Unregister(ctx context.Context, user string) (string, error)
	Assign(ctx context.Context, user, address string) error
	Unassign(ctx context.Context, address string) (string, error)
	List(ctx context.Context) (map[string]string, error)
}

// AddressTranslator is an adapter that understands what people type as an
// address (XEP-0100 jabber:iq:gateway).
type AddressTranslator interface {
	TranslateAddress(input string) (string, error)
	AddressPrompt() (desc, prompt string)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Info{}
)

// Register adds an adapter. Call it from init; it panics on an empty or
// duplicate ID because that is a build mistake, not a runtime condition.
func Register(info Info) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if info.ID == "" || info.New == nil {
		panic("gateways: Register needs an ID and a New function")
	}
	if _, dup := registry[info.ID]; dup {
		panic(fmt.Sprintf("gateways: adapter %q registered twice", info.ID))
	}
	registry[info.ID] = info
}

// Lookup finds a registered adapter.
func Lookup(id string) (Info, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	info, ok := registry[id]
	return info, ok
}

// IDs lists registered adapter IDs, sorted.
func IDs() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	ids := make([]string, 0, len(registry))
	for id := range registry {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Sentinel errors. Match them with errors.Is.
var (
	// ErrNotConnected: the adapter lost its network; the runner retries.
	ErrNotConnected = errors.New("not connected")
	// ErrUnsupported: the network cannot carry this; reported, not retried.
	ErrUnsupported = errors.New("unsupported")
	// ErrPermanent: retrying cannot help; reported to the sender at once.
	ErrPermanent = errors.New("permanent failure")
)

// Condition is an RFC 6120 stanza error condition, the vocabulary the
// component uses to tell the XMPP sender what went wrong.
type Condition string

// Conditions adapters use.
const (
	BadRequest            Condition = "bad-request"
	Conflict              Condition = "conflict"
	FeatureNotImplemented Condition = "feature-not-implemented"
	Forbidden             Condition = "forbidden"
	ItemNotFound          Condition = "item-not-found"
	JIDMalformed          Condition = "jid-malformed"
	NotAcceptable         Condition = "not-acceptable"
	NotAllowed            Condition = "not-allowed"
	RecipientUnavailable  Condition = "recipient-unavailable"
	RegistrationRequired  Condition = "registration-required"
	RemoteServerTimeout   Condition = "remote-server-timeout"
	ResourceConstraint    Condition = "resource-constraint"
	ServiceUnavailable    Condition = "service-unavailable"
	UndefinedCondition    Condition = "undefined-condition"
	InternalServerError   Condition = "internal-server-error"
)

// Error is an adapter failure with what the XMPP sender should be told.
type Error struct {
	Condition Condition
	Text      string // human text for the sender
	Code      string // provider's code, when there is one
	Permanent bool
	Err       error // underlying cause, for logs
}

func (e *Error) Error() string {
	s := string(e.Condition)
	if e.Text != "" {
		s += ": " + e.Text
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// StanzaCondition, StanzaType and StanzaText let the component turn the
// error into a stanza error without importing this package.
func (e *Error) StanzaCondition() string { return string(e.Condition) }
func (e *Error) StanzaType() string      { return errorType(e.Condition) }
func (e *Error) StanzaText() string      { return e.Text }

// Is makes a permanent *Error match ErrPermanent.
func (e *Error) Is(target error) bool { return target == ErrPermanent && e.Permanent }

// Reject returns a permanent error with a condition and a human text.
func Reject(cond Condition, format string, args ...any) error {
	return &Error{Condition: cond, Text: fmt.Sprintf(format, args...), Permanent: true}
}
