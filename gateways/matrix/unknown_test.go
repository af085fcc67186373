package matrix_test

import (
	"errors"
	"testing"

	"github.com/xmppgw/xmppgw/gateways"
)

// TestUnknownContact: a message to a Matrix user that does not exist is
// refused permanently, saying so, and is not retried.
func TestUnknownContact(t *testing.T) {
	w := newWorld(t)
	a := w.adapter(t)
	w.start(t, a)
	ctx := ctxT(t)
	_, err := a.Send(ctx, gateways.Outbound{ID: "u1", Key: "ku1", From: aliceFull, To: "nobody%localhost", Body: "hello?"})
	var ge *gateways.Error
	if !errors.As(err, &ge) || !ge.Permanent {
		t.Fatalf("Send to a user who does not exist = %v, want a permanent *gateways.Error", err)
	}
	t.Logf("Send to a user who does not exist = %v", err)
}
