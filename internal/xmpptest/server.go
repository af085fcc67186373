package xmpptest

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// Timeouts for process management. Generous: CI machines are slow.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	cmdTimeout   = 30 * time.Second
)

// Options configures a test server. The zero value is usable.
type Options struct {
	// Domain is the virtual host; default "localhost".
	Domain string
	// Components maps an external component's domain to its secret, for
	// example {"sandbox.localhost": "secret"}. All of them are served on
	// ComponentAddr.
	Components map[string]string
	// Users maps a localpart to a password. nil means
	// {"alice": "password", "bob": "password"}; an empty map means no users.
	Users map[string]string
	// Offline enables offline storage (Prosody's mod_offline, ejabberd's
	// mod_offline), as production servers have: a message to a user with no
	// session is kept and delivered at the next login instead of bounced.
	Offline bool
	// ProsodyModules are more Prosody modules to enable, by name (e.g.
	// "cloud_notify", from Debian's prosody-modules, and "smacks"), and
	// ProsodySettings more global options: name → Lua value, written as
	// given (e.g. "push_max_errors": "1"). StartEjabberd refuses both.
	ProsodyModules  []string
	ProsodySettings map[string]string
	// EjabberdModules are more ejabberd modules: name → options as YAML
	// flow text (e.g. "mod_push": "{}"). StartProsody refuses them.
	EjabberdModules map[string]string
}

func (o Options) withDefaults() Options {
	if o.Domain == "" {
		o.Domain = "localhost"
	}
	if o.Users == nil {
		o.Users = map[string]string{"alice": "password", "bob": "password"}
	}
	return o
}

// backend is what differs between Prosody and ejabberd.
type backend interface {
	// command returns the server process to run in the foreground, in its
	// own process group (so a last-resort SIGKILL reaches every helper).
	command() (*exec.Cmd, error)
	// started is called after the command started.
	started(cmd *exec.Cmd)
	// terminate asks the running server to stop gracefully.
	terminate(p *proctest.Child) error
	// logFiles lists the files Log returns, most useful first.
	logFiles() []string
}

// Server is a running (or stopped) XMPP server owned by one test.
type Server struct {
	name     string
	domain   string
	dir      string
	c2sPort  int
	compPort int
	hasComp  bool
	be       backend

	mu   sync.Mutex
	proc *proctest.Child // nil when stopped
}

// process is a started server process and its exit.
// Name returns "prosody" or "ejabberd".
func (s *Server) Name() string { return s.name }

// Domain returns the virtual host users log in to.
func (s *Server) Domain() string { return s.domain }

// Dir returns the directory holding the server's config, data and logs.
func (s *Server) Dir() string { return s.dir }

// C2SAddr returns the client-to-server address, "127.0.0.1:port".
func (s *Server) C2SAddr() string { return hostPort(s.c2sPort) }

// ComponentAddr returns the XEP-0114 component address, "127.0.0.1:port".
func (s *Server) ComponentAddr() string { return hostPort(s.compPort) }

func hostPort(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }

// Log returns the server's log files (the tail of each, if long).
func (s *Server) Log() string {
	const max = 64 << 10
	var b strings.Builder
	for _, f := range s.be.logFiles() {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n", filepath.Base(f))
		if len(data) > max {
			b.WriteString("[...]\n")
			data = data[len(data)-max:]
		}
		b.Write(data)
		if data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Start starts the stopped server on its ports and waits until they accept
// connections. Data (accounts) survive a Stop/Start.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("xmpptest: start %s: %v\n%s", s.name, err, s.Log())
	}
}

// Stop stops the server (SIGTERM, SIGKILL after a deadline) and keeps its
// directory and ports for a later Start. Stopping a stopped server is a no-op.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("xmpptest: stop %s: %v\n%s", s.name, err, s.Log())
	}
}

// Restart stops and starts the server.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("already running")
	}
	cmd, err := s.be.command()
	if err != nil {
		return err
	}
	cmd.Dir = s.dir
	p, err := proctest.StartChild(cmd, filepath.Join(s.dir, "stdout.log"))
	s.be.started(cmd)
	if err != nil {
		return err
	}
	s.proc = p

	addrs := []string{s.C2SAddr()}
	if s.hasComp {
		addrs = append(addrs, s.ComponentAddr())
	}
	if err := p.WaitListening("server", addrs, startTimeout); err != nil {
		s.killLocked()
		return err
	}
	return nil
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	return p.Stop(func() error { return s.be.terminate(p) }, stopTimeout)
}

// killLocked SIGKILLs the whole process group and waits for the exit.
func (s *Server) killLocked() {
	p := s.proc
	if p == nil {
		return
	}
	_ = s.be.terminate(p) // releases what the backend holds
	p.Kill(stopTimeout)
	s.proc = nil
}

// lookBinary fails the test if a server's binary is missing: a skipped
// end-to-end test would hide a broken gateway.
func lookBinary(t testing.TB, server, bin string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		// ejabberdctl is in /usr/sbin, often not in a non-root PATH.
		for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
			if p := filepath.Join(dir, bin); isExecutable(p) {
				return p
			}
		}
		t.Fatalf("xmpptest: %s is not installed (%s not found): run `make test`, which installs it (deploy/install-deps.sh %s)", server, bin, server)
	}
	return path
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// run runs a helper command with a deadline, its output going to a log file
// in dir (a file, not a pipe: see start). It returns the output on failure.
func run(dir string, env []string, name string, args ...string) error {
	f, err := os.CreateTemp(dir, "cmd-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(cmdTimeout):
		_ = cmd.Process.Kill()
		<-done
		err = fmt.Errorf("timed out after %v", cmdTimeout)
	}
	if err != nil {
		out, _ := os.ReadFile(f.Name())
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// forEachUser runs fn for every user concurrently (registration spawns a
// process per user) and returns the first error.
func forEachUser(users map[string]string, fn func(user, pass string) error) error {
	var wg sync.WaitGroup
	errs := make([]error, 0, len(users))
	var mu sync.Mutex
	for _, u := range slices.Sorted(maps.Keys(users)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(u, users[u]); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("user %s: %w", u, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func debugLogging() bool { return os.Getenv("XMPPTEST_DEBUG") != "" }
