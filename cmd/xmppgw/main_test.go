package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const baseConfig = `xmpp:
  server: 127.0.0.1:5347
bus:
  data_dir: ./data
http:
  listen: 127.0.0.1:8080
  public_url: http://127.0.0.1:8080
log:
  level: info
gateways:
  sandbox:
    domain: sandbox.localhost
    secret: secret
    adapter: sandbox
`

// runCLI runs the command in-process with a controlled environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "XMPPGW_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "xmppgw.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCheckConfig(t *testing.T) {
	tests := []struct {
		name     string
		config   string
		env      map[string]string
		flags    []string
		wantCode int
		want     []string // in stdout (code 0) or stderr
		dontWant []string
	}{
		{
			name:     "contract config is valid and its secret redacted",
			config:   baseConfig,
			want:     []string{"domain: sandbox.localhost", "secret: '[redacted]'", "data_dir: ./data"},
			dontWant: []string{"secret: secret"},
		},
		{
			name:     "unknown key",
			config:   strings.Replace(baseConfig, "    secret: secret\n", "    secret: secret\n    secrte: x\n", 1),
			wantCode: 1,
			want:     []string{`unknown key "gateways.sandbox.secrte"`},
		},
		{
			name:     "unknown top-level key",
			config:   baseConfig + "metrics:\n  enabled: true\n",
			wantCode: 1,
			want:     []string{`unknown key "metrics"`},
		},
		{
			name:     "missing secret",
			config:   strings.Replace(baseConfig, "    secret: secret\n", "", 1),
			wantCode: 1,
			want:     []string{"gateways.sandbox.secret: required (set secret, secret_file or XMPPGW_GATEWAYS__SANDBOX__SECRET)"},
		},
		{
			name:     "bad domain",
			config:   strings.Replace(baseConfig, "domain: sandbox.localhost", "domain: alice@sandbox.localhost", 1),
			wantCode: 1,
			want:     []string{`gateways.sandbox.domain: "alice@sandbox.localhost" is not a bare domain`},
		},
		{
			name:     "unknown adapter",
			config:   strings.Replace(baseConfig, "adapter: sandbox", "adapter: carrier-pigeon", 1),
			wantCode: 1,
			want:     []string{`gateways.sandbox.adapter: unknown adapter "carrier-pigeon" (known: external, irc, matrix, push, sandbox, sms, telnyx, twilio)`},
		},
		{
			name:   "external adapter",
			config: strings.Replace(baseConfig, "adapter: sandbox", "adapter: external\n    external:\n      type: sms\n      receipts: true", 1),
			flags:  []string{"--bus-listen", "127.0.0.1:4222"},
			want:   []string{"adapter: external", "type: sms", "contact_type: pc", "receipts: true", "listen: 127.0.0.1:4222"},
		},
		{
			name:     "external adapter nobody can reach",
			config:   strings.Replace(baseConfig, "adapter: sandbox", "adapter: external\n    external:\n      type: sms", 1),
			wantCode: 1,
			want:     []string{`gateways.sandbox.adapter: "external" needs a bus that another process can reach: set bus.listen`},
		},
		{
			name:   "environment overrides the file",
			config: baseConfig,
			env:    map[string]string{"XMPPGW_LOG__LEVEL": "debug", "XMPPGW_BUS__DATA_DIR": "/var/lib/xmppgw"},
			want:   []string{"level: debug", "data_dir: /var/lib/xmppgw"},
		},
		{
			name:   "environment supplies the missing secret",
			config: strings.Replace(baseConfig, "    secret: secret\n", "", 1),
			env:    map[string]string{"XMPPGW_GATEWAYS__SANDBOX__SECRET": "from-env"},
			want:   []string{"secret: '[redacted]'"},
		},
		{
			name:   "flag overrides environment and file",
			config: baseConfig,
			env:    map[string]string{"XMPPGW_LOG__LEVEL": "debug"},
			flags:  []string{"--log-level", "warn", "--set", "gateways.sandbox.domain=sms.localhost"},
			want:   []string{"level: warn", "domain: sms.localhost"},
		},
		{
			name:     "bad value from a flag names the key",
			config:   baseConfig,
			flags:    []string{"--log-level", "loud"},
			wantCode: 1,
			want:     []string{"log.level"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, tt.config)
			args := append([]string{"check-config", "-c", file}, tt.flags...)
			code, stdout, stderr := runCLI(t, tt.env, args...)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			got := stdout
			if tt.wantCode != 0 {
				got = stderr
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.dontWant {
				if strings.Contains(stdout+stderr, w) {
					t.Errorf("output contains %q:\n%s", w, stdout+stderr)
				}
			}
		})
	}
}

func TestCheckConfigLongFlag(t *testing.T) {
	file := writeConfig(t, baseConfig)
	if code, _, stderr := runCLI(t, nil, "check-config", "--config", file); code != 0 {
		t.Fatalf("--config: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "check-config", "-c", filepath.Join(t.TempDir(), "missing.yaml")); code != 1 || !strings.Contains(stderr, "missing.yaml") {
		t.Fatalf("missing file: exit %d, stderr %q", code, stderr)
	}
}

func TestCommands(t *testing.T) {
	if code, out, _ := runCLI(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "xmppgw ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, nil, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil); code != 2 || !strings.Contains(errOut, "usage") {
		t.Errorf("no command: %d %q", code, errOut)
	}
}
