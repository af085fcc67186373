// Package component is the XMPP edge of the gateway: one XEP-0114 stream per
// gateway domain, translating stanzas to bus envelopes and back.
//
// A Component keeps its stream up for as long as its Run context lives,
// reconnecting with capped exponential backoff and jitter. While the stream is
// authenticated it consumes the gateway's inbound subject and writes each
// envelope to the XMPP server, acknowledging it only once written; while the
// stream is down inbound envelopes stay on the bus.
//
// Messages with a body (or an XEP-0066 attachment) sent to a contact JID are
// stored on the bus before anything else happens. Chat states, receipts and
// empty messages are not network messages; error stanzas are never answered
// with errors. It answers XEP-0030 disco#info/#items, XEP-0199 ping, and
// subscription requests (XEP-0100 style). With a Registrar it serves XEP-0077
// registration on the gateway's domain (the Registrar picks the number) and
// XEP-0050 ad-hoc commands (show-number for users; assign-number,
// unassign-number and list-registrations for Admins; named after the
// network's addresses, Options.AddressNoun, and without assigning when
// Options.Unassignable); with an
// AddressTranslator, XEP-0100 jabber:iq:gateway. An adapter's own commands
// and IQs on the domain (Options.Commands, Options.IQHandlers; adapter.go)
// are served with the same rules. Every other IQ get/set gets
// service-unavailable.
package component
