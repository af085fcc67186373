package xmpptest

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

type prosody struct {
	bin, cfg, dir string
}

// StartProsody starts Prosody for this test and stops it on cleanup.
func StartProsody(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := lookBinary(t, "prosody", "prosody")
	ctl := lookBinary(t, "prosody", "prosodyctl")
	opts = opts.withDefaults()
	if len(opts.EjabberdModules) > 0 {
		t.Fatalf("xmpptest: EjabberdModules are for ejabberd; use ProsodyModules")
	}
	dir := serverDir(t, "prosody")
	ports := proctest.FreePorts(t, 2)
	p := &prosody{bin: bin, cfg: filepath.Join(dir, "prosody.cfg.lua"), dir: dir}
	s := &Server{
		name: "prosody", domain: opts.Domain, dir: dir,
		c2sPort: ports[0], compPort: ports[1], hasComp: len(opts.Components) > 0,
		be: p,
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatalf("xmpptest: %v", err)
	}
	if err := os.WriteFile(p.cfg, []byte(prosodyConfig(s, opts)), 0o644); err != nil {
		t.Fatalf("xmpptest: %v", err)
	}
	// --config must come before the subcommand, or prosodyctl silently uses
	// /etc/prosody. Registering works while the server is stopped.
	err := forEachUser(opts.Users, func(user, pass string) error {
		return run(dir, os.Environ(), ctl, "--config", p.cfg, "register", user, opts.Domain, pass)
	})
	if err != nil {
		t.Fatalf("xmpptest: prosody: register users: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("xmpptest: stop prosody: %v\n%s", err, s.Log())
		}
	})
	s.Start(t)
	return s
}

func (p *prosody) command() (*exec.Cmd, error) {
	cmd := exec.Command(p.bin, "--config", p.cfg, "-F")
	// prosody is the child itself (a script run by lua, no wrapper), so
	// Pdeathsig stops it if the test binary dies before cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	return cmd, nil
}

func (p *prosody) started(*exec.Cmd) {}

func (p *prosody) terminate(proc *proctest.Child) error {
	return proc.Cmd.Process.Signal(syscall.SIGTERM)
}

func (p *prosody) logFiles() []string {
	return []string{filepath.Join(p.dir, "prosody.log"), filepath.Join(p.dir, "stdout.log")}
}

func prosodyConfig(s *Server, opts Options) string {
	q := luaString
	level := "info"
	if debugLogging() {
		level = "debug"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `-- Written by xmpptest for one test.
run_as_root = true -- tests may run as uid 0; without this Prosody refuses to start and hangs
pidfile = %s
data_path = %s
log = { %s = %s }

interfaces = { "127.0.0.1" }
c2s_ports = { %d }
component_interfaces = { "127.0.0.1" }
component_ports = { %d }

modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix"%s }
modules_disabled = { "s2s"; "s2s_auth_certs"%s }

authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
%s
VirtualHost %s
`, q(filepath.Join(s.dir, "prosody.pid")), q(filepath.Join(s.dir, "data")),
		level, q(filepath.Join(s.dir, "prosody.log")),
		s.c2sPort, s.compPort, extraModules(opts.ProsodyModules), offlineModule(opts.Offline), prosodySettings(opts.ProsodySettings), q(opts.Domain))
	for _, domain := range slices.Sorted(maps.Keys(opts.Components)) {
		fmt.Fprintf(&b, "\nComponent %s\n\tcomponent_secret = %s\n", q(domain), q(opts.Components[domain]))
	}
	return b.String()
}

// extraModules are modules_enabled entries.
func extraModules(mods []string) string {
	var b strings.Builder
	for _, m := range mods {
		b.WriteString("; " + luaString(m))
	}
	return b.String()
}

// prosodySettings are global option lines, sorted.
func prosodySettings(opts map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		fmt.Fprintf(&b, "%s = %s\n", k, opts[k])
	}
	return b.String()
}

// offlineModule is the modules_disabled entry for mod_offline, which
// Prosody loads unless told not to.
func offlineModule(enabled bool) string {
	if enabled {
		return ""
	}
	return `; "offline"`
}

// luaString quotes s as a Lua string literal.
func luaString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\x00", `\0`)
	return `"` + r.Replace(s) + `"`
}

// serverDir creates a directory for one server under /tmp, traversable by
// other users (ejabberd runs as its own user; t.TempDir's parents are 0700),
// and removes it on cleanup.
func serverDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "xmpptest-"+name+"-")
	if err != nil {
		t.Fatalf("xmpptest: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("xmpptest: %v", err)
	}
	// Registered before the server's stop, so it runs after it.
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("XMPPTEST_KEEP") != "" {
			t.Logf("xmpptest: keeping %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}
