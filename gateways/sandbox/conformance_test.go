package sandbox_test

import (
	"testing"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	_ "github.com/xmppgw/xmppgw/gateways/sandbox"
)

// The sandbox has no network to lose or to ask what it got: those checks
// are skipped.
func TestConformance(t *testing.T) {
	info, ok := gateways.Lookup("sandbox")
	if !ok {
		t.Fatal("the sandbox adapter is not registered")
	}
	gatewaytest.Run(t, gatewaytest.Harness{
		Info: info,
		New: func(t *testing.T) gateways.Adapter {
			a, err := info.New(gateways.Params{Name: "sandbox", Domain: "sms.example.com"})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return a
		},
		Contact: "+15551234567",
		Invalid: "12345",
	})
}
