package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/component"
	"github.com/xmppgw/xmppgw/config"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/metrics"
)

// gateway is one configured gateway: its component and its adapter runner.
type gateway struct {
	name      string
	component *component.Component
	runner    gatewayRunner
	external  *external    // nil unless adapter: external
	webhooks  http.Handler // nil unless the adapter receives webhooks
	prefix    string       // where webhooks are mounted: /<adapter>/<name>/
}

// runGateway runs everything until ctx is cancelled, then shuts down in
// order: stop taking work (HTTP, bus consumers), finish in-flight messages,
// close the XMPP streams, drain and close the bus.
func runGateway(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	m := metrics.New()

	b, err := bus.Open(ctx, bus.Options{
		URL:             cfg.Bus.URL,
		CredentialsFile: cfg.Bus.CredentialsFile,
		TLSCAFile:       cfg.Bus.TLSCAFile,
		TLSCertFile:     cfg.Bus.TLSCertFile,
		TLSKeyFile:      cfg.Bus.TLSKeyFile,
		DataDir:         cfg.Bus.DataDir,
		Listen:          cfg.Bus.Listen,
		Replicas:        cfg.Bus.Replicas,
		SyncAlways:      cfg.Bus.SyncAlways,
		Logger:          log.With("component", "bus"),
	})
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Close(closeCtx); err != nil {
			log.Warn("bus close", "err", err)
		}
	}()

	gws, err := buildGateways(ctx, cfg, b, m, log)
	if err != nil {
		return err
	}
	m.RegisterPending(func(ctx context.Context) []metrics.PendingSample {
		var out []metrics.PendingSample
		for _, g := range gws {
			for _, c := range []struct{ stream, consumer, dir string }{
				{bus.StreamOut, bus.AdapterConsumer(g.name), metrics.Out},
				{bus.StreamIn, bus.ComponentConsumer(g.name), metrics.In},
			} {
				if w, u, err := b.Pending(ctx, c.stream, c.consumer); err == nil {
					out = append(out, metrics.PendingSample{Gateway: g.name, Direction: c.dir, Waiting: w, Unacked: u})
				}
			}
		}
		return out
	})

	eg, runCtx := errgroup.WithContext(ctx)
	for _, g := range gws {
		eg.Go(func() error { return g.runner.Run(runCtx) })
		eg.Go(func() error { return g.component.Run(runCtx) })
	}
	if cfg.HTTP.Listen != "" {
		srv := &http.Server{
			Handler:           httpHandler(b, gws, m),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
		}
		log.Info("http listening", "addr", ln.Addr().String())
		eg.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
		eg.Go(func() error {
			<-runCtx.Done()
			shCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			return srv.Shutdown(shCtx)
		})
	}
	log.Info("xmppgw started", "version", versionString(), "gateways", len(gws),
		"embedded_bus", b.Embedded(), "startup", time.Since(started).Round(time.Millisecond))
	err = eg.Wait()
	if ctx.Err() != nil {
		log.Info("xmppgw stopping")
	}
	return err
}

func buildGateways(ctx context.Context, cfg *config.Config, b *bus.Bus, m *metrics.Metrics, log *slog.Logger) ([]*gateway, error) {
	registrations, err := b.JetStream().KeyValue(ctx, bus.BucketRegistrations)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	messages, err := b.JetStream().KeyValue(ctx, bus.BucketMessages)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	names := make([]string, 0, len(cfg.Gateways))
	for name := range cfg.Gateways {
		names = append(names, name)
	}
	sort.Strings(names)
	var gws []*gateway
	for _, name := range names {
		g := cfg.Gateways[name]
		glog := log.With("gateway", name)
		var (
			ext     *external        // adapter: external, a process of its own
			adapter gateways.Adapter // nil for an external adapter
			runner  gatewayRunner
		)
		info, ok := gateways.Lookup(g.Adapter)
		if g.Adapter == config.ExternalAdapter {
			if ext, err = newExternal(ctx, b, name, g, glog); err != nil {
				return nil, err
			}
			info, ok, runner = ext.info, true, ext
		}
		if !ok {
			return nil, fmt.Errorf("gateways.%s.adapter: unknown adapter %q", name, g.Adapter)
		}
		if ext == nil {
			adapter, err = info.New(gateways.Params{
				Name: name, Domain: g.Domain, Config: g.AdapterConfig, PublicURL: cfg.HTTP.PublicURL, Logger: glog,
				Registrations: registrations, Messages: messages, MaxConcurrency: g.MaxConcurrency,
			})
			if err != nil {
				return nil, fmt.Errorf("gateways.%s.%s: %w", name, g.Adapter, err)
			}
			runner, err = gateways.NewRunner(gateways.RunnerOptions{Name: name, Bus: b, Adapter: adapter, Info: info, Logger: glog, Metrics: m, Workers: g.MaxConcurrency})
			if err != nil {
				return nil, err
			}
		}
		var registrar component.Registrar
		if rp, ok := adapter.(gateways.RegistrarProvider); ok {
			registrar = rp.Registrar()
		}
		var translator component.AddressTranslator
		if at, ok := adapter.(gateways.AddressTranslator); ok {
			translator = at
		}
		var isRoom func(string) bool
		if ra, ok := adapter.(gateways.RoomAdapter); ok && info.Capabilities.Rooms {
			isRoom = ra.IsRoom
		}
		if ext != nil {
			isRoom = ext.isRoom
		}
		var webhooks http.Handler
		if hp, ok := adapter.(gateways.HTTPProvider); ok {
			if cfg.HTTP.Listen == "" {
				return nil, fmt.Errorf("gateways.%s: the %s adapter receives webhooks: set http.listen and http.public_url", name, info.ID)
			}
			webhooks = hp.HTTPHandler()
		}
		comp, err := component.New(component.Options{
			Name:           name,
			Domain:         g.Domain,
			Secret:         g.Secret,
			Server:         g.ServerAddr(*cfg),
			Bus:            b,
			IdentityType:   info.Type,
			IdentityName:   info.Name,
			ContactType:    info.ContactType,
			Receipts:       info.Capabilities.Receipts,
			Media:          info.Capabilities.Media,
			IsRoom:         isRoom,
			Registrar:      registrar,
			Translator:     translator,
			QuotaMessages:  g.Quota.Messages,
			QuotaPer:       g.Quota.Per,
			AllowedDomains: g.AllowedDomains,
			Admins:         g.Admins,
			Logger:         glog,
			Metrics:        m,
		})
		if err != nil {
			return nil, err
		}
		gws = append(gws, &gateway{name: name, component: comp, runner: runner, external: ext, webhooks: webhooks, prefix: "/" + info.ID + "/" + name + "/"})
	}
	return gws, nil
}

func httpHandler(b *bus.Bus, gws []*gateway, m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		reasons := map[string]string{}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := b.Ready(ctx); err != nil {
			reasons["bus"] = err.Error()
		}
		for _, g := range gws {
			if up, why := g.component.Status(); !up {
				reasons["gateways."+g.name] = why
			}
			if g.external != nil {
				if err := g.external.Ready(ctx); err != nil {
					reasons["gateways."+g.name+".adapter"] = err.Error()
				}
			}
		}
		if len(reasons) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reasons": reasons})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	for _, g := range gws {
		if g.webhooks != nil {
			mux.Handle(g.prefix, g.webhooks)
		}
	}
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
