package component

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/stanza"
)

// gatewayQuery is XEP-0100 §6.3 jabber:iq:gateway, both answers: desc and
// prompt to a get, jid to a set.
type gatewayQuery struct {
	XMLName xml.Name `xml:"jabber:iq:gateway query"`
	Desc    string   `xml:"desc,omitempty"`
	Prompt  string   `xml:"prompt,omitempty"`
	JID     string   `xml:"jid,omitempty"`
}

// onGateway lets a client turn what its user typed into a contact JID.
// It tells nothing about registrations and relays nothing, so anyone may ask.
func (c *Component) onGateway(w encoder, iq *inIQ) error {
	reply := outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "result"}
	if iq.Type == "get" {
		desc, prompt := c.o.Translator.AddressPrompt()
		reply.Payload = gatewayQuery{Desc: desc, Prompt: prompt}
		return w.Encode(reply)
	}
	if iq.Payload.Prompt == nil {
		return replyIQError(w, iq, iqError("bad-request", "send the address to translate in <prompt/>"))
	}
	addr, err := c.o.Translator.TranslateAddress(*iq.Payload.Prompt)
	if err != nil {
		return replyIQError(w, iq, c.errorFor(err, "translate address"))
	}
	j, err := c.contactJID(addr)
	if err != nil {
		return replyIQError(w, iq, iqError("jid-malformed", err.Error()))
	}
	reply.Payload = gatewayQuery{JID: j.String()}
	return w.Encode(reply)
}

func init() {
	for _, typ := range []stanza.IQType{stanza.GetIQ, stanza.SetIQ} {
		handleIQ(typ, xml.Name{Space: nsGateway, Local: "query"}, func(c *Component, _ context.Context, w encoder, iq *inIQ, r route) error {
			if c.o.Translator == nil || r.to.Localpart() != "" {
				return serviceUnavailable(w, iq)
			}
			return c.onGateway(w, iq)
		})
	}
}
