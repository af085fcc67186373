package gateways

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
)

// LoseAcks makes the first n acknowledgements of messages r has sent fail
// without reaching the store, as one does when the store fails or restarts
// between the send and its acknowledgement: JetStream delivers the message
// again once its ack wait has passed. Call it before Run.
func LoseAcks(r *Runner, n int) {
	var lost atomic.Int64
	ack := r.ack
	r.ack = func(ctx context.Context, m jetstream.Msg) error {
		if lost.Add(1) <= int64(n) {
			return errors.New("nats: timeout (acknowledgement lost by the test)")
		}
		return ack(ctx, m)
	}
}
