package gateways

import "context"

// Features beyond plain messages: corrections, replies, reactions,
// retractions, read markers and typing. An adapter declares each one by
// implementing its interface, and only that way: the runner finds them by
// type assertion, and the component advertises (XEP-0030, XEP-0115)
// exactly what FeaturesOf reports, so what clients are offered cannot
// drift from what the adapter implements. This is the model of mautrix's
// bridgev2 (a core interface plus one optional interface per capability).
//
// The runner, not the adapter, keeps the record of ids (ids.go): an
// adapter is handed the network's ids of the messages a feature refers to
// (Ref.NetworkIDs) and hands back network ids; the runner translates them
// to and from the ids the user's XMPP client knows.
//
// What an adapter does not declare is never handed to it. A correction
// becomes an ordinary message with the corrected text; a reply, the user's
// own text without the client's quote; a reaction or retraction is answered
// feature-not-implemented (by the component, which knows the declaration,
// or by the runner for an adapter older than the component); typing and
// markers are hints, dropped.

// Editor carries corrections (XEP-0308).
type Editor interface {
	// Edit sends Body as the new text of Target. A network that cannot edit
	// in place sends it as a new message, marked as a correction.
	Edit(ctx context.Context, e Edit) (Sent, error)
}

// Replier carries replies (XEP-0461): m.ReplyTo is set.
type Replier interface {
	SendReply(ctx context.Context, m Outbound) (Sent, error)
}

// Reactor carries reactions (XEP-0444).
type Reactor interface {
	React(ctx context.Context, r Reaction) error
}

// Retractor carries retractions (XEP-0424): unsending a message.
type Retractor interface {
	Retract(ctx context.Context, r Retraction) error
}

// MarkerSender carries read markers (XEP-0333). Ephemeral: an error drops
// the marker.
type MarkerSender interface {
	Mark(ctx context.Context, m Marker) error
}

// Typer carries chat states (XEP-0085). Ephemeral, like markers.
type Typer interface {
	Type(ctx context.Context, t Typing) error
}

// Features is what an adapter declared.
type Features struct {
	Corrections bool `json:"corrections,omitempty"`
	Replies     bool `json:"replies,omitempty"`
	Reactions   bool `json:"reactions,omitempty"`
	Retractions bool `json:"retractions,omitempty"`
	Markers     bool `json:"markers,omitempty"`
	Typing      bool `json:"typing,omitempty"`
}

// FeaturesOf reports the features a declares by implementing their
// interfaces.
func FeaturesOf(a Adapter) Features {
	var f Features
	_, f.Corrections = a.(Editor)
	_, f.Replies = a.(Replier)
	_, f.Reactions = a.(Reactor)
	_, f.Retractions = a.(Retractor)
	_, f.Markers = a.(MarkerSender)
	_, f.Typing = a.(Typer)
	return f
}

// FeatureNames are the names of Features in configuration (an external
// adapter's features list) and documentation, in order.
var FeatureNames = []string{"corrections", "replies", "reactions", "retractions", "markers", "typing"}

// Set turns a named feature on; false for an unknown name.
func (f *Features) Set(name string) bool {
	switch name {
	case "corrections":
		f.Corrections = true
	case "replies":
		f.Replies = true
	case "reactions":
		f.Reactions = true
	case "retractions":
		f.Retractions = true
	case "markers":
		f.Markers = true
	case "typing":
		f.Typing = true
	default:
		return false
	}
	return true
}

// Ref is a message a feature refers to.
type Ref struct {
	// ID is the id the user's XMPP client knows the message by.
	ID string
	// NetworkIDs are the network's ids for it: several when one XMPP
	// message became several network messages. Empty when the runner has
	// no record (a reply to a message older than the id map's expiry).
	NetworkIDs []string
	// Text is the message's text as the network showed it, when known:
	// for a reply, the quote the user's client sent; for the user's own
	// messages, what the adapter asked the runner to remember (Sent.Text).
	Text string
}

// Sent is what an outbound message became on the network.
type Sent struct {
	// IDs are the network's ids of what was sent, in order. The runner
	// records them against the message's XMPP ids so that corrections,
	// replies, reactions, retractions and markers can be translated later.
	IDs []string
	// Text, when set, is remembered with the ids (its first
	// RecentTextLimit characters) and returned by Host.Recent: for an
	// adapter that must recognise a message by its text, such as SMS
	// reactions that quote it. Leave it empty otherwise: message text is
	// not kept without a reason.
	Text string
}

// Edit is a correction of an earlier outbound message.
type Edit struct {
	Outbound     // the correction itself: Body is the new text, ID its stanza id
	Target   Ref // the message corrected
}

// Reaction is the user's reactions on a message, as a set (XEP-0444).
type Reaction struct {
	From      string // sender's full JID
	To        string // contact or room
	Groupchat bool
	Target    Ref
	Emoji     []string // the full set now; empty removes all
	// Added and Removed are the change from the set the user had sent
	// before (kept by the runner), for networks whose reactions are
	// separate events.
	Added, Removed []string
	Key            string // as Outbound.Key
}

// Retraction is the user taking back a message.
type Retraction struct {
	From      string
	To        string
	Groupchat bool
	Target    Ref
	Key       string
}

// Marker says messages up to Target reached the user, or were read.
type Marker struct {
	From      string
	To        string
	Groupchat bool
	State     string // bus.MarkerReceived or bus.MarkerDisplayed
	Target    Ref
}

// Typing is the user's chat state towards a contact or room.
type Typing struct {
	From      string
	To        string
	Groupchat bool
	State     string // bus.TypingComposing, …
}

// InboundReaction is a contact's reactions on a message. Target is the
// network's id of the message; it may be one the user sent (the runner
// translates it to the id their client knows). Either Emoji is the full
// set (Full), or Add/Remove change one emoji of the set the runner keeps.
type InboundReaction struct {
	User      string // the XMPP user (bare JID; full JID in a room)
	Contact   string // who reacted, or the room
	Groupchat bool
	Nick      string // in a room: who reacted
	Target    string
	// TargetXMPP, when the adapter knows the XMPP id itself (from
	// Host.Recent), is used instead of translating Target.
	TargetXMPP  string
	Full        bool
	Emoji       []string
	Add, Remove string
	// ProviderID, when the network has one for the reaction, makes a
	// redelivery of it harmless.
	ProviderID string
	// Fallback is a text shown by clients that do not know reactions.
	Fallback string
}

// InboundRetraction is a contact taking back their message Target.
type InboundRetraction struct {
	User       string
	Contact    string
	Groupchat  bool
	Nick       string
	Target     string // the network's id
	ProviderID string
}

// InboundMarker says the contact received or read the user's messages up
// to Target (a network id).
type InboundMarker struct {
	User      string
	Contact   string
	Groupchat bool
	Nick      string
	State     string
	Target    string
}

// InboundTyping is a contact's chat state.
type InboundTyping struct {
	User      string
	Contact   string
	Groupchat bool
	Nick      string
	State     string
}

// RecentMessage is a message the user sent, as Host.Recent lists it.
type RecentMessage struct {
	ID         string   // the id the user's client gave it
	NetworkIDs []string // what it became on the network
	Text       string
}

// RecentLimit bounds Host.Recent; RecentTextLimit, in characters, the text
// remembered per message.
const (
	RecentLimit     = 50
	RecentTextLimit = 500
)
