package xmpptest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

const (
	nsStream   = "http://etherx.jabber.org/streams"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsJabberCl = "jabber:client"
)

// Stanza is a received top-level stanza, parsed from the raw XML.
type Stanza struct {
	Kind string // "message", "presence" or "iq"
	Type string // the type attribute, e.g. "chat", "error", "result"
	From string
	To   string
	ID   string
	Body string // message body, if any
	// For type="error": the <error type=...>, the defined condition
	// (e.g. "service-unavailable", "jid-malformed") and the <text>.
	ErrorType      string
	ErrorCondition string
	ErrorText      string
	Raw            string // the stanza as received
}

func (s Stanza) String() string {
	return s.Raw
}

// rawStanza is decoded from any stanza; innerxml keeps the children verbatim
// while the other fields are still filled.
type rawStanza struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Body    []string   `xml:"body"`
	Error   *struct {
		Type     string       `xml:"type,attr"`
		Children []xmlElement `xml:",any"`
	} `xml:"error"`
	Inner string `xml:",innerxml"`
}

type xmlElement struct {
	XMLName xml.Name
	Text    string `xml:",chardata"`
}

// ParseStanza parses one stanza (<message/>, <presence/> or <iq/>).
func ParseStanza(raw string) (Stanza, error) {
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return Stanza{}, fmt.Errorf("parse stanza: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return decodeStanza(d, se, raw)
		}
	}
}

func decodeStanza(d *xml.Decoder, se xml.StartElement, raw string) (Stanza, error) {
	var r rawStanza
	if err := d.DecodeElement(&r, &se); err != nil {
		return Stanza{}, fmt.Errorf("parse <%s>: %w", se.Name.Local, err)
	}
	s := Stanza{Kind: r.XMLName.Local, Raw: raw}
	for _, a := range r.Attrs {
		if a.Name.Space != "" && a.Name.Space != nsJabberCl {
			continue
		}
		switch a.Name.Local {
		case "type":
			s.Type = a.Value
		case "from":
			s.From = a.Value
		case "to":
			s.To = a.Value
		case "id":
			s.ID = a.Value
		}
	}
	if len(r.Body) > 0 {
		s.Body = r.Body[0]
	}
	if r.Error != nil {
		s.ErrorType = r.Error.Type
		for _, c := range r.Error.Children {
			if c.XMLName.Space != nsStanzas {
				continue
			}
			if c.XMLName.Local == "text" {
				s.ErrorText = c.Text
			} else if s.ErrorCondition == "" {
				s.ErrorCondition = c.XMLName.Local
			}
		}
	}
	if s.Raw == "" {
		s.Raw = rebuild(se, r.Inner)
	}
	return s, nil
}

// rebuild re-serializes a stanza from its start tag and inner XML: the
// decoder reports what it read, not the bytes, for the start tag.
func rebuild(se xml.StartElement, inner string) string {
	var b strings.Builder
	b.WriteString("<" + se.Name.Local)
	if se.Name.Space != "" {
		fmt.Fprintf(&b, " xmlns=%q", se.Name.Space)
	}
	for _, a := range se.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		name := a.Name.Local
		switch a.Name.Space {
		case "":
		case "http://www.w3.org/XML/1998/namespace", "xml":
			name = "xml:" + name
		default:
			continue
		}
		var v bytes.Buffer
		_ = xml.EscapeText(&v, []byte(a.Value))
		fmt.Fprintf(&b, " %s=\"%s\"", name, v.String())
	}
	b.WriteString(">" + inner + "</" + se.Name.Local + ">")
	return b.String()
}

// parseStream reads a server-to-client XML stream (with restarts after
// SASL, which nest a new <stream:stream> inside the old one) and calls emit
// for every stanza. Non-stanza elements (features, SASL) are skipped.
func parseStream(r io.Reader, emit func(Stanza)) error {
	d := xml.NewDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Space == nsStream && se.Name.Local == "stream" {
			continue // open streams are the only open elements
		}
		switch se.Name.Local {
		case "message", "presence", "iq":
			s, err := decodeStanza(d, se, "")
			if err != nil {
				return err
			}
			emit(s)
		default:
			if err := d.Skip(); err != nil {
				return err
			}
		}
	}
}
