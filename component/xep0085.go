package component

import (
	"encoding/xml"

	"github.com/xmppgw/xmppgw/bus"
)

// XEP-0085 Chat State Notifications. Outbound, with typing declared, a
// bodiless chat state becomes an ephemeral typing event (inactive is not
// carried: no network has it); a chat state beside a body is part of the
// message and not sent on. Inbound, a typing event is written as the chat
// state with a no-store hint. Every chat message the component writes
// carries <active/> (deliver.go), as XEP-0085 asks of a sender that
// supports chat states.

func init() {
	register(nsChatStates, entContact|entRoom, func(c *Component) bool { return c.o.Features.Typing })
}

// elementOut is an empty element whose name is set at run time.
type elementOut struct {
	XMLName xml.Name
}

type noStoreHint struct{}

// chatState returns the bus typing state of m's chat state ("" if none
// that networks carry).
func chatState(m *inMessage) string {
	switch {
	case m.Composing != nil:
		return bus.TypingComposing
	case m.Paused != nil:
		return bus.TypingPaused
	case m.Active != nil:
		return bus.TypingActive
	case m.Gone != nil:
		return bus.TypingGone
	}
	return ""
}
