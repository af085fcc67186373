package component

// XEP-0308 Last Message Correction. Outbound, a <replace id='X'/> with a
// body becomes a message with message.replace = X, when the adapter
// declares corrections; without them the corrected text goes as a plain
// message (what the user wrote). Inbound, a message with replace is
// written with <replace id='…'/> of the id the user's client knows.

const nsCorrect = "urn:xmpp:message-correct:0"

func init() {
	register(nsCorrect, entContact|entRoom, func(c *Component) bool { return c.o.Features.Corrections })
}

// replaceIn is a XEP-0308 correction of the sender's message with ID.
type replaceIn struct {
	ID string `xml:"id,attr"`
}

type replaceOut struct {
	ID string `xml:"id,attr"`
}
