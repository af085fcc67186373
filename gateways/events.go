package gateways

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xmppgw/xmppgw/bus"
)

// How the runner carries the features of features.go: outbound, it
// translates references through the id map and calls the adapter's
// optional interfaces; inbound, the Host methods translate back and
// publish. Corrections, replies, reactions and retractions are durable
// and travel in their conversation's order on the outbound stream (a
// message being retried holds its conversation's worker, so an edit never
// overtakes the message it edits); markers and typing are ephemeral.

// lookupTimeout bounds one id map lookup.
const lookupTimeout = 3 * time.Second

// network names the network in texts for users.
func (r *Runner) network() string {
	if r.o.Info.Name != "" {
		return r.o.Info.Name
	}
	return "this network"
}

// tooOld is the refusal of a reference the id map does not have.
func (r *Runner) tooOld(what string) error {
	days := int(r.o.Bus.IDsTTL().Hours() / 24)
	return Reject(ItemNotFound, "that message is too old to %s, or it never reached %s: the gateway keeps message ids for %d days", what, r.network(), days)
}

// sendMessage sends an outbound message through the interface its
// features call for, and records the ids it became.
//
// The returned channel carries the outcome of recording the network ids
// (ids.go), which is written while the caller acknowledges the message.
func (r *Runner) sendMessage(ctx context.Context, e *bus.Envelope, out Outbound) (<-chan error, error) {
	var (
		sent Sent
		err  error
		// recordAs: the XMPP ids the network's message is recorded under.
		recordAs = []string{out.ID, out.OriginID}
	)
	ed, canEdit := r.o.Adapter.(Editor)
	rp, canReply := r.o.Adapter.(Replier)
	switch {
	case e.Message.Replace != "" && canEdit:
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		target, lerr := r.ids.toNetwork(lctx, out.From, out.To, e.Message.Replace)
		cancel()
		if errors.Is(lerr, errNoRecord) {
			return nil, r.tooOld("correct")
		}
		if lerr != nil {
			return nil, lerr // the store: transient
		}
		sent, err = ed.Edit(ctx, Edit{Outbound: out, Target: target})
		// What the correction became counts as the corrected message:
		// clients refer to a corrected message by its first id.
		recordAs = []string{target.ID}
	case out.ReplyTo != nil && canReply:
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		target, lerr := r.ids.toNetwork(lctx, out.From, out.To, out.ReplyTo.ID)
		cancel()
		switch {
		case lerr == nil:
			if out.ReplyTo.Text != "" {
				target.Text = out.ReplyTo.Text // what the user saw quoted
			}
			out.ReplyTo = &target
		case !errors.Is(lerr, errNoRecord):
			return nil, lerr
		}
		// Unknown to the map: still a reply, with the client's quote.
		sent, err = rp.SendReply(ctx, out)
	default:
		out.ReplyTo = nil
		sent, err = r.o.Adapter.Send(ctx, out)
	}
	if err != nil {
		return nil, err
	}
	if len(sent.IDs) == 0 && sent.Text == "" {
		return nil, nil // nothing to record
	}
	done := make(chan error, 1)
	go func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		done <- r.ids.record(rctx, out.From, out.To, recordAs, sent)
	}()
	return done, nil
}

