package gatewaytest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	_ "github.com/xmppgw/xmppgw/gateways/sandbox"
)

// An adapter's conformance test, in gateways/<name>/conformance_test.go.
func ExampleRun() {
	testConformance := func(t *testing.T) {
		info, ok := gateways.Lookup("sandbox") // as registered in init
		if !ok {
			t.Fatal("not registered")
		}
		gatewaytest.Run(t, gatewaytest.Harness{
			Info: info,
			New: func(t *testing.T) gateways.Adapter {
				a, err := info.New(gateways.Params{Name: "sms", Domain: "sms.example.com"})
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return a
			},
			Contact: "+15551234567",
			Invalid: "12345",
			// An adapter with a network the test runs (an IRC server; for
			// Twilio, twiliotest's fake) also sets:
			//
			//	Disconnect: stop the server, or make it refuse connections
			//	Reconnect:  start it again on the same address
			//	Received:   ask it whether a message with this body arrived
			//	Prepare:    register Harness.User, if sending needs it
			//	Room:       a room to join, for adapters with Rooms
		})
	}
	_ = testConformance // func TestConformance(t *testing.T) { … }
}

// Host stands in for the gateway in an adapter's own tests.
func ExampleHost() {
	info, _ := gateways.Lookup("sandbox")
	a, _ := info.New(gateways.Params{Name: "sms", Domain: "sms.example.com"})
	host := gatewaytest.NewHost()
	ctx := context.Background()
	if err := a.Start(ctx, host); err != nil {
		fmt.Println(err)
		return
	}
	defer a.Stop(ctx)

	_, err := a.Send(ctx, gateways.Outbound{ID: "m1", From: "alice@example.com/phone", To: "+15551234567", Body: "hi", Receipt: true, Attempt: 1})
	fmt.Println(err)
	for _, m := range host.Delivered() {
		fmt.Printf("%s → %s: %s\n", m.From, m.To, m.Body)
	}
	for _, s := range host.Reports() {
		fmt.Println(s.Ref, s.State)
	}
	// Output:
	// <nil>
	// +15551234567 → alice@example.com: echo: hi
	// m1 delivered
}
