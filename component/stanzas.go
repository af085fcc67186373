package component

import "encoding/xml"

// Namespaces used on the wire.
const (
	nsStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	nsReceipts   = "urn:xmpp:receipts"
	nsOOB        = "jabber:x:oob"
	nsChatStates = "http://jabber.org/protocol/chatstates"
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
}

type langText struct {
	Lang  string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Value string `xml:",chardata"`
}

type oob struct {
	URL  string `xml:"url"`
	Desc string `xml:"desc,omitempty"`
}

// inIQ keeps the first payload element's name and node.
type inIQ struct {
	XMLName xml.Name
	ID      string `xml:"id,attr"`
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	Type    string `xml:"type,attr"`
	Payload struct {
		XMLName xml.Name
		Node    string `xml:"node,attr"`
	} `xml:",any"`
}

type inPresence struct {
	XMLName xml.Name
	ID      string `xml:"id,attr"`
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	Type    string `xml:"type,attr"`
}

// outMessage is written to the server; the stream's default namespace
// (jabber:component:accept) applies.
type outMessage struct {
	XMLName  xml.Name      `xml:"message"`
	ID       string        `xml:"id,attr,omitempty"`
	From     string        `xml:"from,attr"`
	To       string        `xml:"to,attr"`
	Type     string        `xml:"type,attr,omitempty"`
	Body     string        `xml:"body,omitempty"`
	Thread   string        `xml:"thread,omitempty"`
	OOB      *oobOut       `xml:"jabber:x:oob x,omitempty"`
	Received *receiptOut   `xml:"urn:xmpp:receipts received,omitempty"`
	Active   *chatStateOut `xml:"http://jabber.org/protocol/chatstates active,omitempty"`
	Error    *stanzaError  `xml:"error,omitempty"`
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
	XMLName xml.Name `xml:"http://jabber.org/protocol/disco#items query"`
	Node    string   `xml:"node,attr,omitempty"`
}

type outPresence struct {
	XMLName xml.Name `xml:"presence"`
	ID      string   `xml:"id,attr,omitempty"`
	From    string   `xml:"from,attr"`
	To      string   `xml:"to,attr"`
	Type    string   `xml:"type,attr,omitempty"`
}
