package component

import (
	"context"
	"encoding/xml"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"
)

// IQs are routed by mellium's mux on their type and payload; each XEP file
// registers the payloads it serves (handleIQ, from init), the way it
// registers its disco features (disco.go). An IQ get or set that nothing
// serves is answered service-unavailable by the mux; results and errors
// answer nothing.
//
// Messages and presence are not routed by payload: the mux calls a handler
// per child element, and one message (a body with a reply, its fallback
// and a correction) or presence (a MUC join with its status) must be read
// whole to become one envelope. They are decoded once and handed to the
// XEP files' functions (handler.go).

// iqFunc serves one IQ whose addresses parsed as r.
type iqFunc func(c *Component, ctx context.Context, w encoder, iq *inIQ, r route) error

type iqRoute struct {
	typ     stanza.IQType
	payload xml.Name
	serve   iqFunc
}

var iqRoutes []iqRoute

// handleIQ registers serve for IQs of type typ with payload.
func handleIQ(typ stanza.IQType, payload xml.Name, serve iqFunc) {
	iqRoutes = append(iqRoutes, iqRoute{typ, payload, serve})
}

// iqMux is the IQ router of one stream.
func (c *Component) iqMux(ctx context.Context) *mux.ServeMux {
	opts := make([]mux.Option, 0, len(iqRoutes)+len(c.o.IQHandlers))
	for _, rt := range iqRoutes {
		opts = append(opts, mux.IQFunc(rt.typ, rt.payload, func(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			in := &inIQ{XMLName: iq.XMLName, ID: iq.ID, From: iq.From.String(), To: iq.To.String(), Type: string(iq.Type)}
			d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
			if err := d.Decode(&in.Payload); err != nil {
				return replyIQError(t, in, iqError("bad-request", "the request could not be read: "+err.Error()))
			}
			r, err := c.parseRoute(in.From, in.To)
			if err != nil {
				return replyIQError(t, in, iqError("jid-malformed", "invalid address: "+err.Error()))
			}
			return rt.serve(c, ctx, t, in, r)
		}))
	}
	opts = append(opts, c.adapterIQOptions(ctx)...)
	// Any namespace: the component stream's stanzas are in
	// jabber:component:accept.
	return mux.New("", opts...)
}

// onIQ checks the addresses (the mux would end the stream on a JID it
// cannot parse) and routes the IQ.
func (c *Component) onIQ(_ context.Context, iqs *mux.ServeMux, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var from, to, id, typ string
	for _, a := range start.Attr {
		switch a.Name.Local {
		case "from":
			from = a.Value
		case "to":
			to = a.Value
		case "id":
			id = a.Value
		case "type":
			typ = a.Value
		}
	}
	if _, err := c.parseRoute(from, to); err != nil {
		if typ != "get" && typ != "set" {
			return nil
		}
		return t.Encode(outIQ{ID: id, From: to, To: from, Type: "error",
			Error: newStanzaError("modify", "jid-malformed", "invalid address: "+err.Error(), "")})
	}
	return iqs.HandleXMPP(t, start)
}

func serviceUnavailable(w encoder, iq *inIQ) error {
	return w.Encode(outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "error", Error: newStanzaError("cancel", "service-unavailable", "", "")})
}

func init() {
	handleIQ(stanza.GetIQ, xml.Name{Space: nsPing, Local: "ping"}, func(c *Component, _ context.Context, w encoder, iq *inIQ, _ route) error {
		return w.Encode(outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "result"})
	})
}
