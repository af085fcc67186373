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
