package component

import (
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
)

// event turns a stanza that carries a conversation feature the adapter
// declared (a reaction, a retraction, a bodiless chat state or marker)
// into its envelope. It returns nil, nil for stanzas that are messages
// (or nothing). bodiless: the stanza has nothing the user wrote.
func (c *Component) event(m *inMessage, r route, contact, msgType string, bodiless bool) (*bus.Envelope, *refusal) {
	f := c.o.Features
	newEnv := func(kind bus.Kind) *bus.Envelope {
		return &bus.Envelope{Kind: kind, ID: nuid.Next(), Gateway: c.o.Name, Time: time.Now().UTC(), User: r.from.String(), Contact: contact}
	}
	toGateway := r.to.Localpart() == ""
	switch {
	case m.Reactions != nil && f.Reactions:
		if toGateway {
			return nil, &refusal{"cancel", "service-unavailable", "this is the " + c.o.Domain + " gateway itself; react to a contact's messages"}
		}
		if m.Reactions.ID == "" {
			return nil, &refusal{"modify", "bad-request", "a reaction needs the id of the message it reacts to"}
		}
		env := newEnv(bus.KindReaction)
		set := []string{}
		for _, e := range m.Reactions.Reactions {
			if e = strings.TrimSpace(e); e != "" {
				set = append(set, e)
			}
		}
		env.Reaction = &bus.Reaction{ID: m.Reactions.ID, Emoji: set, StanzaID: m.ID, Type: msgType}
		return env, nil
	case m.Retract != nil && f.Retractions:
		if toGateway {
			return nil, &refusal{"cancel", "service-unavailable", "this is the " + c.o.Domain + " gateway itself; retract messages to a contact"}
		}
		if m.Retract.ID == "" {
			return nil, &refusal{"modify", "bad-request", "a retraction needs the id of the message it retracts"}
		}
		env := newEnv(bus.KindRetraction)
		env.Retraction = &bus.Retraction{ID: m.Retract.ID, StanzaID: m.ID, Type: msgType}
		return env, nil
	case !bodiless || toGateway:
		return nil, nil
	}
	if state, id := marker(m); state != "" && id != "" && f.Markers {
		env := newEnv(bus.KindMarker)
		env.Marker = &bus.Marker{State: state, ID: id, Type: msgType}
		return env, nil
	}
	if state := chatState(m); state != "" && f.Typing {
		env := newEnv(bus.KindTyping)
		env.Typing = &bus.Typing{State: state, Type: msgType}
		return env, nil
	}
	return nil, nil
}

// outRef is the stanza id of what the user sent in env.
func outRef(env *bus.Envelope) string {
	switch {
	case env.Message != nil:
		return env.Message.ID
	case env.Reaction != nil:
		return env.Reaction.StanzaID
	case env.Retraction != nil:
		return env.Retraction.StanzaID
	}
	return ""
}
