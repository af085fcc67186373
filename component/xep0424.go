package component

// XEP-0424 Message Retraction (urn:xmpp:message-retract:1). Outbound, with
// retractions declared, <retract id='X'/> becomes a retraction envelope;
// without them it is refused feature-not-implemented and its fallback
// ("… attempted to retract a previous message …") never reaches the
// network. Inbound, a retraction is written with the XEP's fallback body,
// marked as such, and a store hint.

func init() {
	register(nsRetract, entContact|entRoom, func(c *Component) bool { return c.o.Features.Retractions })
}

type retractIn struct {
	ID string `xml:"id,attr"`
}

type retractOut struct {
	ID string `xml:"id,attr"`
}

// retractFallback is the body for clients without XEP-0424 (the XEP's
// wording).
const retractFallback = "This person attempted to retract a previous message, but it's unsupported by your client."
