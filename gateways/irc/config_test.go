package irc_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/config"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/irc"
)

func validConfig() *irc.Config {
	info, _ := gateways.Lookup(irc.ID)
	c := info.NewConfig().(*irc.Config)
	c.Server = "irc.example.net:6697"
	return c
}

// writeCA writes a self-signed CA certificate (PEM) to dir/name.
func writeCA(t *testing.T, dir, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir, "ca.pem")
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	notPEM := file("not.pem", "just some text\n")
	badCert := file("bad.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})))
	keyOnly := file("key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("k")})))
	missing := filepath.Join(dir, "missing.pem")
	withCA := func(path string) func(*irc.Config) {
		return func(c *irc.Config) { c.TLS, c.TLSCAFile = true, path }
	}

	tests := []struct {
		name   string
		change func(*irc.Config)
		keys   []string // each error names its key
	}{
		{"defaults with a server", func(*irc.Config) {}, nil},
		{"tls", func(c *irc.Config) { c.TLS, c.TLSInsecureSkipVerify = true, true }, nil},
		{"no server", func(c *irc.Config) { c.Server = "" }, []string{"server"}},
		{"server without port", func(c *irc.Config) { c.Server = "irc.example.net" }, []string{"server"}},
		{"server with a bad port", func(c *irc.Config) { c.Server = "irc.example.net:99999" }, []string{"server"}},
		{"skip verify without tls", func(c *irc.Config) { c.TLSInsecureSkipVerify = true }, []string{"tls_insecure_skip_verify"}},
		{"tls with a CA file", withCA(ca), nil},
		{"CA file without tls", func(c *irc.Config) { c.TLSCAFile = ca }, []string{"tls_ca_file"}},
		{"CA file missing", withCA(missing), []string{"tls_ca_file"}},
		{"CA file not PEM", withCA(notPEM), []string{"tls_ca_file"}},
		{"CA file with a broken certificate", withCA(badCert), []string{"tls_ca_file"}},
		{"CA file without a certificate", withCA(keyOnly), []string{"tls_ca_file"}},
		{"CA file and skip verify", func(c *irc.Config) {
			c.TLS, c.TLSInsecureSkipVerify, c.TLSCAFile = true, true, ca
		}, []string{"tls_ca_file"}},
		{"password with a space", func(c *irc.Config) { c.Password = "a b" }, []string{"password"}},
		{"realname with a newline", func(c *irc.Config) { c.Realname = "a\nb" }, []string{"realname"}},
		{"flood", func(c *irc.Config) { c.FloodBurst, c.FloodInterval = 0, time.Millisecond }, []string{"flood_burst", "flood_interval"}},
		{"negative max connections", func(c *irc.Config) { c.MaxConnections = -1 }, []string{"max_connections"}},
		{"timeouts", func(c *irc.Config) { c.ConnectTimeout, c.PingInterval, c.PingTimeout = 0, 0, 0 }, []string{"connect_timeout", "ping_interval", "ping_timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(c)
			err := c.Validate()
			if len(tt.keys) == 0 {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want errors for %v", tt.keys)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.keys) {
				t.Errorf("got %d errors, want %d: %v", len(lines), len(tt.keys), err)
			}
			for i, key := range tt.keys {
				if i < len(lines) && !strings.HasPrefix(lines[i], key+": ") {
					t.Errorf("error %q does not start with its key %q", lines[i], key)
				}
			}
		})
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	if _, err := irc.New(gateways.Params{Name: "irc"}); err == nil {
		t.Error("New without a config succeeded")
	}
	bad := validConfig()
	bad.Server = ""
	if _, err := irc.New(gateways.Params{Name: "irc", Config: bad}); err == nil {
		t.Error("New with an invalid config succeeded")
	}
}

// The keys decode through the configuration loader as documented,
// strictly, with the password from a file.
func TestConfigLoad(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir, "ca.pem")
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `
gateways:
  irc:
    domain: irc.localhost
    secret: secret
    adapter: irc
    irc:
      server: irc.example.net:6697
      tls: true
      tls_ca_file: ` + ca + `
      password_file: ` + pwFile + `
      realname: Bridge user
      flood_burst: 2
      flood_interval: 2s
      max_connections: 20
      connect_timeout: 10s
      ping_interval: 1m
      ping_timeout: 20s
`
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	schema := func(id string) (func() any, bool) {
		info, ok := gateways.Lookup(id)
		return info.NewConfig, ok
	}
	c, err := config.Load(config.Options{File: file, Env: []string{}, AdapterSchema: schema})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c.Gateways["irc"].AdapterConfig.(*irc.Config)
	if !ok {
		t.Fatalf("adapter config is %T", c.Gateways["irc"].AdapterConfig)
	}
	want := irc.Config{
		Server: "irc.example.net:6697", TLS: true, TLSCAFile: ca, Password: "s3cret", PasswordFile: pwFile, Realname: "Bridge user",
		FloodBurst: 2, FloodInterval: 2 * time.Second, MaxConnections: 20,
		ConnectTimeout: 10 * time.Second, PingInterval: time.Minute, PingTimeout: 20 * time.Second,
	}
	if *got != want {
		t.Errorf("decoded %+v\nwant    %+v", *got, want)
	}
	if red, err := c.Redacted(); err != nil || strings.Contains(string(red), "s3cret") {
		t.Errorf("the redacted configuration shows the password (%v):\n%s", err, red)
	}

	// Strict: an unknown key is an error naming it.
	bad := strings.Replace(yaml, "realname:", "real_name:", 1)
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(config.Options{File: file, Env: []string{}, AdapterSchema: schema})
	if err == nil || !strings.Contains(err.Error(), "gateways.irc.irc.real_name") {
		t.Errorf("Load with an unknown key = %v, want an error naming gateways.irc.irc.real_name", err)
	}
}
