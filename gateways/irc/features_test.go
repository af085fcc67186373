package irc_test

import (
	"testing"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/irc"
)

// The adapter declares no feature beyond messages: a correction or a reply
// reaches IRC as a plain message (the runner's fallback), reactions and
// retractions are refused, and ngircd has no IRCv3 message-tags to carry
// typing or markers.
func TestDeclaresNoFeatures(t *testing.T) {
	a, err := irc.New(gateways.Params{Name: "irc", Config: validConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if got := gateways.FeaturesOf(a); got != (gateways.Features{}) {
		t.Errorf("FeaturesOf(irc) = %+v, want none", got)
	}
}
