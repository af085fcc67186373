package gatewaytest

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
)

// feature is one of the optional interfaces of package gateways
// (features.go) by which an adapter declares what it carries beyond plain
// messages.
type feature struct {
	name   string // as in gateways.FeatureNames
	iface  string // the interface that declares it
	method string // its method
}

var (
	corrections = feature{"corrections", "Editor", "Edit"}
	replies     = feature{"replies", "Replier", "SendReply"}
	reactions   = feature{"reactions", "Reactor", "React"}
	retractions = feature{"retractions", "Retractor", "Retract"}
	markers     = feature{"markers", "MarkerSender", "Mark"}
	typing      = feature{"typing", "Typer", "Type"}
)

// declares starts every failure of a declared feature.
func (f feature) declares() string {
	return fmt.Sprintf("declares %s (implements gateways.%s)", f.name, f.iface)
}

// refuses: err says the adapter cannot carry the feature at all, as the
// runner tells the sender (feature-not-implemented).
func refuses(err error) bool {
	var ge *gateways.Error
	return errors.Is(err, gateways.ErrUnsupported) || (errors.As(err, &ge) && ge.Condition == gateways.FeatureNotImplemented)
}

// checkFeatures: what gateways.FeaturesOf reports the adapter declares, it
// carries. The component advertises exactly those features to clients, so
// a feature declared and then refused is one users are offered and cannot
// use. Each declared feature is called once with a well-formed request
// about a message the check sent first (a marker, about the contact's
// answer to it when the adapter delivered one): it must return nil, and a
// correction or reply must reach the network when Harness.Received can
// tell. An Editor or Retractor must give Send's network ids (Sent.IDs):
// without them the runner records nothing and refuses every correction or
// retraction as too old. An Editor or Replier is also handed a reference
// the runner has no network ids for (a message older than the id map): it
// may refuse it, with a *gateways.Error that says why, but not panic.
func checkFeatures(c *checker) {
	a := c.newAdapter()
	f := gateways.FeaturesOf(a)
	if f == (gateways.Features{}) {
		c.t.Skip("the adapter declares no features: it implements none of gateways.Editor, Replier, Reactor, Retractor, MarkerSender, Typer")
	}
	c.t.Logf("gateways.FeaturesOf: %+v", f)
	host := NewHost()
	c.start(a, host)

	m := c.message(c.h.Contact)
	sent := c.sendOK(a, m, "the message the features refer to")
	// As the runner hands it over: the XMPP id, the network ids it
	// recorded, the text it remembered.
	own := gateways.Ref{ID: m.ID, NetworkIDs: sent.IDs, Text: sent.Text}
	hasIDs := len(sent.IDs) > 0
	if !hasIDs {
		for _, ft := range []struct {
			feature
			on   bool
			what string
		}{{corrections, f.Corrections, "correction"}, {retractions, f.Retractions, "retraction"}} {
			if ft.on {
				c.t.Errorf("%s but Send returned no network ids (Sent.IDs): the runner records none, so it refuses every %s as being of a message too old; return the ids the network gave the message",
					ft.declares(), ft.what)
			}
		}
	}
	// What the contact said last, when the adapter delivered it with the
	// network's id: what a marker is about.
	var theirs *gateways.Ref
	for _, in := range host.Delivered() {
		if in.From == c.h.Contact && in.ProviderID != "" && !in.Groupchat {
			theirs = &gateways.Ref{ID: bus.NetworkStanzaID(in.ProviderID, 0), NetworkIDs: []string{in.ProviderID}, Text: in.Body}
		}
	}
	// about is the message a reaction or reply refers to: the user's own,
	// or else the contact's.
	about := func(f feature) (gateways.Ref, bool) {
		switch {
		case hasIDs:
			return own, true
		case theirs != nil:
			return *theirs, true
		}
		c.t.Logf("%s: %s not called: neither the message sent nor an answer to it has a network id to refer to", f.declares(), f.method)
		return gateways.Ref{}, false
	}

	if ed, ok := a.(gateways.Editor); ok && hasIDs {
		e := gateways.Edit{Outbound: c.message(c.h.Contact), Target: own}
		desc := fmt.Sprintf("Edit of message %s (network ids %q) to %q", m.ID, own.NetworkIDs, e.Body)
		s, err := c.edit(ed, e, desc)
		if c.honest(corrections, desc, err) {
			c.checkSent("Edit", e.Outbound, s)
			c.waitReceived("Edit", e.Body, corrections.declares())
		}
	}
	if rp, ok := a.(gateways.Replier); ok {
		if to, ok := about(replies); ok {
			r := c.message(c.h.Contact)
			r.ReplyTo = &to
			desc := fmt.Sprintf("SendReply of %q to message %s (network ids %q)", r.Body, to.ID, to.NetworkIDs)
			s, err := c.reply(rp, r, desc)
			if c.honest(replies, desc, err) {
				c.checkSent("SendReply", r, s)
				c.waitReceived("SendReply", r.Body, replies.declares())
			}
		}
	}
	if rx, ok := a.(gateways.Reactor); ok {
		if to, ok := about(reactions); ok {
			// A set, then a smaller one, as the runner hands them over.
			sets := []gateways.Reaction{
				{Emoji: []string{"👍", "❤️"}, Added: []string{"👍", "❤️"}},
				{Emoji: []string{"👍"}, Removed: []string{"❤️"}},
			}
			for _, r := range sets {
				r.From, r.To, r.Target, r.Key = c.h.User, c.h.Contact, to, nuid.Next()
				desc := fmt.Sprintf("React with %q (added %q, removed %q) on message %s (network ids %q)", r.Emoji, r.Added, r.Removed, to.ID, to.NetworkIDs)
				err := c.callFeature(desc, func(ctx context.Context) error { return rx.React(ctx, r) })
				c.honest(reactions, desc, err)
			}
		}
	}
	if ms, ok := a.(gateways.MarkerSender); ok {
		to, ok := own, hasIDs
		if theirs != nil {
			to, ok = *theirs, true
		}
		if ok {
			mk := gateways.Marker{From: c.h.User, To: c.h.Contact, State: bus.MarkerDisplayed, Target: to}
			desc := fmt.Sprintf("Mark %s on message %s (network ids %q)", mk.State, to.ID, to.NetworkIDs)
			err := c.callFeature(desc, func(ctx context.Context) error { return ms.Mark(ctx, mk) })
			c.honest(markers, desc, err)
		} else {
			c.t.Logf("%s: Mark not called: no message with a network id to mark", markers.declares())
		}
	}
	if ty, ok := a.(gateways.Typer); ok {
		tp := gateways.Typing{From: c.h.User, To: c.h.Contact, State: bus.TypingComposing}
		desc := fmt.Sprintf("Type %s to %s", tp.State, tp.To)
		err := c.callFeature(desc, func(ctx context.Context) error { return ty.Type(ctx, tp) })
		c.honest(typing, desc, err)
	}
	// Last: it unsends the message the others refer to.
	if rt, ok := a.(gateways.Retractor); ok && hasIDs {
		r := gateways.Retraction{From: c.h.User, To: c.h.Contact, Target: own, Key: nuid.Next()}
		desc := fmt.Sprintf("Retract of message %s (network ids %q)", m.ID, own.NetworkIDs)
		err := c.callFeature(desc, func(ctx context.Context) error { return rt.Retract(ctx, r) })
		c.honest(retractions, desc, err)
	}

	// A reference the runner has no network ids for.
	unknown := gateways.Ref{ID: "gatewaytest-unknown-" + nuid.Next()}
	if ed, ok := a.(gateways.Editor); ok {
		e := gateways.Edit{Outbound: c.message(c.h.Contact), Target: unknown}
		desc := "Edit of a message without network ids (Target.NetworkIDs empty, as for one older than the id map)"
		s, err := c.edit(ed, e, desc)
		if err == nil {
			c.checkSent("Edit", e.Outbound, s)
		}
		c.clearRefusal(corrections, desc, err)
	}
	if rp, ok := a.(gateways.Replier); ok {
		r := c.message(c.h.Contact)
		to := unknown
		to.Text = "a quote from a message the gateway has no record of"
		r.ReplyTo = &to
		desc := "SendReply to a message without network ids (ReplyTo.NetworkIDs empty, as for one older than the id map)"
		s, err := c.reply(rp, r, desc)
		if err == nil {
			c.checkSent("SendReply", r, s)
		}
		c.clearRefusal(replies, desc, err)
	}
	c.stop(a, "Stop")
	c.noOccupants(host)
}

