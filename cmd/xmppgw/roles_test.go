package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/config"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/metrics"
)

// rolesConfig has one gateway of each kind: an adapter without webhooks
// (sandbox), one with (twilio) and an external one.
func rolesConfig(role, busURL, gws string) string {
	return fmt.Sprintf(`role: %s
bus:
  url: %s
http:
  listen: 127.0.0.1:8080
  public_url: https://gw.example.com
gateways:
%s`, role, busURL, gws)
}

const (
	sandboxGW = `  sandbox:
    domain: sandbox.localhost
    secret: secret
    adapter: sandbox
`
	twilioGW = `  sms:
    domain: sms.localhost
    secret: secret
    adapter: twilio
    twilio:
      account_sid: AC00000000000000000000000000000000
      auth_token: 0123456789abcdef0123456789abcdef
      api_url: http://127.0.0.1:1
`
	externalGW = `  ext:
    domain: ext.localhost
    secret: secret
    adapter: external
    external: {type: sms}
`
)

func loadConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Options{
		File: writeConfig(t, text), Env: []string{},
		AdapterSchema: adapterSchema, KnownAdapters: gateways.IDs(),
	})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// What each role runs of each kind of gateway.
func TestBuildGatewaysByRole(t *testing.T) {
	b, url := openBus(t)
	type has struct{ component, runner, external, webhooks bool }
	tests := []struct {
		role string
		want map[string]has // absent: not built at all
	}{
		{config.RoleAll, map[string]has{
			"ext":     {component: true, runner: true, external: true},
			"sandbox": {component: true, runner: true},
			"sms":     {component: true, runner: true, webhooks: true},
		}},
		{config.RoleComponent, map[string]has{
			"ext":     {component: true},
			"sandbox": {component: true},
			"sms":     {component: true},
		}},
		{config.RoleAdapters, map[string]has{
			"ext":     {runner: true, external: true},
			"sandbox": {runner: true},
			"sms":     {runner: true},
		}},
		{config.RoleIngress, map[string]has{
			"sms": {runner: true, webhooks: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			cfg := loadConfig(t, rolesConfig(tt.role, url, sandboxGW+twilioGW+externalGW))
			gws, err := buildGateways(t.Context(), cfg, partsOf(cfg.Role), b, metrics.New(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("buildGateways: %v", err)
			}
			got := map[string]has{}
			for _, g := range gws {
				got[g.name] = has{g.component != nil, g.runner != nil, g.external != nil, g.webhooks != nil}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("built %+v\nwant  %+v", got, tt.want)
			}
		})
	}

	t.Run("ingress with nothing to serve", func(t *testing.T) {
		cfg := loadConfig(t, rolesConfig(config.RoleIngress, url, sandboxGW+externalGW))
		_, err := buildGateways(t.Context(), cfg, partsOf(cfg.Role), b, metrics.New(), slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "role ingress: no gateway has an adapter that receives webhooks") {
			t.Errorf("buildGateways = %v, want the nothing-to-serve error", err)
		}
	})
}

func readyz(t *testing.T, h http.Handler) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	body, _ := io.ReadAll(rec.Body)
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return rec.Code, v
}

// /readyz of a component process: 200 "standby" while another process
// holds the lease; once it holds it, the stream's state decides. The
// webhook routes exist only where the role serves them.
func TestReadyzByRole(t *testing.T) {
	b, url := openBus(t)
	other := b.Lease("component.sandbox")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, release, err := other.Acquire(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	cfg := loadConfig(t, rolesConfig(config.RoleComponent, url, sandboxGW+twilioGW))
	gws, err := buildGateways(t.Context(), cfg, partsOf(cfg.Role), b, metrics.New(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// Only the sandbox gateway's lease is held elsewhere; nothing listens
	// at xmpp.server, so the sms component cannot connect.
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, g := range gws {
		wg.Go(func() { _ = g.component.Run(runCtx) })
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	h := httpHandler(b, gws, metrics.New())

	checkFor(t, 10*time.Second, func() error {
		if !gws[0].component.Standby() {
			return fmt.Errorf("sandbox component not standing by")
		}
		return nil
	})
	code, v := readyz(t, h)
	if code != http.StatusServiceUnavailable || v["status"] != "unavailable" {
		t.Errorf("readyz = %d %v, want 503: the sms stream is down", code, v)
	}
	if s, _ := v["standby"].(map[string]any); !strings.HasPrefix(fmt.Sprint(s["gateways.sandbox"]), "standby: another process holds the component lease") {
		t.Errorf("readyz standby = %v", v["standby"])
	}

	// The same as gauges.
	m := metrics.New()
	registerReadiness(m, cfg.Role, b, gws)
	if got := gauges(t, m); got["xmppgw_ready"] != 0 || got["xmppgw_bus_ready"] != 1 {
		t.Errorf("readiness gauges = %v, want xmppgw_ready 0 (sms down), xmppgw_bus_ready 1", got)
	}

	// The same process with only the standby gateway: healthy, standing by.
	code, v = readyz(t, httpHandler(b, gws[:1], metrics.New()))
	if code != http.StatusOK || v["status"] != "standby" {
		t.Errorf("readyz of a standby = %d %v, want 200 standby", code, v)
	}

	// No webhook routes on a component process.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/twilio/sms/sms", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("webhook on a component process: %d, want 404", rec.Code)
	}

	// The holder goes: the standby takes the lease and now tries to connect.
	release()
	checkFor(t, 5*time.Second, func() error {
		if gws[0].component.Standby() {
			return fmt.Errorf("still standing by")
		}
		return nil
	})
	code, v = readyz(t, httpHandler(b, gws[:1], metrics.New()))
	if code != http.StatusServiceUnavailable {
		t.Errorf("readyz after taking the lease, without a server = %d %v, want 503", code, v)
	}
}

// gauges reads every gauge of m by name (the sum over label sets).
func gauges(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, x := range mf.GetMetric() {
			if g := x.GetGauge(); g != nil {
				out[mf.GetName()] += g.GetValue()
			}
		}
	}
	return out
}
