package component

import (
	"context"
	"crypto/sha1" // #nosec G505 -- XEP-0115 defines the verification string with SHA-1; it is an identifier, not a secret
	"encoding/base64"
	"encoding/xml"
	"slices"
	"sort"
	"strings"

	"mellium.im/xmpp/stanza"
)

// XEP-0030 service discovery and XEP-0115 entity capabilities, built from
// what the component registers rather than listed by hand: every XEP file
// registers the feature it serves with the entities it applies to and the
// condition under which it is offered (for the conversation features, the
// adapter's declaration), so what clients are told cannot drift from what
// the component and the adapter do.

// Features are the conversation features the adapter declared (see
// gateways.FeaturesOf); the component offers exactly these.
type Features struct {
	Corrections, Replies, Reactions, Retractions, Markers, Typing bool
}

// Identity is an XEP-0030 identity.
type Identity struct{ Category, Type, Name string }

// entity is what a disco#info request is about.
type entity int

const (
	entGateway entity = 1 << iota // the gateway's domain
	entContact                    // a network contact
	entRoom                       // a room
)

// registration is one feature the component serves.
type registration struct {
	feature string
	on      entity
	// offered reports whether the feature is served by this component;
	// nil: always.
	offered func(c *Component) bool
}

var registrations []registration

// register adds a feature; XEP files call it from init.
func register(feature string, on entity, offered func(c *Component) bool) {
	registrations = append(registrations, registration{feature, on, offered})
}

func init() {
	register(nsDiscoInfo, entGateway|entContact|entRoom, nil)
	register(nsDiscoItems, entGateway, nil)
	register(nsPing, entGateway|entContact, nil)
	register(nsRegister, entGateway, func(c *Component) bool { return c.o.Registrar != nil })
	register(nsCommands, entGateway, func(c *Component) bool { return len(c.commands) > 0 })
	register(nsGateway, entGateway, func(c *Component) bool { return c.o.Translator != nil })
	register(nsMUC, entGateway|entRoom, func(c *Component) bool { return c.o.IsRoom != nil })
	register(nsReceipts, entGateway|entContact, func(c *Component) bool { return c.o.Receipts })
	register(nsOOB, entGateway|entContact|entRoom, func(c *Component) bool { return c.o.Media })
	register(nsCaps, entGateway|entContact, nil)
}

// features lists the features served on an entity, sorted and distinct.
func (c *Component) features(on entity) []feature {
	seen := map[string]bool{}
	var vars []string
	for _, r := range registrations {
		if r.on&on == 0 || seen[r.feature] || (r.offered != nil && !r.offered(c)) {
			continue
		}
		seen[r.feature] = true
		vars = append(vars, r.feature)
	}
	sort.Strings(vars)
	out := make([]feature, len(vars))
	for i, v := range vars {
		out[i] = feature{v}
	}
	return out
}

// infoFor is the disco#info of an entity.
func (c *Component) infoFor(on entity, roomName string) discoInfo {
	info := discoInfo{Features: c.features(on)}
	switch on {
	case entContact:
		info.Identities = []identity{{Category: "client", Type: c.o.ContactType}}
	case entRoom:
		info.Identities = []identity{{Category: "conference", Type: "text", Name: roomName}}
		info.Features = append(info.Features, feature{"muc_public"}, feature{"muc_open"}, feature{"muc_nonanonymous"}, feature{"muc_unsecured"}, feature{"muc_persistent"})
	default:
		info.Identities = []identity{{Category: "gateway", Type: c.o.IdentityType, Name: c.o.IdentityName}}
		for _, id := range c.o.Identities {
			info.Identities = append(info.Identities, identity(id))
		}
		for _, f := range c.o.DiscoFeatures {
			if !slices.ContainsFunc(info.Features, func(have feature) bool { return have.Var == f }) {
				info.Features = append(info.Features, feature{f})
			}
		}
		if c.o.IsRoom != nil {
			// Rooms are reachable as a XEP-0045 service on this domain.
			info.Identities = append(info.Identities, identity{Category: "conference", Type: c.o.IdentityType, Name: c.o.IdentityName})
		}
	}
	return info
}

