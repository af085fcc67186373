package component

// XEP-0359 Unique and Stable Stanza IDs. Every message the component
// writes from a network message has a stanza id and an <origin-id/> made
// from the network's id (bus.NetworkStanzaID): a redelivery has the same
// id, and a reference to it (a reaction, a marker) carries the network's
// id back. Messages in rooms also carry the room's <stanza-id by='room'/>,
// which clients use to refer to groupchat messages.

type originIDOut struct {
	ID string `xml:"id,attr"`
}

type stanzaIDOut struct {
	ID string `xml:"id,attr"`
	By string `xml:"by,attr"`
}
