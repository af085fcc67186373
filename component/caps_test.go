package component_test

import (
	"crypto/sha1" // #nosec G505 -- XEP-0115's hash
	"encoding/base64"
	"encoding/xml"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/component"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// TestEntityCaps: the presence a contact sends carries XEP-0115 caps whose
// verification string is the hash of exactly what its disco#info lists,
// and disco#info on the caps node answers the same; what is listed is what
// the adapter declared.
func TestEntityCaps(t *testing.T) {
	const capsDomain = "caps.localhost"
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{capsDomain: "secret"},
		Users:      map[string]string{"alice": "password"},
	})
	runComponent(t, component.Options{
		Name: "caps", Domain: capsDomain, Secret: "secret", Server: srv.ComponentAddr(), Bus: bustest.Open(t),
		IdentityType: "sms", ContactType: "sms", AllowedDomains: []string{"localhost"},
		Features:    component.Features{Corrections: true, Reactions: true},
		BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	})
	alice := xmpptest.Login(t, srv, "alice", "password")
	contact := "+15551234567@" + capsDomain

	alice.SendRaw(t, `<presence type="subscribe" to="`+contact+`"/>`)
	st := alice.WaitStanza(t, timeout, func(s xmpptest.Stanza) bool {
		return s.Kind == "presence" && s.From == contact && s.Type == "" && strings.Contains(s.Raw, "http://jabber.org/protocol/caps")
	})
	var p struct {
		C struct {
			Hash string `xml:"hash,attr"`
			Node string `xml:"node,attr"`
			Ver  string `xml:"ver,attr"`
		} `xml:"http://jabber.org/protocol/caps c"`
	}
	if err := xml.Unmarshal([]byte(st.Raw), &p); err != nil {
		t.Fatal(err)
	}
	if p.C.Hash != "sha-1" || p.C.Node == "" || p.C.Ver == "" {
		t.Fatalf("caps %+v in %s", p.C, st.Raw)
	}

	info := iq(t, alice, contact, "get", discoInfo)
	wantResult(t, info)
	var features []string
	for _, f := range info.Info.Features {
		features = append(features, f.Var)
	}
	for _, want := range []string{"urn:xmpp:message-correct:0", "urn:xmpp:reactions:0"} {
		if !slices.Contains(features, want) {
			t.Errorf("disco#info lacks declared %s: %v", want, features)
		}
	}
	for _, not := range []string{"urn:xmpp:message-retract:1", "urn:xmpp:reply:0", "urn:xmpp:chat-markers:0", "http://jabber.org/protocol/chatstates"} {
		if slices.Contains(features, not) {
			t.Errorf("disco#info lists undeclared %s", not)
		}
	}
	// XEP-0115 §5.1, computed here from the answer.
	var ids []string
	for _, id := range info.Info.Identities {
		ids = append(ids, id.Category+"/"+id.Type+"//")
	}
	sort.Strings(ids)
	sort.Strings(features)
	s := strings.Join(ids, "<") + "<" + strings.Join(features, "<") + "<"
	sum := sha1.Sum([]byte(s)) // #nosec G401
	if ver := base64.StdEncoding.EncodeToString(sum[:]); ver != p.C.Ver {
		t.Errorf("caps ver %q, but disco#info hashes to %q (%s)", p.C.Ver, ver, s)
	}

	onNode := iq(t, alice, contact, "get", `<query xmlns="http://jabber.org/protocol/disco#info" node="`+p.C.Node+`#`+p.C.Ver+`"/>`)
	wantResult(t, onNode)
	if len(onNode.Info.Features) != len(info.Info.Features) {
		t.Errorf("disco#info on the caps node lists %d features, plain disco#info %d", len(onNode.Info.Features), len(info.Info.Features))
	}
	stale := iq(t, alice, contact, "get", `<query xmlns="http://jabber.org/protocol/disco#info" node="`+p.C.Node+`#stale"/>`)
	wantError(t, stale, "item-not-found", "")
}
