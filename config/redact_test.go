package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/config"
)

func TestRedactedHidesNATSCredentials(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "bus:\n  url: nats://app:hunter2@n1:4222,tls://n2:4222\ngateways:\n  s:\n    domain: s.localhost\n    secret: x\n    adapter: sandbox\n"
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Options{File: f, Env: []string{}, AdapterSchema: func(string) (func() any, bool) { return nil, true }})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || strings.Contains(string(out), "app:") {
		t.Errorf("credentials shown:\n%s", out)
	}
	if !strings.Contains(string(out), "nats://[redacted]@n1:4222,tls://n2:4222") {
		t.Errorf("url not shown redacted:\n%s", out)
	}
	if cfg.Bus.URL != "nats://app:hunter2@n1:4222,tls://n2:4222" {
		t.Errorf("the loaded value itself changed: %q", cfg.Bus.URL)
	}
}