// XEP-0115.

const (
	nsCaps   = "http://jabber.org/protocol/caps"
	capsNode = "https://github.com/xmppgw/xmppgw"
)

type capsOut struct {
	Hash string `xml:"hash,attr"`
	Node string `xml:"node,attr"`
	Ver  string `xml:"ver,attr"`
}

// capsVer is XEP-0115 §5.1's verification string of info (no forms).
func capsVer(info discoInfo) string {
	ids := make([]string, 0, len(info.Identities))
	for _, id := range info.Identities {
		ids = append(ids, id.Category+"/"+id.Type+"//"+id.Name)
	}
	sort.Strings(ids)
	feats := make([]string, 0, len(info.Features))
	for _, f := range info.Features {
		feats = append(feats, f.Var)
	}
	sort.Strings(feats)
	var b strings.Builder
	for _, s := range ids {
		b.WriteString(s)
		b.WriteByte('<')
	}
	for _, s := range feats {
		b.WriteString(s)
		b.WriteByte('<')
	}
	sum := sha1.Sum([]byte(b.String())) // #nosec G401 -- see the import
	return base64.StdEncoding.EncodeToString(sum[:])
}

// caps is the <c/> for presence from an entity.
func (c *Component) caps(on entity) *capsOut {
	return &capsOut{Hash: "sha-1", Node: capsNode, Ver: capsVer(c.infoFor(on, ""))}
}

// capsEntity tells which entity a disco#info node of ours names
// ("<capsNode>#<ver>"); ok is false for other nodes.
func (c *Component) capsNodeMatches(node string, on entity) bool {
	n, ver, ok := strings.Cut(node, "#")
	return ok && n == capsNode && ver == capsVer(c.infoFor(on, ""))
}

func init() {
	handleIQ(stanza.GetIQ, xml.Name{Space: nsDiscoInfo, Local: "query"}, (*Component).onDiscoInfo)
	handleIQ(stanza.GetIQ, xml.Name{Space: nsDiscoItems, Local: "query"}, (*Component).onDiscoItems)
}

// onDiscoInfo answers XEP-0030 disco#info: a room, a contact, the gateway
// (with the XEP-0115 caps nodes of each), and the commands' nodes.
func (c *Component) onDiscoInfo(_ context.Context, w encoder, iq *inIQ, r route) error {
	reply := outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "result"}
	node := iq.Payload.Node
	local := unescapeLocal(r.to.Localpart())
	switch {
	case node == "" && local != "" && r.to.Resourcepart() == "" && c.isRoom(local):
		reply.Payload = c.infoFor(entRoom, local)
	case local != "" && (node == "" || c.capsNodeMatches(node, entContact)):
		info := c.infoFor(entContact, "")
		info.Node = node
		reply.Payload = info
	case local != "":
		return replyIQError(w, iq, iqError("item-not-found", "no such node"))
	case node == "" || c.capsNodeMatches(node, entGateway):
		info := c.infoFor(entGateway, "")
		info.Node = node
		reply.Payload = info
	case len(c.commands) > 0:
		return c.onCommandNodeInfo(w, iq, r)
	default:
		return serviceUnavailable(w, iq)
	}
	return w.Encode(reply)
}

// onDiscoItems answers XEP-0030 disco#items: nothing, or the commands.
func (c *Component) onDiscoItems(_ context.Context, w encoder, iq *inIQ, r route) error {
	switch {
	case iq.Payload.Node == "":
		return w.Encode(outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "result", Payload: discoItems{}})
	case r.to.Localpart() == "" && len(c.commands) > 0:
		return c.onCommandNodeItems(w, iq, r)
	}
	return serviceUnavailable(w, iq)
}
