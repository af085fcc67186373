package component

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/bus"
)

// fuzzComponent is built like a real gateway's; outbound never touches the
// bus, so an unopened one will do.
func fuzzComponent(tb testing.TB) *Component {
	tb.Helper()
	c, err := New(Options{Name: "sms", Domain: "sms.localhost", Server: "127.0.0.1:1", Bus: &bus.Bus{}, AllowedDomains: []string{"localhost"}})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return c
}

// decodeMessage reads a stanza the way the stream handler does; ok is false
// for bytes the handler would drop as undecodable.
func decodeMessage(raw []byte) (m inMessage, ok bool) {
	return m, xml.NewDecoder(bytes.NewReader(raw)).Decode(&m) == nil
}

var refusalTypes = map[string]bool{"cancel": true, "modify": true, "auth": true, "wait": true}

// FuzzOutbound feeds hostile message stanzas to the stanza → envelope
// conversion: whatever a client sends, it must not panic, and what it
// hands to the bus must be an envelope every reader accepts unchanged.
func FuzzOutbound(f *testing.F) {
	for _, s := range []string{
		`<message from='alice@localhost/phone' to='+15551234567@sms.localhost' type='chat' id='m1'><body>hello</body></message>`,
		`<message from='alice@localhost/phone' to='+15551234567@sms.localhost' type='chat' id='m2'><body>hi</body><request xmlns='urn:xmpp:receipts'/><thread>t1</thread></message>`,
		`<message from='alice@localhost/phone' to='+15551234567@sms.localhost' type='chat' id='m3'><body>https://up.example.org/a.jpg</body><x xmlns='jabber:x:oob'><url>https://up.example.org/a.jpg</url></x><x xmlns='jabber:x:oob'><url> </url></x></message>`,
		`<message from='alice@localhost/phone' to='+15551234567@sms.localhost' type='chat'><body xml:lang='de'>hallo</body><body>hello</body></message>`,
		`<message from='alice@localhost/phone' to='acme\20bank@sms.localhost' type='chat' id='esc'><body>thanks</body></message>`,
		`<message from='alice@localhost/phone' to='a\5c20b\40c\2fd\3ae@sms.localhost' type='chat'><body>escapes</body></message>`,
		`<message from='alice@localhost' to='sms.localhost' type='chat' id='gw'><body>to the gateway</body></message>`,
		`<message from='mallory@evil.example' to='+15551234567@sms.localhost' type='chat' id='f'><body>relay me</body></message>`,
		`<message from='alice@localhost' to='@sms.localhost' type='chat'><body>x</body></message>`,
		`<message from='' to='+15551234567@sms.localhost'><body>x</body></message>`,
		`<message from='alice@localhost' to='+15551234567@sms.localhost' type='error' id='e'><body>x</body><error type='cancel'/></message>`,
		`<message from='alice@localhost' to='+15551234567@sms.localhost' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<message from='alice@localhost' to='+15551234567@sms.localhost'><body>  </body></message>`,
		`<message from='ALICE@LOCALHOST/Res' to='+15551234567@SMS.localhost'><body><![CDATA[<&>"']]></body></message>`,
		`<message from='alice@localhost' to='+15551234567@sms.localhost'><body>&#x1F600;&#xE9;</body></message>`,
		`<message from='alice@localhost' to='+1555@sms.localhost/res'><body>x</body></message>`,
		`<iq from='alice@localhost' to='+15551234567@sms.localhost'><body>not a message</body></iq>`,
		`<message from='alice@localhost' to='+15551234567@sms.localhost'><body>unterminated`,
		``,
	} {
		f.Add([]byte(s))
	}
	c := fuzzComponent(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, ok := decodeMessage(raw)
		if !ok {
			return
		}
		orig := m
		env, msgID, ref := c.outbound(&m)
		if !reflect.DeepEqual(m, orig) {
			t.Fatalf("outbound modified the stanza: %+v → %+v", orig, m)
		}
		if ref != nil {
			if env != nil || msgID != "" {
				t.Fatalf("a refusal with an envelope: %+v %q %+v", env, msgID, ref)
			}
			if ref.cond == "" || ref.text == "" || !refusalTypes[ref.typ] {
				t.Fatalf("refusal %+v lacks a type, condition or text", ref)
			}
			return
		}
		if env == nil {
			if msgID != "" {
				t.Fatalf("no envelope but a dedup id %q", msgID)
			}
			return
		}
		if m.Type == "error" {
			t.Fatalf("an error stanza became an envelope: %+v", env)
		}
		data, err := bus.Encode(env)
		if err != nil {
			t.Fatalf("bus.Encode of the envelope for %q: %v", raw, err)
		}
		back, err := bus.Decode(data)
		if err != nil {
			t.Fatalf("bus.Decode of the envelope for %q: %v\n%s", raw, err, data)
		}
		if !back.Time.Equal(env.Time) {
			t.Fatalf("time %v came back as %v", env.Time, back.Time)
		}
		back.Time = env.Time
		if !reflect.DeepEqual(back, env) {
			t.Fatalf("envelope did not round-trip:\n sent %+v %+v\n got  %+v %+v", env, env.Message, back, back.Message)
		}
		to, err := jid.Parse(m.To)
		if err != nil {
			t.Fatalf("an envelope for an unparseable To %q", m.To)
		}
		if want := unescapeLocal(to.Localpart()); env.Contact != want {
			t.Fatalf("Contact = %q, want %q (To %q)", env.Contact, want, m.To)
		}
		if (msgID == "") != (m.ID == "") || (m.ID != "" && env.Message.ID != m.ID) || env.Message.ID == "" {
			t.Fatalf("stanza id %q gave message id %q and dedup id %q", m.ID, env.Message.ID, msgID)
		}
		if env.Gateway != "sms" || env.Kind != bus.KindMessage {
			t.Fatalf("envelope %+v is not an sms message", env)
		}
	})
}

