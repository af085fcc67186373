package component

import (
	"strings"
)

// XEP-0428 fallback indication. Clients send what an older client should
// show in the body, and mark it: a retraction's "This person attempted to
// retract a previous message, but it's unsupported by your client.", a
// reaction's emoji, a reply's quote of the message replied to. That text is
// not what the user wrote, and it must never reach a network as if they had
// (a phone receiving "/me retracted a previous message" is a message the
// user never sent). What the user did write is sent; a stanza left with
// nothing the user wrote is answered feature-not-implemented, naming what
// the network cannot do — never silently dropped.
//
// Every marked fallback is removed, whatever the adapter declares: with a
// feature declared, what it stood for travels as the feature itself
// (xep0444.go, xep0424.go, xep0461.go).

const (
	nsFallback = "urn:xmpp:fallback:0"
	nsRetract  = "urn:xmpp:message-retract:1"
	nsReact    = "urn:xmpp:reactions:0"
	nsReply    = "urn:xmpp:reply:0"
)

// fallbackIn is one <fallback for='…'>: without <body/> ranges the whole
// body is fallback; with them, the ranges are (code points, end exclusive).
type fallbackIn struct {
	For    string          `xml:"for,attr"`
	Bodies []fallbackRange `xml:"body"`
}

type fallbackRange struct {
	Start *int `xml:"start,attr"`
	End   *int `xml:"end,attr"`
}

// withoutFallback returns body with every range marked as fallback
// removed. Ranges out of bounds are clamped; a fallback element without
// ranges marks the whole body.
func withoutFallback(body string, fbs []fallbackIn) string {
	if len(fbs) == 0 {
		return body
	}
	runes := []rune(body)
	drop := make([]bool, len(runes))
	for _, fb := range fbs {
		if len(fb.Bodies) == 0 {
			return ""
		}
		for _, r := range fb.Bodies {
			start, end := 0, len(runes)
			if r.Start != nil {
				start = *r.Start
			}
			if r.End != nil {
				end = *r.End
			}
			start, end = max(0, min(start, len(runes))), max(0, min(end, len(runes)))
			for i := start; i < end; i++ {
				drop[i] = true
			}
		}
	}
	var b strings.Builder
	for i, r := range runes {
		if !drop[i] {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unsupported says what the network cannot do with m when nothing the user
// wrote is left to send; "" when m asks for nothing of the kind.
func (c *Component) unsupported(m *inMessage) string {
	network := c.o.IdentityName
	if network == "" {
		network = "this network"
	}
	switch {
	case m.Retract != nil:
		return network + " cannot unsend a message: the contact keeps what they received"
	case m.Reactions != nil:
		return network + " cannot carry reactions; reply with a message instead"
	case len(m.Fallbacks) > 0:
		return network + " cannot carry this kind of message (" + m.Fallbacks[0].For + ")"
	}
	return ""
}

// fallbackOut marks the part of a body written for clients without a
// feature (XEP-0428); no range: the whole body.
type fallbackOut struct {
	For    string             `xml:"for,attr"`
	Bodies []fallbackRangeOut `xml:"body,omitempty"`
}

type fallbackRangeOut struct {
	Start int `xml:"start,attr"`
	End   int `xml:"end,attr"`
}
