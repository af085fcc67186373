package xmpptest_test

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

const wait = 5 * time.Second

var servers = []struct {
	name  string
	start func(testing.TB, xmpptest.Options) *xmpptest.Server
}{
	{"prosody", xmpptest.StartProsody},
	{"ejabberd", xmpptest.StartEjabberd},
}

func TestServers(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			s := srv.start(t, xmpptest.Options{
				Components: map[string]string{"sandbox.localhost": "s3cret"},
			})
			t.Logf("%s started in %v (c2s %s, component %s)", s.Name(), time.Since(began), s.C2SAddr(), s.ComponentAddr())
			if s.Name() != srv.name || s.Domain() != "localhost" {
				t.Fatalf("Name, Domain = %q, %q", s.Name(), s.Domain())
			}

			t.Run("chat", func(t *testing.T) { testChat(t, s) })
			t.Run("error to offline user", func(t *testing.T) { testOfflineError(t, s) })
			t.Run("component", func(t *testing.T) { testComponent(t, s) })
			t.Run("restart", func(t *testing.T) {
				began := time.Now()
				s.Restart(t)
				t.Logf("%s restarted in %v", s.Name(), time.Since(began))
				testChat(t, s) // accounts survive
				testComponent(t, s)
			})
		})
	}
}

// TestOffline: with Options.Offline a message to a user without a session
// is kept and delivered at login; Send and Done work without a test.
func TestOffline(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			s := srv.start(t, xmpptest.Options{Offline: true})
			alice := xmpptest.Login(t, s, "alice", "password")
			if err := alice.Send(`<message to="bob@localhost" type="chat" id="kept-1"><body>while you were out</body></message>`); err != nil {
				t.Fatal(err)
			}
			// Nothing bounces: ping after the message, so once the pong is
			// in, an error would have been too.
			alice.SendRaw(t, `<iq type="get" id="after-kept" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
			alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "after-kept" })
			for _, raw := range alice.Stanzas() {
				if strings.Contains(raw, "kept-1") {
					t.Errorf("the message to offline bob bounced: %s", raw)
				}
			}
			bob := xmpptest.Login(t, s, "bob", "password")
			bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Body == "while you were out" })

			if err := alice.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-alice.Done():
			default:
				t.Error("Done is still open after Close")
			}
			if err := alice.Send(`<presence/>`); err == nil {
				t.Error("Send on a closed stream returned nil")
			}
		})
	}
}

func testChat(t *testing.T, s *xmpptest.Server) {
	alice := xmpptest.Login(t, s, "alice", "password")
	bob := xmpptest.Login(t, s, "bob", "password")
	if got, want := bob.BareJID(), "bob@localhost"; got != want {
		t.Errorf("BareJID = %q, want %q", got, want)
	}
	body := "hello <bob> & \"friends\""
	id := alice.SendChat(t, bob.BareJID(), body)

	chat := bob.WaitChat(t, wait, func(c xmpp.Chat) bool { return c.Text == body })
	if !strings.HasPrefix(chat.Remote, "alice@localhost/") || chat.Type != "chat" {
		t.Errorf("chat from %q type %q", chat.Remote, chat.Type)
	}
	st := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Kind == "message" && s.ID == id })
	if st.Body != body || st.Type != "chat" || st.From != alice.JID() {
		t.Errorf("stanza = %+v", st)
	}
}

// Offline storage is disabled, so a message to an offline account bounces.
func testOfflineError(t *testing.T, s *xmpptest.Server) {
	alice := xmpptest.Login(t, s, "alice", "password")
	for _, to := range []string{"nobody@localhost", "bob@localhost"} { // no account; offline
		id := alice.SendChat(t, to, "anyone?")
		st := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == id })
		if st.Kind != "message" || st.Type != "error" || st.From != to ||
			st.ErrorType != "cancel" || st.ErrorCondition != "service-unavailable" {
			t.Errorf("to %s: got %+v, want a cancel/service-unavailable error", to, st)
		}
		// go-xmpp reports the same bounce as a Chat of type "error".
		alice.WaitChat(t, wait, func(c xmpp.Chat) bool { return c.Type == "error" && c.Remote == to })
	}
}

// testComponent attaches a XEP-0114 component and bounces a message with
// jid-malformed, as the gateway does for a bad phone number.
func testComponent(t *testing.T, s *xmpptest.Server) {
	comp := dialComponent(t, s.ComponentAddr(), "sandbox.localhost", "s3cret")
	alice := xmpptest.Login(t, s, "alice", "password")
	id := alice.SendChat(t, "not-a-number@sandbox.localhost", "hi")

	got := comp.next(t)
	if got.XMLName.Local != "message" || got.ID != id || got.Body != "hi" {
		t.Fatalf("component got %+v", got)
	}
	comp.send(t, fmt.Sprintf(`<message from="%s" to="%s" id="%s" type="error">`+
		`<error type="modify"><jid-malformed xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>`+
		`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">not a phone number</text></error></message>`,
		got.To, got.From, got.ID))

	st := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Type == "error" && s.ID == id })
	want := xmpptest.Stanza{
		Kind: "message", Type: "error", From: "not-a-number@sandbox.localhost", To: alice.JID(), ID: id,
		ErrorType: "modify", ErrorCondition: "jid-malformed", ErrorText: "not a phone number",
	}
	st.Raw = ""
	if st != want {
		t.Errorf("error stanza\n got %+v\nwant %+v", st, want)
	}
}

