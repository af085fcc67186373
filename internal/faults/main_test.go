//go:build faults

// Package faults_test is the fault-injection suite: each scenario runs a real
// Prosody, the real xmppgw binary as a separate process and the fake Twilio
// API, sends a numbered series of messages both ways, injects one fault in
// the middle, and accounts for every message.
//
//	make test-faults    # go test -tags faults -count=1 -v ./internal/faults/
//
// Traffic. Outbound, alice (a go-xmpp client) writes o-00001… (stanza id and
// body) to +15551230001@sms.localhost; inbound, a poster sends one signed
// webhook per message i-00001… (its own MessageSid) and, as Twilio does,
// posts the same parameters again until the gateway answers 200. Both are
// paced at -rate per second (default 250, each way at once); a generator
// held up catches up at once, as a backlog would. Faults are triggered by
// counts ("a quarter delivered each way"), never by time.
//
// Outcomes. Outbound: delivered (the fake Twilio has the body; extra copies
// are duplicates), reported as an error (alice got an error stanza with the
// id — Prosody's own bounce while the component is disconnected counts: it
// is a correct report), or lost. Inbound: delivered to alice (extra copies
// are duplicates), refused (never answered 200 by the end: the provider
// still has it; shown as errors), or lost (answered 200, never delivered).
// Retries: failed create calls at Twilio (out), webhook re-posts (in).
// Out-of-order: arrivals after a higher-numbered one.
//
// The socket window. XEP-0114 has no acknowledgements: a stanza written into
// the component connection just before it is cut is gone without a trace.
// To count that apart, the gateway reaches Prosody through a TCP relay (the
// tap) that records, per connection and in order, the ids of the messages
// Prosody wrote towards the component and the bodies of those the component
// wrote towards Prosody. A lost message is in the window only if:
//   - it crossed a connection that a fault cut (the gateway killed, Prosody
//     restarted; an orderly shutdown grants nothing), and
//   - it came after the last message on that connection known to have got
//     through (outbound: delivered or answered with an error; inbound:
//     received by alice) — XEP-0114 loses the tail of a stream, not its
//     middle. Inbound, the one message being written when the server closed
//     the connection counts too if the tap could not read it: the gateway
//     writes inbound messages one at a time, so it is the next number.
//
// Outbound messages alice wrote on her own connection while Prosody went
// down, that never reached the component (the c2s window, no XEP-0198), are
// counted in the window the same way. Messages written after the writer's
// own </stream:stream> are never in the window. Anything else unaccounted
// for is lost; lost or duplicated messages fail the test, and so does a
// message alice was told had failed (not "may still be delivered") that
// was delivered all the same.
//
// A scenario ends when both generators are done, the gateway's bus holds
// nothing (xmppgw_bus_pending_messages is 0) and the counts have not moved
// for 2 s (10 s while some message is unaccounted for), or after 120 s.
// The table of all scenarios is logged by TestFaults and printed on stdout
// at the end. Flags (after -args): -n messages per direction, -rate.
package faults_test

import (
	"os"
	"testing"

	"github.com/xmppgw/xmppgw/internal/scenario"
)

var (
	// suite builds xmppgw once, without -race: the suite measures
	// behaviour under faults at realistic speed; `make test` covers races.
	// Its nats-server is the stand-alone one of the external-bus scenario.
	suite = scenario.NewSuite("xmppgw-faults-bin-", 2000, 250, "paced, both directions at once")

	// results collects every scenario's rows for the final table.
	results resultTable
)

func TestMain(m *testing.M) {
	os.Exit(suite.Main(m, results.String))
}
