// Package gatewaytest is the conformance suite every network adapter runs:
// one set of checks of the contract in package gateways, against the
// adapter's real network (or, for Twilio alone, its faithful fake).
//
// An adapter's tests describe it with a Harness and call Run:
//
//	func TestConformance(t *testing.T) {
//		gatewaytest.Run(t, gatewaytest.Harness{
//			Info:    info, // as registered
//			New:     func(t *testing.T) gateways.Adapter { return newAdapter(t) },
//			Contact: "+15551234567",
//			Invalid: "12345",
//		})
//	}
//
// Run runs each check as a subtest, with fresh adapters. Wherever a check
// sends, what Send returns is checked too: Sent.IDs holds no empty id, and
// Sent.Text is no longer than the body sent (so for SendReply and Edit).
//
//   - Lifecycle: Stop without Start returns nil; Start, Send (which the
//     network receives, when Received can tell), Stop, and again on the same
//     adapter; Stop twice is safe; Send after Stop fails with an error
//     wrapping gateways.ErrNotConnected that is not permanent; the host of a
//     stopped run is not called any more.
//   - StartContext: Start with a cancelled context returns promptly, and
//     (with Disconnect) Start against an unreachable network returns by its
//     deadline; Stop afterwards is safe.
//   - SendDisconnected (needs Disconnect): Send while the network is
//     unreachable fails within its deadline with a transient error (over a
//     protocol without acknowledgements the first Send may still be taken
//     by a socket the server had closed; the second must fail); after
//     Reconnect the same message, retried as the Runner would, goes out.
//   - Errors (needs Invalid): Send to Invalid fails permanently with a
//     *gateways.Error carrying a Condition and a Text, and sends nothing.
//   - Capabilities: an adapter implements gateways.RoomAdapter exactly when
//     it declares Rooms, and IsRoom tells Room from Contact. Through a real
//     gateways.Runner on an embedded bus, it is handed media only if it
//     declares Media and room traffic only if it declares Rooms; what it
//     cannot carry comes back as feature-not-implemented.
//   - Features (needs a declared feature): what gateways.FeaturesOf reports
//     the adapter declares, it carries. After a Send, each declared feature
//     is called once with a well-formed request about that message (its
//     Sent.IDs; a marker, about the contact's answer when the adapter
//     delivered one with an id): an Edit, a SendReply, a reaction set and
//     then a smaller one, a displayed marker, composing, a retraction. Each
//     must return nil (gateways.ErrUnsupported or feature-not-implemented
//     for a declared feature is a lie), and a correction or reply must
//     reach the network when Received can tell. An Editor or Retractor
//     must return network ids from Send. Edit and SendReply of a message
//     without network ids may return nil or a *gateways.Error saying why,
//     but must not panic.
//   - Goroutines: after Stop, no goroutine of the adapter's package (nor an
//     HTTP client connection) is left running.
//   - SendContext: Send with an expired or cancelled context returns an error
//     at once, a transient one, and sends nothing; the adapter still works.
//   - Rooms (needs Rooms and Room): Join is completed by the user's own
//     occupant, a groupchat message goes out, Leave is completed by the own
//     occupant leaving.
//
// The context a check passes to Start ends when Start returns: an adapter
// bounds its connecting with it and must not keep it for the life of the
// connection (contexts are never stored).
//
// A check that needs a hook the harness lacks is skipped, saying which.
// The subtests run one after another, because the goroutine check counts
// what is running: do not call Run in parallel with other tests of the
// package, keep the harness' hooks from leaving goroutines or HTTP
// connections behind, and keep test helpers that run goroutines (a fake
// server) out of the adapter's package: put the conformance test in the
// external _test package.
//
// Host is the gateway side of an adapter under test, recording what the
// adapter hands over; adapters' own tests may use it too.
package gatewaytest
