package irctest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	startTimeout = 15 * time.Second
	stopTimeout  = 10 * time.Second
)

// nobody is the account ngircd runs as when the test runs as root: ngircd
// refuses to keep root and would otherwise switch users itself, which
// clears the parent-death signal that stops it if the test binary dies.
const nobody = 65534

// Options configures a test server. The zero value is usable.
type Options struct {
	// Name is the server's name on the IRC network; it must contain a dot.
	// Default "irc.test".
	Name string
	// Password, when set, is the server password every client must send
	// (PASS) before registering.
	Password string
	// MaxNickLength is the longest nick the server accepts. Default 30
	// (ngircd's own default is RFC 2812's 9).
	MaxNickLength int
	// PingTimeout is how long the server waits on an idle client before it
	// sends a PING; PongTimeout how long it then waits for the PONG.
	// Defaults 120 s and 20 s, as ngircd's. Whole seconds.
	PingTimeout, PongTimeout time.Duration
	// TLS adds a TLS listener on a second port (TLSAddr) with a
	// self-signed certificate for 127.0.0.1 and localhost, generated at
	// Start (CACertFile). The plain port stays.
	TLS bool
}

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = "irc.test"
	}
	if o.MaxNickLength == 0 {
		o.MaxNickLength = 30
	}
	if o.PingTimeout == 0 {
		o.PingTimeout = 120 * time.Second
	}
	if o.PongTimeout == 0 {
		o.PongTimeout = 20 * time.Second
	}
	return o
}

// Server is a running (or stopped) ngircd owned by one test.
type Server struct {
	bin     string
	opts    Options
	dir     string
	port    int
	tlsPort int // 0 without Options.TLS

	mu   sync.Mutex
	proc *proctest.Child // nil when stopped
}

// Start starts ngircd for this test on a free loopback port and stops it on
// cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := lookBinary(t)
	opts = opts.withDefaults()
	if !strings.Contains(opts.Name, ".") {
		t.Fatalf("irctest: server name %q must contain a dot", opts.Name)
	}
	// Under /tmp, not t.TempDir: ngircd runs as nobody and must reach it.
	dir, err := os.MkdirTemp("/tmp", "irctest-")
	if err != nil {
		t.Fatalf("irctest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("IRCTEST_KEEP") != "" {
			t.Logf("irctest: keeping %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	s := &Server{bin: bin, opts: opts, dir: dir}
	if opts.TLS {
		ports := proctest.FreePorts(t, 2)
		s.port, s.tlsPort = ports[0], ports[1]
		if err := writeTLSFiles(dir); err != nil {
			t.Fatalf("irctest: TLS files: %v", err)
		}
	} else {
		s.port = proctest.FreePorts(t, 1)[0]
	}
	if err := os.WriteFile(s.configFile(), []byte(s.config()), 0o644); err != nil {
		t.Fatalf("irctest: %v", err)
	}
	if os.Geteuid() == 0 {
		// The pid file and the log are written as nobody.
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatalf("irctest: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("irctest: stop ngircd: %v\n%s", err, s.Log())
		}
	})
	s.Start(t)
	return s
}

// Addr returns the client address, "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// TLSAddr returns the TLS client address, "127.0.0.1:port", or "" without
// Options.TLS.
func (s *Server) TLSAddr() string {
	if s.tlsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
}

// CACertFile returns the path of the server's certificate (PEM), or ""
// without Options.TLS. The certificate is self-signed: it is the CA to
// trust. It stays the same across restarts.
func (s *Server) CACertFile() string {
	if s.tlsPort == 0 {
		return ""
	}
	return filepath.Join(s.dir, certFile)
}

// Name returns the server's IRC name, the prefix of its own messages.
func (s *Server) Name() string { return s.opts.Name }

// Password returns the server password, "" when there is none.
func (s *Server) Password() string { return s.opts.Password }

// Dir returns the directory holding the server's config and log.
func (s *Server) Dir() string { return s.dir }

func (s *Server) configFile() string { return filepath.Join(s.dir, "ngircd.conf") }
func (s *Server) logFile() string    { return filepath.Join(s.dir, "ngircd.log") }

// Log returns the server's log (its tail, if long).
func (s *Server) Log() string {
	const max = 64 << 10
	data, err := os.ReadFile(s.logFile())
	if err != nil || len(data) == 0 {
		return ""
	}
	if len(data) > max {
		data = append([]byte("[...]\n"), data[len(data)-max:]...)
	}
	return "==> ngircd.log <==\n" + string(data)
}

// Start starts the stopped server on its port and waits until it accepts
// connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("irctest: start ngircd: %v\n%s", err, s.Log())
	}
}

// Stop stops the server (SIGTERM, SIGKILL after a deadline); every client
// is disconnected. The port and directory are kept for a later Start.
// Stopping a stopped server is a no-op.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("irctest: stop ngircd: %v\n%s", err, s.Log())
	}
}

// Restart stops and starts the server: clients lose their connections and
// channels are gone (ngircd keeps no state).
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
	// -n: stay in the foreground and log to stderr; -p: link to no servers.
	cmd := exec.Command(s.bin, "-n", "-p", "-f", s.configFile())
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	p, err := proctest.StartChild(cmd, s.logFile())
	if err != nil {
		return err
	}
	s.proc = p
	addrs := []string{s.Addr()}
	if tlsAddr := s.TLSAddr(); tlsAddr != "" {
		addrs = append(addrs, tlsAddr)
	}
	if err := p.WaitListening("ngircd", addrs, startTimeout); err != nil {
		p.Kill(stopTimeout)
		s.proc = nil
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
	return p.Stop(nil, stopTimeout)
}

func (s *Server) config() string {
	o := s.opts
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by irctest for one test.
[Global]
	Name = %s
	Info = irctest server
	AdminInfo1 = irctest
	AdminInfo2 = loopback
	AdminEMail = irctest@%s
	Listen = 127.0.0.1
	Ports = %d
	PidFile = %s
	MotdPhrase = "irctest"
`, o.Name, o.Name, s.port, filepath.Join(s.dir, "ngircd.pid"))
	if o.Password != "" {
		fmt.Fprintf(&b, "\tPassword = %s\n", o.Password)
	}
	// Flood control (penalties) stays at ngircd's defaults: the gateway
	// must live with them.
	fmt.Fprintf(&b, `[Limits]
	MaxConnections = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = %d
	PingTimeout = %d
	PongTimeout = %d
[Options]
	DNS = no
	Ident = no
	PAM = no
`, o.MaxNickLength, max(1, int(o.PingTimeout/time.Second)), max(1, int(o.PongTimeout/time.Second)))
	if s.tlsPort != 0 {
		fmt.Fprintf(&b, `[SSL]
	CertFile = %s
	KeyFile = %s
	DHFile = %s
	Ports = %d
`, filepath.Join(s.dir, certFile), filepath.Join(s.dir, keyFile), filepath.Join(s.dir, dhFile), s.tlsPort)
	}
	return b.String()
}

// lookBinary fails the test if ngircd is missing: a skipped test would hide
// a broken adapter.
func lookBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("ngircd"); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, "ngircd")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatal("irctest: ngircd is not installed (apt-get install ngircd)")
	return ""
}
