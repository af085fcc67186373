// Package bus is the contract between the XMPP component and the gateway
// adapters: versioned JSON envelopes carried on NATS JetStream.
//
// Open starts an embedded nats-server (JetStream on disk, no TCP listener
// unless asked for) or connects to an external NATS deployment, and creates or
// updates the streams and KV buckets the gateway needs. Every envelope is
// stored durably before Publish returns, so the side that handed it over can
// be acknowledged. docs/bus.md specifies the wire format so that adapters in
// any language can take part.
package bus
