package component

// XEP-0444 Message Reactions. Outbound, with reactions declared, a
// <reactions id='X'> becomes a reaction envelope with the full set (an
// empty set removes the user's reactions); its fallback body never reaches
// the network. Without them it is refused feature-not-implemented
// (fallback.go). Inbound, a reaction is written from the contact (in a
// room, from the occupant) with a store hint, as the XEP asks.

func init() {
	register(nsReact, entContact|entRoom, func(c *Component) bool { return c.o.Features.Reactions })
}

type reactionsIn struct {
	ID        string   `xml:"id,attr"`
	Reactions []string `xml:"reaction"`
}

type reactionsOut struct {
	ID        string   `xml:"id,attr"`
	Reactions []string `xml:"reaction"`
}
