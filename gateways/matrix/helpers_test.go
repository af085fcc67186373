package matrix_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/matrix"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/dendritetest"
	"github.com/xmppgw/xmppgw/internal/proctest"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

const (
	alice     = "alice@example.com"
	aliceFull = alice + "/phone"
	wait      = 20 * time.Second
)

// world is a homeserver with the XMPP user's Matrix account (gtalice) and
// a contact (bob), and a bus for the adapter's state.
type world struct {
	srv      *dendritetest.Server
	bob      *dendritetest.User
	kv, msgs jetstream.KeyValue
	cfg      *matrix.Config
	loggedIn bool
	log      *slog.Logger // the adapters' logger, when not testLogger's
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv := dendritetest.Start(t)
	srv.Register(t, "gtalice", "password")
	w := &world{srv: srv, bob: srv.User(t, "bob")}
	js := bustest.Open(t).JetStream()
	var err error
	if w.kv, err = js.KeyValue(context.Background(), bus.BucketRegistrations); err != nil {
		t.Fatal(err)
	}
	if w.msgs, err = js.KeyValue(context.Background(), bus.BucketMessages); err != nil {
		t.Fatal(err)
	}
	w.cfg = &matrix.Config{AllowPrivateHomeservers: true, SyncTimeout: 2 * time.Second, RequestTimeout: 5 * time.Second, DeviceName: "test", CryptoDir: t.TempDir()}
	return w
}

// adapter returns a new adapter, stopped at cleanup.
func (w *world) adapter(t *testing.T) *matrix.Adapter {
	t.Helper()
	return w.adapterAt(t, "")
}

// adapterAt returns a new adapter whose HTTP handler is reached at
// publicURL (http.public_url).
func (w *world) adapterAt(t *testing.T, publicURL string) *matrix.Adapter {
	t.Helper()
	a, err := matrix.New(gateways.Params{Name: "matrix", Domain: "matrix.localhost", Config: w.cfg, Registrations: w.kv, Messages: w.msgs, PublicURL: publicURL, Logger: cmp.Or(w.log, testLogger())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	return a.(*matrix.Adapter)
}

// start starts a (logging alice in the first time) with a new host.
func (w *world) start(t *testing.T, a *matrix.Adapter) *gatewaytest.Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if !w.loggedIn {
		if _, err := a.Login(ctx, alice, w.srv.URL(), "@gtalice:localhost", "password"); err != nil {
			t.Fatalf("Login: %v", err)
		}
		w.loggedIn = true
	}
	h := gatewaytest.NewHost()
	if err := a.Start(ctx, h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return h
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func pollUntil(timeout time.Duration, cond func() bool) bool {
	return proctest.Poll(timeout, 20*time.Millisecond, cond)
}

// testLogger logs the adapter to stderr when MATRIXTEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("MATRIXTEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
