package component

import (
	"encoding/xml"
	"strings"
)

// Namespaces used on the wire.
const (
	nsStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	nsReceipts   = "urn:xmpp:receipts"
	nsOOB        = "jabber:x:oob"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsRegister   = "jabber:iq:register"
	nsCommands   = "http://jabber.org/protocol/commands"
	nsGateway    = "jabber:iq:gateway"
	nsDataForms  = "jabber:x:data"
	nsMUC        = "http://jabber.org/protocol/muc"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
)

// inMessage is what the component reads of a message stanza.
type inMessage struct {
	XMLName xml.Name
	ID      string     `xml:"id,attr"`
	From    string     `xml:"from,attr"`
	To      string     `xml:"to,attr"`
	Type    string     `xml:"type,attr"`
	Body    []langText `xml:"body"`
	Thread  string     `xml:"thread"`
	Request *struct{}  `xml:"urn:xmpp:receipts request"`
	OOB     []oob      `xml:"jabber:x:oob x"`
	Subject []langText `xml:"subject"`
	// What modern clients add (fallback.go).
	Fallbacks []fallbackIn `xml:"urn:xmpp:fallback:0 fallback"`
	Retract   *retractIn   `xml:"urn:xmpp:message-retract:1 retract"`
	Reactions *reactionsIn `xml:"urn:xmpp:reactions:0 reactions"`
	Reply     *replyIn     `xml:"urn:xmpp:reply:0 reply"`
	Replace   *replaceIn   `xml:"urn:xmpp:message-correct:0 replace"`
	OriginID  *originIDIn  `xml:"urn:xmpp:sid:0 origin-id"`
	// XEP-0085 chat states (xep0085.go).
	Composing *struct{} `xml:"http://jabber.org/protocol/chatstates composing"`
	Paused    *struct{} `xml:"http://jabber.org/protocol/chatstates paused"`
	Active    *struct{} `xml:"http://jabber.org/protocol/chatstates active"`
	Gone      *struct{} `xml:"http://jabber.org/protocol/chatstates gone"`
	// XEP-0333 chat markers (xep0333.go).
	MarkReceived     *markerIn `xml:"urn:xmpp:chat-markers:0 received"`
	MarkDisplayed    *markerIn `xml:"urn:xmpp:chat-markers:0 displayed"`
	MarkAcknowledged *markerIn `xml:"urn:xmpp:chat-markers:0 acknowledged"`
}

type originIDIn struct {
	ID string `xml:"id,attr"`
}

type langText struct {
	Lang  string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Value string `xml:",chardata"`
}

type oob struct {
	URL  string `xml:"url"`
	Desc string `xml:"desc,omitempty"`
}

// inIQ keeps the first payload element's name and what the component's IQ
// handlers read of it. The handler reads from a token stream, where
// ",innerxml" is always empty, so every payload we understand is decoded
// here, one union struct for all of them.
type inIQ struct {
	XMLName xml.Name
	ID      string    `xml:"id,attr"`
	From    string    `xml:"from,attr"`
	To      string    `xml:"to,attr"`
	Type    string    `xml:"type,attr"`
	Payload iqPayload `xml:",any"`
}

type iqPayload struct {
	XMLName xml.Name
	Node    string `xml:"node,attr"` // disco, commands
	// XEP-0050 <command/>.
	Action    string `xml:"action,attr"`
	SessionID string `xml:"sessionid,attr"`
	// XEP-0077 <remove/>.
	Remove *struct{} `xml:"remove"`
	// XEP-0100 <prompt/> in a set.
	Prompt *string `xml:"prompt"`
	// XEP-0004 form submitted with a registration or a command.
	Form *dataForm `xml:"jabber:x:data x"`
	// XEP-0077 legacy fields naming the address a user chooses.
	Nick     *string `xml:"nick"`
	Username *string `xml:"username"`
}

type inPresence struct {
	XMLName xml.Name
	ID      string `xml:"id,attr"`
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	Type    string `xml:"type,attr"`
	Status  string `xml:"status"`
	// MUC is XEP-0045's <x/>, which marks an available presence to an
	// occupant JID as a request to join.
	MUC *struct{} `xml:"http://jabber.org/protocol/muc x"`
}

// outMessage is written to the server; the stream's default namespace
// (jabber:component:accept) applies.
type outMessage struct {
	XMLName  xml.Name      `xml:"message"`
	ID       string        `xml:"id,attr,omitempty"`
	From     string        `xml:"from,attr"`
	To       string        `xml:"to,attr"`
	Type     string        `xml:"type,attr,omitempty"`
	Subject  *string       `xml:"subject"`
	Body     string        `xml:"body,omitempty"`
	Thread   string        `xml:"thread,omitempty"`
	OOB      *oobOut       `xml:"jabber:x:oob x,omitempty"`
	Invite   *inviteOut    `xml:"jabber:x:conference x,omitempty"`
	Delay    *delayOut     `xml:"urn:xmpp:delay delay,omitempty"`
	Received *receiptOut   `xml:"urn:xmpp:receipts received,omitempty"`
	Active   *chatStateOut `xml:"http://jabber.org/protocol/chatstates active,omitempty"`
	OriginID *originIDOut  `xml:"urn:xmpp:sid:0 origin-id,omitempty"`
	Reply    *replyOut     `xml:"urn:xmpp:reply:0 reply,omitempty"`
	// Conversation features (the XEP files).
	Replace   *replaceOut   `xml:"urn:xmpp:message-correct:0 replace,omitempty"`
	Reactions *reactionsOut `xml:"urn:xmpp:reactions:0 reactions,omitempty"`
	Retract   *retractOut   `xml:"urn:xmpp:message-retract:1 retract,omitempty"`
	Fallback  []fallbackOut `xml:"urn:xmpp:fallback:0 fallback,omitempty"`
	State     *elementOut   `xml:",omitempty"` // a chat state
	Marker    *markerOut    `xml:",omitempty"` // a chat marker
	Markable  *markableOut  `xml:"urn:xmpp:chat-markers:0 markable,omitempty"`
	NoStore   *noStoreHint  `xml:"urn:xmpp:hints no-store,omitempty"`
	StanzaID  *stanzaIDOut  `xml:"urn:xmpp:sid:0 stanza-id,omitempty"`
	Notice    *noticeOut    `xml:"urn:xmppgw:notice:0 notice,omitempty"`
	Store     *storeHint    `xml:"urn:xmpp:hints store,omitempty"`
	Error     *stanzaError  `xml:"error,omitempty"`
}