// react hands the user's reaction set to a Reactor.
func (r *Runner) react(ctx context.Context, e *bus.Envelope) error {
	rx, ok := r.o.Adapter.(Reactor)
	if !ok {
		return Reject(FeatureNotImplemented, "%s cannot carry reactions; reply with a message instead", r.network())
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	target, err := r.ids.toNetwork(lctx, e.User, e.Contact, e.Reaction.ID)
	if errors.Is(err, errNoRecord) {
		return r.tooOld("react to")
	}
	if err != nil {
		return err
	}
	who := "u:" + BareJID(e.User)
	prev, err := r.ids.reactions(lctx, e.User, e.Contact, target.ID, who)
	if err != nil {
		return err
	}
	set := uniq(e.Reaction.Emoji)
	added, removed := diff(prev, set)
	err = rx.React(ctx, Reaction{
		From: e.User, To: e.Contact, Groupchat: e.Reaction.Type == bus.TypeGroupchat,
		Target: target, Emoji: set, Added: added, Removed: removed, Key: e.ID,
	})
	if err != nil {
		return err
	}
	if err := r.ids.setReactions(lctx, e.User, e.Contact, target.ID, who, set); err != nil {
		r.log.Warn("reaction sent, but the set was not recorded", "id", e.ID, "err", err)
	}
	return nil
}

// retract hands the user's retraction to a Retractor.
func (r *Runner) retract(ctx context.Context, e *bus.Envelope) error {
	rt, ok := r.o.Adapter.(Retractor)
	if !ok {
		return Reject(FeatureNotImplemented, "%s cannot unsend a message: the contact keeps what they received", r.network())
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	target, err := r.ids.toNetwork(lctx, e.User, e.Contact, e.Retraction.ID)
	cancel()
	if errors.Is(err, errNoRecord) {
		return r.tooOld("unsend")
	}
	if err != nil {
		return err
	}
	return rt.Retract(ctx, Retraction{
		From: e.User, To: e.Contact, Groupchat: e.Retraction.Type == bus.TypeGroupchat,
		Target: target, Key: e.ID,
	})
}

// ephemeralTimeout bounds handing one typing notification or marker to
// the adapter: it is worthless later.
const ephemeralTimeout = 2 * time.Second

// subscribeEphemeral takes the gateway's typing and markers, one process
// of the queue group each, until the returned function is called.
func (r *Runner) subscribeEphemeral(ctx context.Context) (func(), error) {
	f := FeaturesOf(r.o.Adapter)
	if !f.Typing && !f.Markers {
		return func() {}, nil
	}
	sub, err := r.o.Bus.Conn().QueueSubscribe(bus.EphemeralOutSubject(r.o.Name), bus.AdapterConsumer(r.o.Name), func(m *nats.Msg) {
		r.ephemeral(ctx, m.Data)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", bus.EphemeralOutSubject(r.o.Name), err)
	}
	// A burst beyond this is dropped by the client, not queued: hints.
	_ = sub.SetPendingLimits(1024, 1<<20)
	return func() { _ = sub.Unsubscribe() }, nil
}

// ephemeral hands one typing notification or marker to the adapter, in
// the order they came; failures drop it.
func (r *Runner) ephemeral(ctx context.Context, data []byte) {
	e, err := bus.Decode(data)
	if err != nil {
		r.log.Debug("dropping an undecodable ephemeral event", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, ephemeralTimeout)
	defer cancel()
	switch e.Kind {
	case bus.KindTyping:
		if t, ok := r.o.Adapter.(Typer); ok {
			err = t.Type(ctx, Typing{From: e.User, To: e.Contact, Groupchat: e.Typing.Type == bus.TypeGroupchat, State: e.Typing.State})
		}
	case bus.KindMarker:
		ms, ok := r.o.Adapter.(MarkerSender)
		if !ok {
			return
		}
		var target Ref
		target, err = r.ids.toNetwork(ctx, e.User, e.Contact, e.Marker.ID)
		if err == nil {
			err = ms.Mark(ctx, Marker{From: e.User, To: e.Contact, Groupchat: e.Marker.Type == bus.TypeGroupchat, State: e.Marker.State, Target: target})
		}
	}
	if err != nil {
		r.log.Debug("ephemeral event dropped", "kind", e.Kind, "err", err)
	}
}

// Inbound: the Host methods.

func (h *host) xmppID(ctx context.Context, user, contact, networkID string) (string, error) {
	if networkID == "" {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	return h.r.ids.toXMPP(ctx, user, contact, networkID)
}

// who names the reacting side for the reaction records.
func reactor(contact, nick string, groupchat bool) string {
	if groupchat {
		return "n:" + nick
	}
	return "c:" + contact
}

func (h *host) React(ctx context.Context, x InboundReaction) error {
	r := h.r
	target := x.TargetXMPP
	if target == "" {
		var err error
		if target, err = h.xmppID(ctx, x.User, x.Contact, x.Target); err != nil {
			return err
		}
	}
	if target == "" {
		return errors.New("gateways: a reaction needs its target")
	}
	who := reactor(x.Contact, x.Nick, x.Groupchat)
	set := uniq(x.Emoji)
	if !x.Full {
		prev, err := r.ids.reactions(ctx, x.User, x.Contact, target, who)
		if err != nil {
			return err
		}
		set = uniq(prev)
		if x.Add != "" && !slices.Contains(set, x.Add) {
			set = append(set, x.Add)
		}
		if x.Remove != "" {
			kept := set[:0]
			for _, e := range set {
				if e != x.Remove {
					kept = append(kept, e)
				}
			}
			set = kept
		}
	}
	// Recorded before it is published: a redelivery recomputes the same
	// set, and the next change starts from this one.
	if err := r.ids.setReactions(ctx, x.User, x.Contact, target, who, set); err != nil {
		return err
	}
	env := r.envelope(bus.KindReaction, x.User, x.Contact)
	env.Reaction = &bus.Reaction{ID: target, Emoji: set, Nick: x.Nick}
	if x.Groupchat {
		env.Reaction.Type = bus.TypeGroupchat
	}
	msgID := ""
	if x.ProviderID != "" {
		msgID = "in:" + x.ProviderID
	}
	_, err := r.o.Bus.Publish(ctx, bus.InSubject(r.o.Name), env, msgID)
	return err
}

func (h *host) Retract(ctx context.Context, x InboundRetraction) error {
	r := h.r
	target, err := h.xmppID(ctx, x.User, x.Contact, x.Target)
	if err != nil {
		return err
	}
	if target == "" {
		return errors.New("gateways: a retraction needs its target")
	}
	env := r.envelope(bus.KindRetraction, x.User, x.Contact)
	env.Retraction = &bus.Retraction{ID: target, Nick: x.Nick}
	if x.Groupchat {
		env.Retraction.Type = bus.TypeGroupchat
	}
	msgID := ""
	if x.ProviderID != "" {
		msgID = "in:" + x.ProviderID
	}
	_, err = r.o.Bus.Publish(ctx, bus.InSubject(r.o.Name), env, msgID)
	return err
}

func (h *host) Mark(ctx context.Context, x InboundMarker) error {
	r := h.r
	target, err := h.xmppID(ctx, x.User, x.Contact, x.Target)
	if err != nil {
		return err
	}
	env := r.envelope(bus.KindMarker, x.User, x.Contact)
	env.Marker = &bus.Marker{State: x.State, ID: target, Nick: x.Nick}
	if x.Groupchat {
		env.Marker.Type = bus.TypeGroupchat
	}
	return r.o.Bus.PublishEphemeral(bus.EphemeralInSubject(r.o.Name), env)
}

func (h *host) Type(_ context.Context, x InboundTyping) error {
	r := h.r
	env := r.envelope(bus.KindTyping, x.User, x.Contact)
	env.Typing = &bus.Typing{State: x.State, Nick: x.Nick}
	if x.Groupchat {
		env.Typing.Type = bus.TypeGroupchat
	}
	return r.o.Bus.PublishEphemeral(bus.EphemeralInSubject(r.o.Name), env)
}

func (h *host) Recent(ctx context.Context, user, contact string) ([]RecentMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	return h.r.ids.recent(ctx, user, contact)
}
