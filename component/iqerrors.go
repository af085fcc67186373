package component

import (
	"errors"
)

// errorTypes are the RFC 6120 §8.3.3 default error types of the defined
// conditions; a condition missing here is not one we may put on the wire.
var errorTypes = map[string]string{
	"bad-request":             "modify",
	"conflict":                "cancel",
	"feature-not-implemented": "cancel",
	"forbidden":               "auth",
	"gone":                    "cancel",
	"internal-server-error":   "cancel",
	"item-not-found":          "cancel",
	"jid-malformed":           "modify",
	"not-acceptable":          "modify",
	"not-allowed":             "cancel",
	"not-authorized":          "auth",
	"policy-violation":        "modify",
	"recipient-unavailable":   "wait",
	"redirect":                "modify",
	"registration-required":   "auth",
	"remote-server-not-found": "cancel",
	"remote-server-timeout":   "wait",
	"resource-constraint":     "wait",
	"service-unavailable":     "cancel",
	"subscription-required":   "auth",
	"undefined-condition":     "cancel",
	"unexpected-request":      "wait",
}

var errorTypeValid = map[string]bool{"auth": true, "cancel": true, "continue": true, "modify": true, "wait": true}

// errorFor turns an error of a Registrar or AddressTranslator into the
// stanza error the user sees (the rule documented on Registrar). Errors that
// carry no condition are ours, not the user's: logged, and hidden behind a
// generic text. op names the failed call for the log.
func (c *Component) errorFor(err error, op string) *stanzaError {
	var sc interface{ StanzaCondition() string }
	if !errors.As(err, &sc) {
		c.log.Error(op+" failed", "err", err)
		return newStanzaError("cancel", "internal-server-error",
			"the gateway could not complete this request; please try again later", "")
	}
	cond := sc.StanzaCondition()
	typ, ok := errorTypes[cond]
	if !ok {
		c.log.Warn(op+" returned an unknown stanza condition; sending undefined-condition", "condition", cond, "err", err)
		cond, typ = "undefined-condition", "cancel"
	}
	if t, ok := sc.(interface{ StanzaType() string }); ok && errorTypeValid[t.StanzaType()] {
		typ = t.StanzaType()
	}
	text := err.Error()
	if t, ok := sc.(interface{ StanzaText() string }); ok {
		text = t.StanzaText()
	}
	return newStanzaError(typ, cond, text, "")
}

// replyIQError answers iq with err.
func replyIQError(w encoder, iq *inIQ, err *stanzaError) error {
	return w.Encode(outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "error", Error: err})
}

// iqError is a stanza error of the condition's default type.
func iqError(cond, text string) *stanzaError {
	return newStanzaError(errorTypes[cond], cond, text, "")
}
