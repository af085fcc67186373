package component

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
)

// TestInviteAndDelay: the shapes of a network's room invitation
// (XEP-0249) and of a room's history message (XEP-0203).
func TestInviteAndDelay(t *testing.T) {
	c, err := New(Options{Name: "sms", Domain: "sms.localhost", Server: "127.0.0.1:1", Bus: &bus.Bus{}, AllowedDomains: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	room := "+15550009999,+15551230001,+15551230002"
	for _, tt := range []struct {
		name string
		e    *bus.Envelope
		want []string
	}{
		{"invitation", &bus.Envelope{V: 1, Kind: bus.KindMessage, ID: "e1", Gateway: "sms", User: "alice@localhost", Contact: "+15551230001",
			Message: &bus.Message{ID: "invite|m1", Body: "a group text", Invite: room}},
			[]string{`from="+15551230001@sms.localhost"`, `to="alice@localhost"`, `<x xmlns="jabber:x:conference" jid="` + room + `@sms.localhost" reason="a group text"></x>`, `<body>a group text</body>`}},
		{"history", &bus.Envelope{V: 1, Kind: bus.KindMessage, ID: "e2", Gateway: "sms", User: "alice@localhost/phone", Contact: room,
			Message: &bus.Message{ID: "m1", Body: "dinner?", Type: bus.TypeGroupchat, Nick: "+15551230001", Delay: &at}},
			[]string{`type="groupchat"`, `from="` + room + `@sms.localhost/+15551230001"`, `<delay xmlns="urn:xmpp:delay" from="` + room + `@sms.localhost" stamp="2026-12-05T08:00:00.000Z"></delay>`}},
	} {
		s, err := c.stanzasFor(tt.e)
		if err != nil || len(s) != 1 {
			t.Fatalf("%s: %v %v", tt.name, s, err)
		}
		b, _ := xml.Marshal(s[0])
		for _, w := range tt.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: %s\nlacks %s", tt.name, b, w)
			}
		}
	}
}
