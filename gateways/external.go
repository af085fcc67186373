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

// AckWait is the outbound consumer's ack wait: a message a worker took and
// neither settled nor marked as in progress (jetstream.Msg.InProgress, "+WPI"
// on the wire) for this long is delivered again, to any worker.
const AckWait = 15 * time.Second

// OutboundConsumer is the durable consumer of gateway name's outbound
// subject as the runner creates it for workers. The gateway
// creates it with the defaults for an external adapter before any worker
// connects, so outbound messages queue durably until one does.
func OutboundConsumer(name string, workers int) bus.ConsumerConfig {
	return bus.ConsumerConfig{
		Stream:  bus.StreamOut,
		Name:    bus.AdapterConsumer(name),
		Subject: bus.OutSubject(name),
		// Short, so that what a crashed worker held is redelivered soon;
		// workers keep the messages they hold alive with progress acks
		// (the runner every AckWait/3), however long a send takes.
		AckWait:       AckWait,
		MaxAckPending: workers * 64,
	}
}
