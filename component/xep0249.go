package component

import "github.com/xmppgw/xmppgw/bus"

// XEP-0249 Direct MUC Invitations. A network that creates rooms itself —
// a group text — invites the user into the room it created: an inbound
// message with bus.Message.Invite, written as a message from the contact
// who started it to the user's bare JID, with the room's JID in
// <x xmlns='jabber:x:conference'/> and the reason as body too, for
// clients that do not show invitations.

type inviteOut struct {
	JID    string `xml:"jid,attr"`
	Reason string `xml:"reason,attr,omitempty"`
}

// inviteStanza writes the invitation m carries.
func (c *Component) inviteStanza(e *bus.Envelope, from, to string) ([]any, error) {
	room, err := c.contactJID(e.Message.Invite)
	if err != nil {
		return nil, err
	}
	m := e.Message
	id := stanzaID(e.ID, 0)
	if m.ID != "" {
		id = bus.NetworkStanzaID(m.ID, 0)
	}
	return []any{outMessage{ID: id, From: from, To: to, Body: m.Body,
		Invite: &inviteOut{JID: room.String(), Reason: m.Body}, Store: &storeHint{}}}, nil
}
