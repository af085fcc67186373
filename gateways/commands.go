package gateways

import (
	"context"
	"encoding/xml"

	"github.com/xmppgw/xmppgw/bus"
)

// An adapter may serve XEP-0050 ad-hoc commands and IQs of its own on the
// gateway's domain: a push app server's device registration, a network
// login. The component serves them next to its own, with the same rules:
// only users of allowed_domains (and admins) reach them, admin commands
// are listed to and run by admins only, and they run off the stream's
// reader, so a slow one holds up nobody's messages. An error that is an
// *Error (Reject) becomes that stanza error; any other error is logged and
// answered internal-server-error, its text not shown.

// CommandProvider is an adapter with ad-hoc commands. Commands is called
// once, when the gateway is built.
type CommandProvider interface {
	Commands() []Command
}

// Command is one XEP-0050 command.
type Command struct {
	Node  string // unique on the domain; the component's own come first
	Name  string // shown by clients
	Admin bool   // for the gateway's admins only
	// Form is handed out first, and Execute is given what the user
	// submitted (a client may send the filled form with its first
	// request). Nil: the command runs at once.
	Form *Form
	// Execute runs the command for user (a bare JID), with the submitted
	// values by field var; required fields were checked.
	Execute func(ctx context.Context, user string, values map[string][]string) (CommandResult, error)
}

// Form is an XEP-0004 form.
type Form struct {
	Title        string
	Instructions string
	Fields       []Field
}

// Field is one XEP-0004 field: Type is text-single, boolean, jid-single…
type Field struct {
	Var, Type, Label, Desc string
	Required               bool
	Values                 []string
}

// CommandResult completes a command: a note, and a result form when
// Fields is not empty.
type CommandResult struct {
	Note   string
	Title  string
	Fields []Field
}

// IQProvider is an adapter that serves IQs addressed to the gateway's
// domain (not to a contact). IQHandlers is called once, when the gateway
// is built; a payload the component serves itself is a start-up error.
type IQProvider interface {
	IQHandlers() []IQHandler
}

// IQHandler serves IQs of Type ("get" or "set") whose payload is Payload.
// It runs in the process that holds the component stream (not the
// runner's): work that must reach the network goes through the bus, as
// IQAnswer.Queue.
type IQHandler struct {
	Type    string
	Payload xml.Name
	Serve   func(ctx context.Context, iq IQ) (IQAnswer, error)
}

// IQ is a request.
type IQ struct {
	ID, From, To, Type string
	// Decode decodes the payload element into v (encoding/xml).
	Decode func(v any) error
}

// IQAnswer answers an IQ with a result.
type IQAnswer struct {
	// Payload, when not nil, is the result's child, marshalled with
	// encoding/xml.
	Payload any
	// Queue, when set, is stored on the gateway's outbound stream before
	// the result is sent (a failure to store it answers a wait error
	// instead), and the runner hands it to the adapter like any outbound
	// event. The component sets its id, gateway and time; QueueID, when
	// set, deduplicates a repeated request.
	Queue   *bus.Envelope
	QueueID string
}