// callFeature calls a feature's method with the usual deadline.
func (c *checker) callFeature(desc string, f func(ctx context.Context) error) error {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.lim.send)
	defer cancel()
	return c.call(desc, c.lim.send+c.lim.slack, func() error { return f(ctx) })
}

func (c *checker) edit(ed gateways.Editor, e gateways.Edit, desc string) (gateways.Sent, error) {
	c.t.Helper()
	var s gateways.Sent
	err := c.callFeature(desc, func(ctx context.Context) error {
		var err error
		s, err = ed.Edit(ctx, e)
		return err
	})
	return s, err
}

func (c *checker) reply(rp gateways.Replier, m gateways.Outbound, desc string) (gateways.Sent, error) {
	c.t.Helper()
	var s gateways.Sent
	err := c.callFeature(desc, func(ctx context.Context) error {
		var err error
		s, err = rp.SendReply(ctx, m)
		return err
	})
	return s, err
}

// honest reports whether a well-formed request of a declared feature
// succeeded, failing the check if not.
func (c *checker) honest(f feature, desc string, err error) bool {
	c.t.Helper()
	switch {
	case err == nil:
		c.t.Logf("%s = nil", desc)
		return true
	case refuses(err):
		c.t.Errorf("%s but %s returned %v (%s): it refuses the feature it declares, which clients are offered because of the declaration; an adapter that cannot carry %s must not implement gateways.%s",
			f.declares(), f.method, err, desc, f.name, f.iface)
	default:
		c.t.Errorf("%s but %s returned %v (%s), want nil for a well-formed request", f.declares(), f.method, err, desc)
	}
	return false
}

// clearRefusal: a request the adapter may refuse, saying why.
func (c *checker) clearRefusal(f feature, desc string, err error) {
	c.t.Helper()
	var ge *gateways.Error
	switch {
	case err == nil:
		c.t.Logf("%s = nil", desc)
	case refuses(err):
		c.t.Errorf("%s; %s returned %v: feature-not-implemented tells the sender the network has no %s at all; refuse that one message with item-not-found or not-acceptable instead",
			f.declares(), desc, err, f.name)
	case !errors.As(err, &ge) || ge.Condition == "" || ge.Text == "":
		c.t.Errorf("%s; %s returned %v (%T): want nil, or a *gateways.Error with a Condition and a Text telling the sender why",
			f.declares(), desc, err, err)
	default:
		c.t.Logf("%s = %v", desc, err)
	}
}
