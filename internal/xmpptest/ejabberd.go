package xmpptest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

type ejabberd struct {
	ctl, dir string
	env      []string
	lifeline *os.File // write end of the running server's stdin; see lifeline
}

// StartEjabberd starts ejabberd for this test, with a fresh database, and
// stops it on cleanup. It must run as root: ejabberdctl switches to the
// ejabberd system user.
func StartEjabberd(t testing.TB, opts Options) *Server {
	t.Helper()
	ctl := lookBinary(t, "ejabberd", "ejabberdctl")
	if os.Geteuid() != 0 {
		t.Fatalf("xmpptest: ejabberd tests must run as root (ejabberdctl switches to the ejabberd user); uid is %d", os.Geteuid())
	}
	owner, err := user.Lookup("ejabberd")
	if err != nil {
		t.Fatalf("xmpptest: ejabberd system user: %v (is the ejabberd package installed? run `make test`)", err)
	}
	opts = opts.withDefaults()
	if len(opts.ProsodyModules) > 0 || len(opts.ProsodySettings) > 0 {
		t.Fatalf("xmpptest: ProsodyModules and ProsodySettings are for Prosody; use EjabberdModules")
	}
	dir := serverDir(t, "ejabberd")
	ports := proctest.FreePorts(t, 3)
	e := &ejabberd{
		ctl: ctl, dir: dir,
		// Keep epmd (if anything starts one) on loopback.
		env: append(os.Environ(), "ERL_EPMD_ADDRESS=127.0.0.1"),
	}
	s := &Server{
		name: "ejabberd", domain: opts.Domain, dir: dir,
		c2sPort: ports[0], compPort: ports[1], hasComp: len(opts.Components) > 0,
		be: e,
	}
	for _, d := range []string{"spool", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatalf("xmpptest: %v", err)
		}
	}
	files := map[string]string{
		"ejabberd.yml":    ejabberdConfig(s, opts),
		"ejabberdctl.cfg": ejabberdctlConfig(dir, ports[2]),
		// As /etc/ejabberd/inetrc: resolve localhost from /etc/hosts.
		"inetrc": "{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\",\"hostalias\"]}.\n{file, resolv, \"/etc/resolv.conf\"}.\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatalf("xmpptest: %v", err)
		}
	}
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	err = filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatalf("xmpptest: chown %s to ejabberd: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("xmpptest: stop ejabberd: %v\n%s", err, s.Log())
		}
	})
	s.Start(t)
	// ejabberdctl register needs the running node, and fails if the user
	// exists: the spool is fresh, and only this first start registers.
	err = forEachUser(opts.Users, func(u, pass string) error {
		return run(dir, e.env, ctl, "--config-dir", dir, "register", u, opts.Domain, pass)
	})
	if err != nil {
		t.Fatalf("xmpptest: ejabberd: register users: %v\n%s", err, s.Log())
	}
	return s
}

// lifeline runs "$@" (ejabberdctl foreground) and TERMs the Erlang VM once
// its stdin, a pipe held by the test process, reaches EOF: on Stop, and
// also when the test binary dies without cleanup. Pdeathsig cannot do this:
// it would reach only the shell, and su and the VM would live on.
const lifeline = `pidfile=$1; shift
"$@" </dev/null &
child=$!
read -r _ || :
# beam handles SIGTERM as a graceful init:stop(). Signalling su instead would
# SIGKILL the VM after 2 s. Wait briefly for the pid file if still starting.
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	[ -s "$pidfile" ] && break
	kill -0 "$child" 2>/dev/null || break
	sleep 0.25
done
[ -s "$pidfile" ] && kill -TERM "$(cat "$pidfile")"
wait "$child"
`

func (e *ejabberd) command() (*exec.Cmd, error) {
	pidfile := filepath.Join(e.dir, "ejabberd.pid")
	// A stale pid could name an unrelated process by now.
	if err := os.Remove(pidfile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	e.lifeline = w
	// foreground, not start: the server stays our descendant, so its exit
	// is observed with Wait.
	cmd := exec.Command("/bin/sh", "-c", lifeline, "xmpptest-ejabberd", pidfile,
		e.ctl, "--config-dir", e.dir, "foreground")
	cmd.Env = e.env
	cmd.Stdin = r // an *os.File: passed as is, no copying goroutine
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// started closes the parent's copy of the pipe's read end.
func (e *ejabberd) started(cmd *exec.Cmd) {
	if f, ok := cmd.Stdin.(*os.File); ok {
		f.Close()
	}
}

func (e *ejabberd) terminate(*proctest.Child) error {
	if e.lifeline == nil {
		return nil
	}
	err := e.lifeline.Close()
	e.lifeline = nil
	return err
}

func (e *ejabberd) logFiles() []string {
	return []string{
		filepath.Join(e.dir, "logs", "ejabberd.log"),
		filepath.Join(e.dir, "logs", "error.log"),
		filepath.Join(e.dir, "logs", "crash.log"),
		filepath.Join(e.dir, "stdout.log"),
	}
}

func ejabberdctlConfig(dir string, distPort int) string {
	cookie := make([]byte, 16)
	_, _ = rand.Read(cookie)
	node := "xmpptest-" + hex.EncodeToString(cookie[:4]) + "@localhost"
	// ERL_DIST_PORT runs distribution without epmd (-start_epmd false);
	// inet_dist_use_interface keeps it on loopback (INET_DIST_INTERFACE
	// would do the same but costs an extra VM boot per ejabberdctl call).
	// A per-instance cookie: erl would otherwise create ~ejabberd/.erlang.cookie
	// and parallel first starts could race on it.
	return fmt.Sprintf(`ERLANG_NODE=%s
SPOOL_DIR=%s
LOGS_DIR=%s
EJABBERD_PID_PATH=%s
ERL_DIST_PORT=%d
ERL_OPTIONS="-setcookie %s -kernel inet_dist_use_interface {127,0,0,1} -env ERL_CRASH_DUMP_BYTES 0"
`, node, filepath.Join(dir, "spool"), filepath.Join(dir, "logs"), filepath.Join(dir, "ejabberd.pid"),
		distPort, hex.EncodeToString(cookie))
}

func ejabberdConfig(s *Server, opts Options) string {
	q := strconv.Quote // YAML double-quoted strings accept these escapes
	level := "info"
	if debugLogging() {
		level = "debug"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by xmpptest for one test.
hosts:
  - %s
loglevel: %s
log_rotate_count: 0
auth_method: internal
auth_password_format: plain
listen:
  -
    port: %d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
`, q(opts.Domain), level, s.c2sPort)
	if len(opts.Components) > 0 {
		fmt.Fprintf(&b, `  -
    port: %d
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts:
`, s.compPort)
		for _, domain := range slices.Sorted(maps.Keys(opts.Components)) {
			fmt.Fprintf(&b, "      %s:\n        password: %s\n", q(domain), q(opts.Components[domain]))
		}
	}
	b.WriteString(`acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
`)
	if opts.Offline {
		b.WriteString("  mod_offline: {}\n")
	}
	for _, m := range slices.Sorted(maps.Keys(opts.EjabberdModules)) {
		fmt.Fprintf(&b, "  %s: %s\n", m, opts.EjabberdModules[m])
	}
	return b.String()
}