type oobOut struct {
	URL string `xml:"url"`
}

type receiptOut struct {
	ID string `xml:"id,attr"`
}

type chatStateOut struct{}

type stanzaError struct {
	Type      string `xml:"type,attr"`
	By        string `xml:"by,attr,omitempty"`
	Condition struct {
		XMLName xml.Name
	}
	Text *errorText `xml:"urn:ietf:params:xml:ns:xmpp-stanzas text,omitempty"`
	// App is an application-specific condition such as XEP-0050's
	// <bad-sessionid/>.
	App *appCondition `xml:",omitempty"`
}

type appCondition struct {
	XMLName xml.Name
}

// errorText carries no xml:lang: mellium's encoder re-tokenises stanzas and
// turns the reserved xml prefix into a bogus namespace declaration.
type errorText struct {
	Value string `xml:",chardata"`
}

func newStanzaError(typ, condition, text, by string) *stanzaError {
	e := &stanzaError{Type: typ, By: by}
	e.Condition.XMLName = xml.Name{Space: nsStanzas, Local: condition}
	if text != "" {
		e.Text = &errorText{Value: text}
	}
	return e
}

type outIQ struct {
	XMLName xml.Name     `xml:"iq"`
	ID      string       `xml:"id,attr"`
	From    string       `xml:"from,attr"`
	To      string       `xml:"to,attr"`
	Type    string       `xml:"type,attr"`
	Payload any          `xml:",omitempty"`
	Error   *stanzaError `xml:"error,omitempty"`
}

type discoInfo struct {
	XMLName    xml.Name   `xml:"http://jabber.org/protocol/disco#info query"`
	Node       string     `xml:"node,attr,omitempty"`
	Identities []identity `xml:"identity"`
	Features   []feature  `xml:"feature"`
}

type identity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Name     string `xml:"name,attr,omitempty"`
}

type feature struct {
	Var string `xml:"var,attr"`
}

type discoItems struct {
	XMLName xml.Name    `xml:"http://jabber.org/protocol/disco#items query"`
	Node    string      `xml:"node,attr,omitempty"`
	Items   []discoItem `xml:"item"`
}

type discoItem struct {
	JID  string `xml:"jid,attr"`
	Node string `xml:"node,attr,omitempty"`
	Name string `xml:"name,attr,omitempty"`
}

type outPresence struct {
	XMLName xml.Name     `xml:"presence"`
	ID      string       `xml:"id,attr,omitempty"`
	From    string       `xml:"from,attr"`
	To      string       `xml:"to,attr"`
	Type    string       `xml:"type,attr,omitempty"`
	Status  string       `xml:"status,omitempty"`
	MUC     *mucUser     `xml:"http://jabber.org/protocol/muc#user x,omitempty"`
	Caps    *capsOut     `xml:"http://jabber.org/protocol/caps c,omitempty"`
	Error   *stanzaError `xml:"error,omitempty"`
}

// mucUser is XEP-0045's occupant information in a room's presence.
type mucUser struct {
	Item   mucItem     `xml:"item"`
	Status []mucStatus `xml:"status"`
}

type mucItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	Nick        string `xml:"nick,attr,omitempty"`
}

type mucStatus struct {
	Code int `xml:"code,attr"`
}

// dataForm is an XEP-0004 form, read (submissions) and written (forms,
// results). Child order follows the XEP's schema.
type dataForm struct {
	XMLName      xml.Name      `xml:"jabber:x:data x"`
	Type         string        `xml:"type,attr"`
	Instructions []string      `xml:"instructions,omitempty"`
	Title        string        `xml:"title,omitempty"`
	Fields       []formField   `xml:"field"`
	Reported     *formReported `xml:"reported,omitempty"`
	Items        []formItem    `xml:"item"`
}

type formField struct {
	Var      string    `xml:"var,attr,omitempty"`
	Type     string    `xml:"type,attr,omitempty"`
	Label    string    `xml:"label,attr,omitempty"`
	Desc     string    `xml:"desc,omitempty"`
	Required *struct{} `xml:"required"`
	Values   []string  `xml:"value"`
}

type formReported struct {
	Fields []formField `xml:"field"`
}

type formItem struct {
	Fields []formField `xml:"field"`
}

// value returns the first value of the field named name, trimmed, and
// whether the form has that field.
func (f *dataForm) value(name string) (string, bool) {
	if f == nil {
		return "", false
	}
	for _, fl := range f.Fields {
		if fl.Var == name {
			if len(fl.Values) == 0 {
				return "", true
			}
			return strings.TrimSpace(fl.Values[0]), true
		}
	}
	return "", false
}
