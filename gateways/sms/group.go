package sms

import (
	"context"

	"github.com/xmppgw/xmppgw/gateways"
)

// groupOthers are the other people in a group text: every number it was
// sent to but the user's own (to), and its sender. None for a direct text.
func groupOthers(r Received, to string) []string {
	if len(r.To) < 2 {
		return nil
	}
	others := []string{r.From}
	for _, n := range r.To {
		if n != to && n != r.From {
			others = append(others, n)
		}
	}
	return others
}

// receiveGroup delivers a group text. Until group rooms exist it reaches
// the user as a direct text from its sender.
func (g *Gateway) receiveGroup(ctx context.Context, h gateways.Host, to string, others []string, in gateways.Inbound) error {
	return h.Deliver(ctx, in)
}