// component is a minimal XEP-0114 component, enough to prove the listener.
type component struct {
	conn net.Conn
	dec  *xml.Decoder
}

type compStanza struct {
	XMLName  xml.Name
	From     string `xml:"from,attr"`
	To       string `xml:"to,attr"`
	ID       string `xml:"id,attr"`
	Body     string `xml:"body"`
	InnerXML string `xml:",innerxml"`
}

func dialComponent(t *testing.T, addr, domain, secret string) *component {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &component{conn: conn, dec: xml.NewDecoder(bufio.NewReader(conn))}
	c.send(t, fmt.Sprintf(`<stream:stream xmlns="jabber:component:accept" xmlns:stream="http://etherx.jabber.org/streams" to="%s">`, domain))
	var streamID string
	for streamID == "" {
		se := c.start(t)
		for _, a := range se.Attr {
			if a.Name.Local == "id" {
				streamID = a.Value
			}
		}
		if streamID == "" {
			t.Fatalf("component: no stream id in <%s>", se.Name.Local)
		}
	}
	sum := sha1.Sum([]byte(streamID + secret))
	c.send(t, "<handshake>"+hex.EncodeToString(sum[:])+"</handshake>")
	if got := c.next(t); got.XMLName.Local != "handshake" {
		t.Fatalf("component handshake: got <%s>%s", got.XMLName.Local, got.InnerXML)
	}
	return c
}

func (c *component) send(t *testing.T, s string) {
	t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		t.Fatalf("component send: %v", err)
	}
}

func (c *component) start(t *testing.T) xml.StartElement {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			t.Fatalf("component read: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se
		}
	}
}

// next returns the next top-level element, skipping presence.
func (c *component) next(t *testing.T) compStanza {
	t.Helper()
	for {
		se := c.start(t)
		var s compStanza
		if err := c.dec.DecodeElement(&s, &se); err != nil {
			t.Fatalf("component read: %v", err)
		}
		if s.XMLName.Local != "presence" {
			return s
		}
	}
}

func TestParseStanza(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want xmpptest.Stanza
	}{
		{
			name: "chat",
			raw:  `<message xmlns="jabber:client" from="a@x/r" to="b@x" id="1" type="chat"><body>hi &amp; bye</body></message>`,
			want: xmpptest.Stanza{Kind: "message", Type: "chat", From: "a@x/r", To: "b@x", ID: "1", Body: "hi & bye"},
		},
		{
			name: "error with text and app condition",
			raw: `<message from="x" id="2" type="error"><body>orig</body><error type="cancel" by="x">` +
				`<app xmlns="urn:example"/><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
				`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">gone</text></error></message>`,
			want: xmpptest.Stanza{Kind: "message", Type: "error", From: "x", ID: "2", Body: "orig",
				ErrorType: "cancel", ErrorCondition: "service-unavailable", ErrorText: "gone"},
		},
		{
			name: "iq error",
			raw: `<iq type="error" id="3"><query xmlns="jabber:iq:version"/><error type="cancel">` +
				`<feature-not-implemented xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`,
			want: xmpptest.Stanza{Kind: "iq", Type: "error", ID: "3", ErrorType: "cancel", ErrorCondition: "feature-not-implemented"},
		},
		{
			name: "presence",
			raw:  `<presence from="a@x/r" xml:lang="en"><show>away</show></presence>`,
			want: xmpptest.Stanza{Kind: "presence", From: "a@x/r"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xmpptest.ParseStanza(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.Raw != tt.raw {
				t.Errorf("Raw = %q", got.Raw)
			}
			got.Raw = ""
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestMissingUserFailsLogin(t *testing.T) {
	// Login must fail (not hang) on bad credentials; checked via a fake TB.
	s := xmpptest.StartProsody(t, xmpptest.Options{Users: map[string]string{}})
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		xmpptest.Login(ft, s, "alice", "password")
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Login hung")
	}
	if !strings.Contains(ft.msg, "login alice@localhost") {
		t.Errorf("Login failure = %q", ft.msg)
	}
}

// fatalTB records Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
