package gateways

import "context"

// Pusher is an adapter that delivers push notifications (bus.KindPush):
// a XEP-0357 app server such as adapter push. The runner calls Push for
// each notification stored on the gateway's outbound stream, one device
// (User, Node) at a time and in order, like a conversation's messages.
//
// A nil error settles the notification, delivered or deliberately not
// (rate-limited, or the device unregistered meanwhile). An error wrapping
// ErrPermanent gives up at once; any other error is retried with backoff
// up to the runner's MaxAttempts. A notification given up is logged and
// counted, and nobody is told: the publishing server had its answer.
type Pusher interface {
	Push(ctx context.Context, p Push) error
}

// Push is one notification for one device.
type Push struct {
	User string // the device's owner, a bare JID
	Node string // the device's node
	// Count, Sender and Body are the XEP-0357 summary; Sender and Body
	// are set only for a device registered for message content.
	Count        int
	Sender, Body string
	Key          string // the bus envelope's id: the same on every attempt
	Attempt      int    // 1 on the first try
}
