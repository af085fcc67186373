package gateways

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
)

// The id map (bus.BucketIDs), kept by the runner for every adapter: which
// network ids each message a user sent became, and the reaction sets, per
// conversation. One entry per sent message, written after the network
// accepted it and before the bus message is acknowledged:
//
//	m.<gateway>.<conversation>.<XMPP id>.<network id>  →  idRecord
//	r.<gateway>.<conversation>.<XMPP id of the target>.<who>  →  reactionRecord
//
// Tokens are base64url, the conversation a hash of the user's bare JID and
// the contact (the map reveals no addresses). Both the XMPP id and the
// network id are in the key, so one write serves lookups both ways (a
// filtered watch on either token). Entries expire with the bucket's TTL
// (bus.idmap_ttl): a reference to an older message is refused as too old,
// never guessed.
type idMap struct {
	kv jetstream.KeyValue
	gw string
}

type idRecord struct {
	X string   `json:"x"`           // the XMPP id
	N []string `json:"n,omitempty"` // network ids
	T int64    `json:"t"`           // unix seconds
	Q string   `json:"q,omitempty"` // remembered text (Sent.Text)
}

type reactionRecord struct {
	E []string `json:"e"`
}

// errNoRecord: the id map has no entry for the reference.
var errNoRecord = errors.New("no record of that message")

// tok makes s a key token; "=" (never in base64url without padding) stands
// for the empty string.
func tok(s string) string {
	if s == "" {
		return "="
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func conversation(user, contact string) string {
	sum := sha256.Sum256([]byte(BareJID(user) + "\x00" + contact))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

func (m *idMap) msgPrefix(user, contact string) string {
	return "m." + tok(m.gw) + "." + conversation(user, contact)
}

// record stores what the message with XMPP ids xmppIDs became. Nothing is
// written when the network gave no ids and nothing is to be remembered.
func (m *idMap) record(ctx context.Context, user, contact string, xmppIDs []string, s Sent) error {
	if len(s.IDs) == 0 && s.Text == "" {
		return nil
	}
	text := s.Text
	if r := []rune(text); len(r) > RecentTextLimit {
		text = string(r[:RecentTextLimit])
	}
	rec := idRecord{N: s.IDs, T: time.Now().Unix(), Q: text}
	nets := s.IDs
	if len(nets) == 0 {
		nets = []string{""}
	}
	seen := map[string]bool{}
	for _, x := range xmppIDs {
		if x == "" || seen[x] {
			continue
		}
		seen[x] = true
		rec.X = x
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		// One key per network id, so a reference by any of them is found;
		// the first carries the record, the others point to it.
		for i, n := range nets {
			val := data
			if i > 0 {
				val, _ = json.Marshal(idRecord{X: x, N: s.IDs, T: rec.T})
			}
			if _, err := m.kv.Put(ctx, m.msgPrefix(user, contact)+"."+tok(x)+"."+tok(n), val); err != nil {
				return fmt.Errorf("id map: %w", err)
			}
		}
		rec.Q = "" // the text once is enough
	}
	return nil
}

// scan returns the current entries under filter.
func (m *idMap) scan(ctx context.Context, filter string) ([]jetstream.KeyValueEntry, error) {
	w, err := m.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return out, ctx.Err()
			}
			if e == nil {
				return out, nil // initial values done
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func decodeRecords(entries []jetstream.KeyValueEntry) []idRecord {
	recs := make([]idRecord, 0, len(entries))
	for _, e := range entries {
		var r idRecord
		if json.Unmarshal(e.Value(), &r) == nil && r.X != "" {
			recs = append(recs, r)
		}
	}
	return recs
}

// toNetwork finds what the message the user's client knows as id became on
// the network: one of the user's own (the map), or one the gateway wrote
// to them (bus.NetworkStanzaID).
func (m *idMap) toNetwork(ctx context.Context, user, contact, id string) (Ref, error) {
	if net, ok := bus.ParseNetworkStanzaID(id); ok {
		return Ref{ID: id, NetworkIDs: []string{net}}, nil
	}
	entries, err := m.scan(ctx, m.msgPrefix(user, contact)+"."+tok(id)+".*")
	if err != nil {
		return Ref{}, fmt.Errorf("id map: %w", err)
	}
	recs := decodeRecords(entries)
	if len(recs) == 0 {
		return Ref{ID: id}, errNoRecord
	}
	ref := Ref{ID: id, NetworkIDs: recs[0].N}
	for _, r := range recs {
		if r.Q != "" {
			ref.Text = r.Q
		}
	}
	return ref, nil
}

// toXMPP finds the id the user's client knows the network's message by:
// the user's own message's id, or the id the component gave a network
// message it wrote.
func (m *idMap) toXMPP(ctx context.Context, user, contact, networkID string) (string, error) {
	entries, err := m.scan(ctx, m.msgPrefix(user, contact)+".*."+tok(networkID))
	if err != nil {
		return "", fmt.Errorf("id map: %w", err)
	}
	// A watch lists entries in store order: the stanza id, recorded
	// first, before an origin-id.
	if recs := decodeRecords(entries); len(recs) > 0 {
		return recs[0].X, nil
	}
	return bus.NetworkStanzaID(networkID, 0), nil
}

// recent lists the messages with remembered text, newest first.
func (m *idMap) recent(ctx context.Context, user, contact string) ([]RecentMessage, error) {
	entries, err := m.scan(ctx, m.msgPrefix(user, contact)+".>")
	if err != nil {
		return nil, fmt.Errorf("id map: %w", err)
	}
	type item struct {
		RecentMessage
		t   int64
		rev uint64
	}
	var items []item
	for _, e := range entries {
		var r idRecord
		if json.Unmarshal(e.Value(), &r) != nil || r.Q == "" {
			continue
		}
		items = append(items, item{RecentMessage{ID: r.X, NetworkIDs: r.N, Text: r.Q}, r.T, e.Revision()})
	}
	// Newest first: by store order, which is the order they were sent.
	sort.Slice(items, func(i, j int) bool { return items[i].rev > items[j].rev })
	out := make([]RecentMessage, 0, min(len(items), RecentLimit))
	for _, it := range items[:min(len(items), RecentLimit)] {
		out = append(out, it.RecentMessage)
	}
	return out, nil
}

func (m *idMap) reactionKey(user, contact, target, who string) string {
	return "r." + tok(m.gw) + "." + conversation(user, contact) + "." + tok(target) + "." + tok(who)
}

// reactions returns the set who last sent on target.
func (m *idMap) reactions(ctx context.Context, user, contact, target, who string) ([]string, error) {
	e, err := m.kv.Get(ctx, m.reactionKey(user, contact, target, who))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("id map: %w", err)
	}
	var r reactionRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, nil
	}
	return r.E, nil
}

func (m *idMap) setReactions(ctx context.Context, user, contact, target, who string, set []string) error {
	data, err := json.Marshal(reactionRecord{E: set})
	if err != nil {
		return err
	}
	if _, err := m.kv.Put(ctx, m.reactionKey(user, contact, target, who), data); err != nil {
		return fmt.Errorf("id map: %w", err)
	}
	return nil
}

// diff returns what next adds to and removes from prev.
func diff(prev, next []string) (added, removed []string) {
	for _, e := range next {
		if !slices.Contains(prev, e) {
			added = append(added, e)
		}
	}
	for _, e := range prev {
		if !slices.Contains(next, e) {
			removed = append(removed, e)
		}
	}
	return added, removed
}

// uniq keeps the first of each emoji, in order, and drops empty ones.
func uniq(set []string) []string {
	out := make([]string, 0, len(set))
	for _, e := range set {
		if e != "" && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}
