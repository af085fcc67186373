package matrix_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/matrix"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/dendritetest"
)

// TestConformance runs the adapter contract's suite against Dendrite, with
// bob, a mautrix client, as the contact. Not parallel: the suite counts
// the package's goroutines.
func TestConformance(t *testing.T) { conformance(t, nil, nil) }

// conformance runs the suite; prepare, when set, is done to bob first
// (giving him encryption), and the suite's room gets initialState. It
// returns bob.
func conformance(t *testing.T, prepare func(*dendritetest.User), initialState []*event.Event) *dendritetest.User {
	info, ok := gateways.Lookup(matrix.ID)
	if !ok {
		t.Fatal("the matrix adapter is not registered")
	}
	srv := dendritetest.Start(t)
	srv.Register(t, "gtalice", "password")
	bob := srv.User(t, "bob")
	if prepare != nil {
		prepare(bob)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "conformance", Topic: "the suite's room", InitialState: initialState}); err != nil {
		t.Fatal(err)
	}
	b := bustest.Open(t)
	js := b.JetStream()
	kv, err := js.KeyValue(context.Background(), bus.BucketRegistrations)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := js.KeyValue(context.Background(), bus.BucketMessages)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &matrix.Config{AllowPrivateHomeservers: true, SyncTimeout: 2 * time.Second, RequestTimeout: 5 * time.Second, DeviceName: "conformance", CryptoDir: t.TempDir()}

	gatewaytest.Run(t, gatewaytest.Harness{
		Info: info,
		New: func(t *testing.T) gateways.Adapter {
			a, err := info.New(gateways.Params{Name: "matrix", Domain: "matrix.localhost", Config: cfg, Registrations: kv, Messages: msgs})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return a
		},
		User:    gatewaytest.DefaultUser,
		Contact: "bob%localhost",
		Invalid: "not a user",
		Room:    "#conformance%localhost",
		Prepare: func(t *testing.T, a gateways.Adapter) {
			user := gateways.BareJID(gatewaytest.DefaultUser)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := kv.Get(ctx, "matrix.account."+b64(user)); err == nil {
				return // logged in by an earlier check
			}
			if _, err := a.(*matrix.Adapter).Login(ctx, user, srv.URL(), "@gtalice:localhost", "password"); err != nil {
				t.Fatalf("Login: %v", err)
			}
		},
		Disconnect: func(t *testing.T) { srv.Stop(t) },
		Reconnect:  func(t *testing.T) { srv.Start(t) },
		Received: func(t *testing.T, body string) bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = bob.Sync(ctx)
			for _, e := range bob.Seen() {
				if got := dendritetest.Body(e); got == body || strings.TrimPrefix(got, "* ") == body {
					return true
				}
			}
			return false
		},
	})
	return bob
}
