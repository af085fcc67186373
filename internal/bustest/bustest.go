// Package bustest opens the bus the way tests of the packages above it
// need it: embedded, in the test's own directory, closed when the test ends.
package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
)

// Open starts a bus with its own embedded NATS server and data directory
// (no listener, no fsync: bus.Options' defaults) and closes it when the test
// ends, after the cleanups registered later (so what uses the bus stops
// first). A close that fails is a test error.
func Open(t testing.TB) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("bus.Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("bus.Close: %v", err)
		}
	})
	return b
}
