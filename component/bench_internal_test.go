package component

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
)

// The conversions the component does per message, without the stream or
// the bus: compare runs with benchstat (make bench prints them).

const benchStanza = `<message from='alice@localhost/phone-7f3a' to='+15551234567@sms.localhost' type='chat' id='a2f0c6d4-6c1e-4bb5-9d1e-0c3f'>` +
	`<body>Running 10 minutes late, see you at the station - sent from the gateway benchmark.</body>` +
	`<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`

func benchComponent(b *testing.B) *Component {
	b.Helper()
	c, err := New(Options{Name: "sms", Domain: "sms.localhost", Server: "127.0.0.1:1", Bus: &bus.Bus{}, AllowedDomains: []string{"localhost"}})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	return c
}

// BenchmarkOutbound is stanza → envelope on an already parsed stanza.
func BenchmarkOutbound(b *testing.B) {
	c := benchComponent(b)
	var m inMessage
	if err := xml.Unmarshal([]byte(benchStanza), &m); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if env, _, ref := c.outbound(&m); env == nil || ref != nil {
			b.Fatalf("outbound: %+v %+v", env, ref)
		}
	}
}

// BenchmarkOutboundWire is the whole CPU path of an outbound message in the
// component: parse the stanza, convert it, encode the envelope for the bus.
func BenchmarkOutboundWire(b *testing.B) {
	c := benchComponent(b)
	raw := []byte(benchStanza)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var m inMessage
		if err := xml.NewDecoder(bytes.NewReader(raw)).Decode(&m); err != nil {
			b.Fatal(err)
		}
		env, _, ref := c.outbound(&m)
		if env == nil || ref != nil {
			b.Fatalf("outbound: %+v %+v", env, ref)
		}
		if _, err := bus.Encode(env); err != nil {
			b.Fatal(err)
		}
	}
}

func benchInbound() *bus.Envelope {
	return &bus.Envelope{
		V:       bus.Version,
		Kind:    bus.KindMessage,
		ID:      "4c1Dq2mZb0fW8XkVn3rTqa",
		Gateway: "sms",
		Time:    time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		User:    "alice@localhost",
		Contact: "+15551234567",
		Message: &bus.Message{ID: "SM0123456789abcdef0123456789abcdef", Body: "Running 10 minutes late, see you at the station - sent from the gateway benchmark."},
	}
}

// BenchmarkStanzasFor is envelope → stanza values.
func BenchmarkStanzasFor(b *testing.B) {
	c := benchComponent(b)
	e := benchInbound()
	b.ReportAllocs()
	for b.Loop() {
		if s, err := c.stanzasFor(e); err != nil || len(s) != 1 {
			b.Fatalf("stanzasFor: %v %v", s, err)
		}
	}
}

// BenchmarkStanzasForWire is the whole CPU path of an inbound message in the
// component: decode the envelope from the bus, convert it, encode the XML.
func BenchmarkStanzasForWire(b *testing.B) {
	c := benchComponent(b)
	data, err := bus.Encode(benchInbound())
	if err != nil {
		b.Fatal(err)
	}
	enc := xml.NewEncoder(io.Discard)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := bus.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		stanzas, err := c.stanzasFor(e)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range stanzas {
			if err := enc.Encode(s); err != nil {
				b.Fatal(err)
			}
		}
	}
}
