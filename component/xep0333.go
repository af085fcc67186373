package component

import (
	"encoding/xml"

	"github.com/xmppgw/xmppgw/bus"
)

// XEP-0333 Displayed Markers. Outbound, with markers declared, <received/>
// and <displayed/> become ephemeral marker events (<acknowledged/> is read
// as displayed); without them they are hints and dropped. Inbound, the
// contact's marker is written with the id the user's client knows, and the
// messages the component writes are <markable/> so that clients send
// markers for them.

const nsMarkers = "urn:xmpp:chat-markers:0"

func init() {
	register(nsMarkers, entContact|entRoom, func(c *Component) bool { return c.o.Features.Markers })
}

type markerIn struct {
	ID string `xml:"id,attr"`
}

type markerOut struct {
	XMLName xml.Name
	ID      string `xml:"id,attr"`
}

type markableOut struct{}

// marker returns the state and id of the first marker in m ("" if none).
func marker(m *inMessage) (state, id string) {
	switch {
	case m.MarkDisplayed != nil:
		return bus.MarkerDisplayed, m.MarkDisplayed.ID
	case m.MarkAcknowledged != nil:
		return bus.MarkerDisplayed, m.MarkAcknowledged.ID
	case m.MarkReceived != nil:
		return bus.MarkerReceived, m.MarkReceived.ID
	}
	return "", ""
}

func markerElement(state, id string) *markerOut {
	return &markerOut{XMLName: xml.Name{Space: nsMarkers, Local: state}, ID: id}
}
