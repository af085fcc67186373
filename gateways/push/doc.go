// Package push is the push gateway (adapter: push): xmppgw as a XEP-0357
// app server. A phone's XMPP client registers its device with an ad-hoc
// command (commands.go) and gets a node and a secret, which it gives its
// own server in XEP-0357 <enable/>. While the client is away, the server
// publishes a notification to the node for each message; the gateway
// checks node and secret, stores the notification on the bus (a push
// envelope) and answers; the runner then delivers it through the device's
// push service: UnifiedPush (RFC 8030), FCM (HTTP v1) or APNs (HTTP/2),
// with a per-device rate limit (services.go, push.go).
//
// A push service saying the device is gone removes the registration, and
// the server's next publish is refused item-not-found, so that the server
// disables push for the device. Nothing of a message's content is stored
// or sent unless the device registered for it.
package push
