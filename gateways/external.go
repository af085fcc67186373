package gateways

import (
	"time"

	"github.com/xmppgw/xmppgw/bus"
)

// Runner defaults for RunnerOptions.Workers and RunnerOptions.SendTimeout.
// An adapter that runs as its own process (adapter: external) consumes the
// durable consumer the runner would have created with them.
const (
	DefaultWorkers     = 8
	DefaultSendTimeout = 30 * time.Second
)

// OutboundConsumer is the durable consumer of gateway name's outbound
// subject as the runner creates it for workers and sendTimeout. The gateway
// creates it with the defaults for an external adapter before any worker
// connects, so outbound messages queue durably until one does.
func OutboundConsumer(name string, workers int, sendTimeout time.Duration) bus.ConsumerConfig {
	return bus.ConsumerConfig{
		Stream:  bus.StreamOut,
		Name:    bus.AdapterConsumer(name),
		Subject: bus.OutSubject(name),
		// Longer than a send with its timeout, so a slow provider does not
		// cause a redelivery while the first attempt is still running.
		AckWait:       sendTimeout + 15*time.Second,
		MaxAckPending: workers * 64,
	}
}
