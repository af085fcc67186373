package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/config"
	"github.com/xmppgw/xmppgw/gateways"
)

// gatewayRunner is what runs beside a gateway's component: a
// *gateways.Runner with its in-process adapter, or an *external.
type gatewayRunner interface {
	Run(ctx context.Context) error
}

var (
	_ gatewayRunner = (*gateways.Runner)(nil)
	_ gatewayRunner = (*external)(nil)
)

// external takes the runner's place for a gateway whose adapter is another
// process (adapter: external): it owns the durable consumer that process
// binds to and tells whether one is consuming it.
type external struct {
	name string
	bus  *bus.Bus
	cons bus.ConsumerConfig
	log  *slog.Logger
	// info stands in for what an in-process adapter registers.
	info     gateways.Info
	isRoom   func(string) bool // nil without rooms
	features gateways.Features
}

const (
	// activityWindow: a worker that received or acknowledged a message this
	// recently counts as attached even with no pull request waiting (a
	// fetch loop between two fetches, or busy with a batch).
	activityWindow = 15 * time.Second
	// externalCheckInterval paces the log of attach and detach.
	externalCheckInterval = 2 * time.Second
)

// newExternal creates (or updates) the gateway's durable outbound consumer
// with the settings the in-process runner uses, so that messages queue
// durably before any worker connects.
func newExternal(ctx context.Context, b *bus.Bus, name string, g config.Gateway, log *slog.Logger) (*external, error) {
	c, ok := g.AdapterConfig.(*config.External)
	if !ok || c == nil {
		return nil, fmt.Errorf("gateways.%s.%s: configuration is %T, want *config.External", name, config.ExternalAdapter, g.AdapterConfig)
	}
	e := &external{
		name: name,
		bus:  b,
		cons: gateways.OutboundConsumer(name, cmp.Or(g.MaxConcurrency, gateways.DefaultWorkers)),
		log:  log,
		info: gateways.Info{
			ID:          config.ExternalAdapter,
			Type:        c.Type,
			ContactType: c.ContactType,
			Name:        c.Name,
			Capabilities: gateways.Capabilities{
				Media:    c.Media,
				Receipts: c.Receipts,
				Rooms:    c.Rooms,
			},
		},
	}
	for _, f := range c.Features {
		e.features.Set(f) // validated by config
	}
	if c.Rooms {
		prefixes := c.RoomPrefixes
		e.isRoom = func(address string) bool {
			for _, p := range prefixes {
				if strings.HasPrefix(address, p) {
					return true
				}
			}
			return false
		}
	}
	if _, err := b.Consumer(ctx, e.cons); err != nil {
		return nil, err
	}
	return e, nil
}

// Run logs when a worker attaches or goes away, and puts the consumer back
// if it was deleted, until ctx ends.
func (e *external) Run(ctx context.Context) error {
	e.log.Info("waiting for an external adapter", "subject", e.cons.Subject, "stream", e.cons.Stream, "consumer", e.cons.Name)
	attached := false
	tick := time.NewTicker(externalCheckInterval)
	defer tick.Stop()
	for {
		err := e.Ready(ctx)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			e.log.Warn("the external adapter's consumer is gone; creating it again", "consumer", e.cons.Name)
			if _, cerr := e.bus.Consumer(ctx, e.cons); cerr != nil && ctx.Err() == nil {
				e.log.Error("create consumer", "consumer", e.cons.Name, "err", cerr)
			}
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil && !attached:
			e.log.Info("external adapter attached", "consumer", e.cons.Name)
		case errors.Is(err, errNotConsuming) && attached:
			e.log.Warn("no external adapter is consuming; outbound messages wait on the bus", "consumer", e.cons.Name)
		}
		if err == nil || errors.Is(err, errNotConsuming) {
			attached = err == nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

var errNotConsuming = errors.New("no external adapter is consuming")

// Ready returns nil when a worker is consuming: it has a pull request
// waiting, or it received or acknowledged a message within activityWindow.
func (e *external) Ready(ctx context.Context) error {
	c, err := e.bus.JetStream().Consumer(ctx, e.cons.Stream, e.cons.Name)
	if err != nil {
		return fmt.Errorf("gateway %s: consumer %s: %w", e.name, e.cons.Name, err)
	}
	if consuming(c.CachedInfo(), time.Now()) {
		return nil
	}
	return fmt.Errorf("gateway %s: %w %s (durable consumer %s on stream %s)", e.name, errNotConsuming, e.cons.Subject, e.cons.Name, e.cons.Stream)
}

func consuming(ci *jetstream.ConsumerInfo, now time.Time) bool {
	if ci == nil {
		return false
	}
	if ci.NumWaiting > 0 {
		return true
	}
	for _, last := range []*time.Time{ci.Delivered.Last, ci.AckFloor.Last} {
		if last != nil && now.Sub(*last) < activityWindow {
			return true
		}
	}
	return false
}
