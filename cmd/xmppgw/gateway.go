package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/component"
	"github.com/xmppgw/xmppgw/config"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/metrics"
)

// gateway is one configured gateway: what this process runs of it.
type gateway struct {
	name      string
	component *component.Component // nil unless the role runs the component
	runner    gatewayRunner        // nil unless the role runs adapter work
	external  *external            // nil unless adapter: external and the role runs workers
	webhooks  http.Handler         // nil unless the adapter receives webhooks and the role serves them
	prefix    string               // where webhooks are mounted: /<adapter>/<name>/
}

// runGateway runs everything until ctx is cancelled, then shuts down in
// order: stop taking work (HTTP, bus consumers), finish in-flight messages,
// close the XMPP streams, drain and close the bus.
func runGateway(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	m := metrics.New()

	run := partsOf(cfg.Role)
	b, err := bus.Open(ctx, bus.Options{
		Name:            "xmppgw-" + cfg.Role,
		URL:             cfg.Bus.URL,
		CredentialsFile: cfg.Bus.CredentialsFile,
		TLSCAFile:       cfg.Bus.TLSCAFile,
		TLSCertFile:     cfg.Bus.TLSCertFile,
		TLSKeyFile:      cfg.Bus.TLSKeyFile,
		DataDir:         cfg.Bus.DataDir,
		Listen:          cfg.Bus.Listen,
		Replicas:        cfg.Bus.Replicas,
		SyncAlways:      cfg.Bus.SyncAlways,
		IDsTTL:          cfg.Bus.IDMapTTL,
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

	gws, err := buildGateways(ctx, cfg, run, b, m, log)
	if err != nil {
		return err
	}
	// Each process reports the backlog of what it consumes, so that with
	// the roles split no two processes report the same consumer.
	type consumer struct{ stream, dir string }
	var backlog []consumer
	if run.workers {
		backlog = append(backlog, consumer{bus.StreamOut, metrics.Out})
	}
	if run.component {
		backlog = append(backlog, consumer{bus.StreamIn, metrics.In})
	}
	m.RegisterPending(func(ctx context.Context) []metrics.PendingSample {
		var out []metrics.PendingSample
		for _, g := range gws {
			for _, c := range backlog {
				name := bus.AdapterConsumer(g.name)
				if c.dir == metrics.In {
					name = bus.ComponentConsumer(g.name)
				}
				if w, u, err := b.Pending(ctx, c.stream, name); err == nil {
					out = append(out, metrics.PendingSample{Gateway: g.name, Direction: c.dir, Waiting: w, Unacked: u})
				}
			}
		}
		return out
	})

	registerReadiness(m, cfg.Role, b, gws)

	eg, runCtx := errgroup.WithContext(ctx)
	for _, g := range gws {
		if g.runner != nil {
			eg.Go(func() error { return g.runner.Run(runCtx) })
		}
		if g.component != nil {
			eg.Go(func() error { return g.component.Run(runCtx) })
		}
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
	log.Info("xmppgw started", "version", versionString(), "role", cfg.Role, "gateways", len(gws),
		"embedded_bus", b.Embedded(), "startup", time.Since(started).Round(time.Millisecond))
	err = eg.Wait()
	if ctx.Err() != nil {
		log.Info("xmppgw stopping")
	}
	return err
}

func buildGateways(ctx context.Context, cfg *config.Config, run parts, b *bus.Bus, m *metrics.Metrics, log *slog.Logger) ([]*gateway, error) {
	registrations, err := b.JetStream().KeyValue(ctx, bus.BucketRegistrations)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	// Grouped: attempt and status records are written in volume.
	messages, err := b.KeyValue(ctx, bus.BucketMessages)
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
			if run.ingress && !run.component && !run.workers {
				continue // an external adapter receives its own traffic
			}
			if ext, err = newExternal(ctx, b, name, g, glog); err != nil {
				return nil, err
			}
			info, ok = ext.info, true
			if run.workers {
				runner = ext
			}
		}
		if !ok {
			return nil, fmt.Errorf("gateways.%s.adapter: unknown adapter %q", name, g.Adapter)
		}
		if ext == nil {
			// Constructed in every role (no side effects): the component
			// asks it for its registrar, translator and rooms.
			adapter, err = info.New(gateways.Params{
				Name: name, Domain: g.Domain, Config: g.AdapterConfig, PublicURL: cfg.HTTP.PublicURL, DataDir: cfg.Bus.DataDir, Logger: glog,
				Registrations: registrations, Messages: messages, MaxConcurrency: g.MaxConcurrency, Metrics: m,
			})
			if err != nil {
				return nil, fmt.Errorf("gateways.%s.%s: %w", name, g.Adapter, err)
			}
			hp, receives := adapter.(gateways.HTTPProvider)
			receives = receives && hp.HTTPHandler() != nil
			if run.ingress && !run.workers && !receives {
				continue // nothing for an ingress to serve
			}
			if run.workers || run.ingress {
				runner, err = gateways.NewRunner(gateways.RunnerOptions{
					Name: name, Bus: b, Adapter: adapter, Info: info, Logger: glog, Metrics: m, Workers: g.MaxConcurrency,
					// An ingress starts the adapter for its webhooks only.
					InboundOnly: !run.workers,
				})
				if err != nil {
					return nil, err
				}
			}
		}
		var (
			registrar    component.Registrar
			addressNoun  string
			unassignable bool
		)
		if rp, ok := adapter.(gateways.RegistrarProvider); ok {
			registrar = rp.Registrar()
			if n, ok := registrar.(gateways.AddressNamer); ok {
				var assignable bool
				addressNoun, assignable = n.AddressName()
				unassignable = !assignable
			}
			if fr, ok := registrar.(gateways.FormRegistrar); ok {
				registrar = formRegistrar{Registrar: registrar, f: fr}
			}
		}
		var translator component.AddressTranslator
		if at, ok := adapter.(gateways.AddressTranslator); ok {
			translator = at
		}
		var isRoom func(string) bool
		if ra, ok := adapter.(gateways.RoomAdapter); ok && info.Capabilities.Rooms {
			isRoom = ra.IsRoom
		}
		commands, iqs := adapterServices(adapter)
		var features gateways.Features
		if adapter != nil {
			features = gateways.FeaturesOf(adapter)
		}
		if ext != nil {
			isRoom = ext.isRoom
			features = ext.features
		}
		var webhooks http.Handler
		if hp, ok := adapter.(gateways.HTTPProvider); ok && run.ingress {
			if webhooks = hp.HTTPHandler(); webhooks != nil && cfg.HTTP.Listen == "" {
				return nil, fmt.Errorf("gateways.%s: the %s adapter receives webhooks: set http.listen and http.public_url", name, info.ID)
			}
		}
		gw := &gateway{name: name, runner: runner, webhooks: webhooks, prefix: "/" + info.ID + "/" + name + "/"}
		if run.workers {
			gw.external = ext
		}
		gws = append(gws, gw)
		if !run.component {
			continue
		}
		// A bus that other processes can reach may carry a second
		// component for the domain: only the lease holder connects.
		var lease component.Lease
		if cfg.Bus.URL != "" || cfg.Bus.Listen != "" {
			lease = b.Lease("component." + name)
		}
		gw.component, err = component.New(component.Options{
			Name:           name,
			Domain:         g.Domain,
			Secret:         g.Secret,
			Server:         g.ServerAddr(*cfg),
			Bus:            b,
			IdentityType:   info.Type,
			IdentityName:   info.Name,
			Identities:     extraIdentities(info),
			DiscoFeatures:  info.ExtraFeatures,
			ContactType:    info.ContactType,
			Receipts:       info.Capabilities.Receipts,
			Media:          info.Capabilities.Media,
			IsRoom:         isRoom,
			Features:       component.Features(features),
			Registrar:      registrar,
			AddressNoun:    addressNoun,
			Unassignable:   unassignable,
			Translator:     translator,
			Commands:       commands,
			IQHandlers:     iqs,
			QuotaMessages:  g.Quota.Messages,
			QuotaPer:       g.Quota.Per,
			AllowedDomains: g.AllowedDomains,
			Admins:         g.Admins,
			Logger:         glog,
			Metrics:        m,
			Lease:          lease,
		})
		if err != nil {
			return nil, err
		}
	}
	if run.ingress && !run.workers && !slices.ContainsFunc(gws, func(g *gateway) bool { return g.webhooks != nil }) {
		return nil, fmt.Errorf("role %s: no gateway has an adapter that receives webhooks, so this process has nothing to serve", cfg.Role)
	}
	return gws, nil
}

// adapterServices converts the adapter's own commands and IQs to the
// component's types (component does not import gateways).
func adapterServices(a gateways.Adapter) ([]component.Command, []component.IQHandler) {
	var cmds []component.Command
	if cp, ok := a.(gateways.CommandProvider); ok {
		for _, c := range cp.Commands() {
			cc := component.Command{Node: c.Node, Name: c.Name, Admin: c.Admin}
			if c.Form != nil {
				cc.Form = &component.CommandForm{Title: c.Form.Title, Instructions: c.Form.Instructions, Fields: commandFields(c.Form.Fields)}
			}
			exec := c.Execute
			cc.Execute = func(ctx context.Context, user string, values map[string][]string) (component.CommandResult, error) {
				res, err := exec(ctx, user, values)
				return component.CommandResult{Note: res.Note, Title: res.Title, Fields: commandFields(res.Fields)}, err
			}
			cmds = append(cmds, cc)
		}
	}
	var iqs []component.IQHandler
	if ip, ok := a.(gateways.IQProvider); ok {
		for _, h := range ip.IQHandlers() {
			serve := h.Serve
			iqs = append(iqs, component.IQHandler{Type: h.Type, Payload: h.Payload, Serve: func(ctx context.Context, iq component.IQ) (component.IQAnswer, error) {
				ans, err := serve(ctx, gateways.IQ{ID: iq.ID, From: iq.From, To: iq.To, Type: iq.Type, Decode: iq.Decode})
				return component.IQAnswer{Payload: ans.Payload, Queue: ans.Queue, QueueID: ans.QueueID}, err
			}})
		}
	}
	return cmds, iqs
}

// extraIdentities are the adapter's disco identities ("category/type").
func extraIdentities(info gateways.Info) []component.Identity {
	var out []component.Identity
	for _, id := range info.ExtraIdentities {
		cat, typ, _ := strings.Cut(id, "/")
		out = append(out, component.Identity{Category: cat, Type: typ, Name: info.Name})
	}
	return out
}

func commandFields(fs []gateways.Field) []component.CommandField {
	out := make([]component.CommandField, 0, len(fs))
	for _, f := range fs {
		out = append(out, component.CommandField(f))
	}
	return out
}

func httpHandler(b *bus.Bus, gws []*gateway, m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status, body := readiness(ctx, b, gws)
		writeJSON(w, status, body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	for _, g := range gws {
		if g.webhooks != nil {
			mux.Handle(g.prefix, g.webhooks)
		}
	}
	return mux
}

// readiness is what /readyz answers. It covers what this process runs: the
// bus always, the component streams where the role has them, external
// workers where it runs the adapters. A standby component is healthy and
// ready to take over: 200, with status "standby" and the gateways it
// stands by for.
func readiness(ctx context.Context, b *bus.Bus, gws []*gateway) (int, map[string]any) {
	reasons := map[string]string{}
	standby := map[string]string{}
	if err := b.Ready(ctx); err != nil {
		reasons["bus"] = err.Error()
	}
	for _, g := range gws {
		if g.component != nil {
			up, why := g.component.Status()
			switch {
			case g.component.Standby():
				standby["gateways."+g.name] = why
			case !up:
				reasons["gateways."+g.name] = why
			}
		}
		if g.external != nil {
			if err := g.external.Ready(ctx); err != nil {
				reasons["gateways."+g.name+".adapter"] = err.Error()
			}
		}
	}
	switch {
	case len(reasons) > 0:
		body := map[string]any{"status": "unavailable", "reasons": reasons}
		if len(standby) > 0 {
			body["standby"] = standby
		}
		return http.StatusServiceUnavailable, body
	case len(standby) > 0:
		return http.StatusOK, map[string]any{"status": "standby", "standby": standby}
	}
	return http.StatusOK, map[string]any{"status": "ready"}
}

// registerReadiness exports readiness as gauges, for alerts that need no
// HTTP prober: xmppgw_ready{role} (1 while /readyz answers 200) and
// xmppgw_bus_ready (1 while the bus can store messages; 0 while the store
// refuses writes or NATS is unreachable).
func registerReadiness(m *metrics.Metrics, role string, b *bus.Bus, gws []*gateway) {
	probe := func(f func(ctx context.Context) bool) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if f(ctx) {
				return 1
			}
			return 0
		}
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "xmppgw_ready",
			Help:        "1 while /readyz answers 200 (a standby component counts as ready), else 0.",
			ConstLabels: prometheus.Labels{"role": role},
		}, probe(func(ctx context.Context) bool { status, _ := readiness(ctx, b, gws); return status == http.StatusOK })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "xmppgw_bus_ready",
			Help: "1 while the bus can store messages, 0 while it cannot (NATS unreachable, JetStream not answering, the store refusing writes).",
		}, probe(func(ctx context.Context) bool { return b.Ready(ctx) == nil })),
	)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
