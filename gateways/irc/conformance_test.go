package irc_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/irc"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/irctest"
)

// TestConformance runs the adapter contract's suite against ngircd, with
// bob, a plain IRC client, as the contact. Not parallel: the suite counts
// the package's goroutines.
func TestConformance(t *testing.T) {
	info, ok := gateways.Lookup(irc.ID)
	if !ok {
		t.Fatal("the irc adapter is not registered")
	}
	srv := irctest.Start(t, irctest.Options{})
	b := bustest.Open(t)
	kv, err := b.JetStream().KeyValue(context.Background(), bus.BucketRegistrations)
	if err != nil {
		t.Fatal(err)
	}

	// bob, in the room, is redialled after every outage: the server
	// forgets everyone. He lives as long as this test, not as one check.
	var mu sync.Mutex
	dialBob := func() *irctest.Client {
		c := srv.Dial(t, "bob")
		c.Join(t, "#conformance")
		return c
	}
	bob := dialBob()
	current := func() *irctest.Client {
		mu.Lock()
		defer mu.Unlock()
		return bob
	}

	gatewaytest.Run(t, gatewaytest.Harness{
		Info: info,
		New: func(t *testing.T) gateways.Adapter {
			a, err := info.New(gateways.Params{Name: "irc", Domain: domain, Config: ircConfig(srv), Registrations: kv})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return a
		},
		User:    gatewaytest.DefaultUser,
		Contact: "bob",
		Invalid: "not a nick",
		Room:    "#conformance",
		Prepare: func(t *testing.T, a gateways.Adapter) {
			reg := a.(gateways.RegistrarProvider).Registrar().(gateways.AddressChooser)
			if _, err := reg.RegisterAs(context.Background(), gateways.BareJID(gatewaytest.DefaultUser), "gtalice"); err != nil {
				t.Fatalf("RegisterAs: %v", err)
			}
		},
		Disconnect: func(t *testing.T) { srv.Stop(t) },
		Reconnect: func(t *testing.T) {
			srv.Start(t)
			c := dialBob()
			mu.Lock()
			bob = c
			mu.Unlock()
		},
		Received: func(t *testing.T, body string) bool {
			for _, raw := range current().Received() {
				if strings.HasSuffix(raw, " PRIVMSG bob :"+body) || strings.HasSuffix(raw, " PRIVMSG #conformance :"+body) {
					return true
				}
			}
			return false
		},
	})
}