// TestOutboundTooLarge: a body the bus cannot carry is refused with the limit.
func TestOutboundTooLarge(t *testing.T) {
	c := fuzzComponent(t)
	raw := fmt.Sprintf(`<message from='alice@localhost/phone' to='+15551234567@sms.localhost' type='chat' id='big'><body>%s</body></message>`,
		strings.Repeat("a", 2<<20))
	m, ok := decodeMessage([]byte(raw))
	if !ok {
		t.Fatal("the stanza does not decode")
	}
	env, _, ref := c.outbound(&m)
	if env != nil || ref == nil {
		t.Fatalf("a 2 MiB body was accepted")
	}
	if ref.cond != "not-acceptable" || !strings.Contains(ref.text, fmt.Sprint(maxMessageBytes)) {
		t.Errorf("refusal %s %q; want not-acceptable naming the limit %d", ref.cond, ref.text, maxMessageBytes)
	}
}

// TestOutboundEncodedSize: the limit holds for the envelope as stored, not
// just for the text: JSON writes "<" as six bytes, so 200 000 of them (well
// under the text limit) made a 1.2 MB envelope that NATS and bus.Decode
// refuse, and the sender was told to try again.
func TestOutboundEncodedSize(t *testing.T) {
	c := fuzzComponent(t)
	for _, tt := range []struct {
		name, body, thread, id string
	}{
		{"markup body", strings.Repeat("<", 200_000), "", "big"},
		{"huge thread", "hi", strings.Repeat("&", 200_000), "thread"},
		{"huge id", "hi", "", strings.Repeat("x", maxMessageBytes)},
	} {
		raw := fmt.Sprintf(`<message from='alice@localhost/phone' to='+15551234567@sms.localhost' type='chat' id='%s'><body><![CDATA[%s]]></body><thread><![CDATA[%s]]></thread></message>`,
			tt.id, tt.body, tt.thread)
		m, ok := decodeMessage([]byte(raw))
		if !ok {
			t.Fatalf("%s: the stanza does not decode", tt.name)
		}
		env, msgID, ref := c.outbound(&m)
		if ref != nil {
			if ref.cond != "not-acceptable" || !strings.Contains(ref.text, fmt.Sprint(maxMessageBytes)) {
				t.Errorf("%s: refusal %s %q; want not-acceptable naming the limit", tt.name, ref.cond, ref.text)
			}
			continue
		}
		data, err := bus.Encode(env)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if _, err := bus.Decode(data); err != nil || len(data)+len(msgID) > maxMessageBytes {
			t.Errorf("%s: accepted, but the envelope is %d bytes (+%d of dedup id) and Decode says %v", tt.name, len(data), len(msgID), err)
		}
	}
}

// FuzzEscape: XEP-0106 escaping is reversible and leaves none of the
// characters a localpart cannot hold.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "+15551234567", "ACME Bank", `\`, `\20`, `\5c`, `\5c20`, `a\zzb`, `\\20`, `"&'/:<>@`, "d'artagnan", `a@b/c:d`, "ü\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		esc := escapeLocal(s)
		if back := unescapeLocal(esc); back != s {
			t.Fatalf("unescapeLocal(escapeLocal(%q)) = %q (escaped %q)", s, back, esc)
		}
		if i := strings.IndexAny(esc, ` "&'/:<>@`); i >= 0 {
			t.Fatalf("escapeLocal(%q) = %q keeps %q", s, esc, esc[i])
		}
	})
}
