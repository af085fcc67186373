package component_test

import (
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// An envelope the bus delivers a second time (its acknowledgement was lost:
// a NATS node died before replicating it) reaches the user once.
func TestRedeliveredEnvelopeWrittenOnce(t *testing.T) {
	g := startRoomGateway(t)
	publish := func(id, body string) {
		t.Helper()
		e := &bus.Envelope{Kind: bus.KindMessage, ID: id, Gateway: "irc", Time: time.Now().UTC(),
			User: g.alice.BareJID(), Contact: "bob", Message: &bus.Message{Body: body}}
		// No Nats-Msg-Id: the bus stores both copies, as a redelivery does.
		if _, err := g.bus.Publish(t.Context(), bus.InSubject("irc"), e, ""); err != nil {
			t.Fatal(err)
		}
	}
	publish("env-1", "once")
	publish("env-1", "once")
	publish("env-2", "after")
	g.alice.WaitStanza(t, timeout, func(s xmpptest.Stanza) bool { return s.Kind == "message" && s.Body == "after" })
	n := 0
	for _, raw := range g.alice.Stanzas() {
		if strings.Contains(raw, "<body>once</body>") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the redelivered envelope was written %d times, want once", n)
	}
}
