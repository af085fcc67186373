// Package gateways is the adapter contract: what a network adapter implements,
// how it registers, and the Runner that joins one adapter instance to the bus.
//
// Lifecycle (as in Caddy): Info.New constructs an adapter with no side effects
// from its already strictly decoded config; Start connects and returns once
// the adapter can send; Send hands one message to the network; Stop releases
// everything and is safe after a failed Start. Adapters declare what they
// carry (Capabilities) and the Runner honours it: an adapter that does not
// declare media never receives media.
//
// Adapters report failures with sentinel-classified errors: an *Error with
// Permanent set (or wrapping ErrPermanent) is reported to the XMPP sender at
// once; anything else is transient and retried with backoff until the attempt
// budget is spent.
package gateways
