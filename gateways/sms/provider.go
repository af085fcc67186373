package sms

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Provider is one account at an SMS provider: the thin part that differs
// between Twilio and Telnyx. Everything else — numbers, rates, attempt
// records, media links, receipts, corrections, replies and phones'
// reactions — is the Gateway's.
type Provider interface {
	// ID names the provider ("twilio", "telnyx"): its KV keys start
	// <ID>.<gateway name>., its webhooks are served under /<ID>/<gateway>/.
	ID() string
	// Name is the provider's name for people: "Twilio".
	Name() string
	// Send hands one message to the provider and returns the provider's id
	// for it. Errors are classified the gateways way: a *gateways.Error
	// with Permanent for a refusal retrying cannot help, anything else is
	// retried. Wrap an error after which the provider certainly holds no
	// message (it answered with an error, or the request never left) in
	// NotCreated: the attempt record is then removed and a retry sends
	// without asking.
	Send(ctx context.Context, m Message) (string, error)
	// Find settles an attempt whose outcome is unknown (its record
	// survived: a timeout after the request left, a crash mid-call). It
	// returns the provider's id of the message when the attempt reached
	// the provider, "" when it certainly did not, or an error — transient
	// to ask again later, permanent (ErrOutcomeUnknown) when the provider
	// cannot tell: the message is then not sent again. The Gateway calls
	// it once the earlier request must have finished.
	Find(ctx context.Context, a Attempt) (string, error)
	// Bind tells the provider where its webhooks are served (base, a path
	// below http.public_url: /<ID>/<gateway>) and the gateway they report
	// to. New calls it once, before anything else.
	Bind(base string, g *Gateway)
	// Handler serves the provider's webhooks under base, seeing full
	// paths, verifying each request before it calls the gateway (Receive,
	// Status). The Gateway serves base+"/media/" itself.
	Handler() http.Handler
	// Fetch GETs the media at url, a URL the provider gave in a webhook,
	// with the provider's credentials where it needs them.
	Fetch(ctx context.Context, url string) (*http.Response, error)
	// Explain says what a delivery failure code of the provider means to
	// a person; "" when it has nothing to add.
	Explain(code string) string
	// Close releases idle connections.
	Close()
}

// GroupSender is a Provider that can send one MMS to several people (a
// group text). Providers without it refuse group texts.
type GroupSender interface {
	// SendGroup sends m to every number in m.Group (m.To is empty).
	SendGroup(ctx context.Context, m Message) (string, error)
	// GroupLimits says who can be in a group: at most max others, and
	// each number accepted by allowed ("" when it may, else why not).
	GroupLimits() (max int, allowed func(number string) string)
}

// Message is one SMS/MMS to send.
type Message struct {
	From  string
	To    string
	Group []string // a group text's recipients, other than From (GroupSender)
	Body  string
	Media []string // URLs the provider fetches
	// Attempt is an opaque token naming this attempt; a provider that can
	// have its callbacks carry it (Telnyx's webhook_url) passes it back
	// through StatusReport.Attempt, which settles an unknown outcome.
	Attempt string
}

// Attempt is an earlier attempt whose outcome is unknown, for Find.
type Attempt struct {
	Started time.Time
	From    string
	To      string
	Body    string
	Token   string // Message.Attempt of the attempt
	// Other reports whether the provider's message id is recorded as
	// another message's (an identical text sent earlier).
	Other func(ctx context.Context, id string) bool
}

// ErrOutcomeUnknown: the provider cannot say whether an earlier attempt
// reached it. The message is not sent again; the sender is told.
var ErrOutcomeUnknown = errors.New("the outcome of an earlier attempt is unknown")

// NotCreated marks a Send error after which the provider holds no message.
type NotCreated struct{ Err error }

func (e *NotCreated) Error() string { return e.Err.Error() }
func (e *NotCreated) Unwrap() error { return e.Err }
