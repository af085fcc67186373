package sms

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/xmppgw/xmppgw/gateways"
)

var _ gateways.CommandProvider = (*Gateway)(nil)

// Commands are the SMS gateway's own ad-hoc commands (XEP-0050), beside
// the component's registration commands.
func (g *Gateway) Commands() []gateways.Command {
	return []gateways.Command{
		{Node: "sms-numbers", Name: "Numbers and providers", Admin: true, Execute: g.listNumbers},
	}
}

// listNumbers shows every number the gateway knows — listed in the
// configuration, in a pool, or assigned — with its provider and its user.
func (g *Gateway) listNumbers(ctx context.Context, _ string, _ map[string][]string) (gateways.CommandResult, error) {
	if g.reg == nil {
		return gateways.CommandResult{}, gateways.Reject(gateways.ServiceUnavailable, "the gateway is not running")
	}
	assigned, err := g.reg.List(ctx)
	if err != nil {
		return gateways.CommandResult{}, err
	}
	users := map[string]string{}
	for u, n := range assigned {
		users[n] = u
	}
	all := map[string]bool{}
	for n := range users {
		all[n] = true
	}
	for _, a := range g.accounts {
		for n := range a.Numbers.Numbers {
			all[n] = true
		}
		for _, n := range a.Numbers.Pool {
			all[n] = true
		}
	}
	var lines []string
	count := map[string]int{}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range all {
			if !yield(n) {
				return
			}
		}
	}) {
		p := g.provider(n)
		count[p.Name()]++
		who := users[n]
		if who == "" {
			who = "(free)"
		}
		lines = append(lines, fmt.Sprintf("%s  %s  %s", n, p.Name(), who))
	}
	var per []string
	for _, a := range g.accounts {
		per = append(per, fmt.Sprintf("%d at %s", count[a.Provider.Name()], a.Provider.Name()))
	}
	return gateways.CommandResult{
		Note:  fmt.Sprintf("%d numbers: %s", len(lines), strings.Join(per, ", ")),
		Title: "Numbers and providers",
		Fields: []gateways.Field{
			{Var: "numbers", Type: "text-multi", Label: "Number, provider, user", Values: lines},
		},
	}, nil
}

// Commands adds "New group text" to the gateway's commands.
func (r *Rooms) Commands() []gateways.Command {
	return append(r.Gateway.Commands(), gateways.Command{
		Node: "sms-new-group", Name: "New group text",
		Form: &gateways.Form{
			Title:        "New group text",
			Instructions: "The phone numbers of the people to text together, one a line, with their country codes. You get an invitation to the group's room.",
			Fields:       []gateways.Field{{Var: "numbers", Type: "text-multi", Label: "Phone numbers", Required: true}},
		},
		Execute: r.newGroup,
	})
}

// newGroup makes the room of a group of numbers and invites the user.
func (r *Rooms) newGroup(ctx context.Context, user string, values map[string][]string) (gateways.CommandResult, error) {
	g := r.Gateway
	if g.reg == nil {
		return gateways.CommandResult{}, gateways.Reject(gateways.ServiceUnavailable, "the gateway is not running")
	}
	own, err := g.own(ctx, user)
	if err != nil {
		return gateways.CommandResult{}, err
	}
	numbers := []string{own}
	for _, v := range values["numbers"] {
		for line := range strings.SplitSeq(v, "\n") {
			for _, in := range strings.Split(line, ",") {
				if strings.TrimSpace(in) == "" {
					continue
				}
				n, err := g.TranslateAddress(in)
				if err != nil {
					return gateways.CommandResult{}, err
				}
				numbers = append(numbers, n)
			}
		}
	}
	room := RoomAddress(numbers)
	if _, _, err := g.checkGroup(own, room); err != nil {
		return gateways.CommandResult{}, err
	}
	if _, err := g.updateGroup(ctx, user, room, func(gr *group) error { gr.Invited = true; return nil }); err != nil {
		return gateways.CommandResult{}, err
	}
	roomJID := room + "@" + g.domain
	note := "Join " + roomJID + " to text " + strings.Join(slices.DeleteFunc(strings.Split(room, ","), func(n string) bool { return n == own }), ", ") + " together."
	if h := g.currentHost(); h != nil {
		inv := gateways.Inbound{ProviderID: "invite|new|" + room + "|" + strings.ToLower(user), From: "", To: strings.ToLower(user), Invite: room, Body: note}
		if err := h.Deliver(ctx, inv); err != nil {
			g.log.Warn("the invitation to a new group text was not stored", "room", room, "err", err)
		} else {
			note += " An invitation is on its way."
		}
	}
	return gateways.CommandResult{Note: note, Title: "New group text",
		Fields: []gateways.Field{{Var: "room", Type: "jid-single", Label: "Room", Values: []string{roomJID}}}}, nil
}
