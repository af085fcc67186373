package dendritetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// Version is the Dendrite release the tests run.
const Version = "v0.13.8"

// Module is Dendrite's module path; its commands are built from it.
const Module = "github.com/matrix-org/dendrite"

// commands are the Dendrite binaries the harness uses.
var commands = []string{"dendrite", "generate-keys", "generate-config"}

// ServerName is the homeserver's name: user ids are @name:localhost.
const ServerName = "localhost"

// SharedSecret is the registration shared secret of every test server.
const SharedSecret = "dendritetest-secret"

// Timeouts. Generous: CI machines are slow.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
	buildTimeout = 20 * time.Minute
)

// CacheDir is where the binaries of Version are kept.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "xmppgw", "dendrite-"+Version), nil
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries returns the directory holding the Dendrite binaries, building
// them first if they are not cached.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildDir, buildErr = ensureBuilt() })
	if buildErr != nil {
		t.Fatalf("dendritetest: %v", buildErr)
	}
	return buildDir
}

func built(dir string) bool {
	for _, c := range commands {
		if fi, err := os.Stat(filepath.Join(dir, c)); err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// ensureBuilt builds the binaries into the cache unless they are there,
// holding a lock so that concurrent test processes build once.
func ensureBuilt() (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	if built(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if built(dir) { // another process built it while we waited
		return dir, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "dendrite-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	args := []string{"install"}
	for _, c := range commands {
		args = append(args, Module+"/cmd/"+c+"@"+Version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = tmp // outside any module: go install pkg@version
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=1", "GOFLAGS=-buildvcs=false")
	start := time.Now()
	fmt.Fprintf(os.Stderr, "dendritetest: building Dendrite %s into %s (once; about 3 minutes)\n", Version, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building Dendrite %s (needs cgo and gcc; deploy/install-deps.sh dendrite): %v\n%s", Version, err, out)
	}
	fmt.Fprintf(os.Stderr, "dendritetest: built Dendrite in %v\n", time.Since(start).Round(time.Second))
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// Server is a running (or stopped) Dendrite owned by one test.
type Server struct {
	dir  string
	port int
	proc *proctest.Proc
}

// Start starts a homeserver for this test and stops it on cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bins := Binaries(t)
	dir, err := os.MkdirTemp("", "dendritetest-")
	if err != nil {
		t.Fatalf("dendritetest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("DENDRITETEST_KEEP") != "" {
			t.Logf("dendritetest: keeping %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	s := &Server{dir: dir, port: proctest.FreePorts(t, 1)[0]}
	key := filepath.Join(dir, "matrix_key.pem")
	if out, err := exec.Command(filepath.Join(bins, "generate-keys"), "-private-key", key).CombinedOutput(); err != nil {
		t.Fatalf("dendritetest: generate-keys: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(bins, "generate-config"), "-dir", dir, "-server", ServerName).Output()
	if err != nil {
		t.Fatalf("dendritetest: generate-config: %v", err)
	}
	cfg, err := configure(string(out), key)
	if err != nil {
		t.Fatalf("dendritetest: %v", err)
	}
	cfgPath := filepath.Join(dir, "dendrite.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatalf("dendritetest: %v", err)
	}
	s.proc = proctest.NewProc(t, "dendrite", filepath.Join(dir, "stdout.log"),
		filepath.Join(bins, "dendrite"), "--config", cfgPath, "--http-bind-address", s.hostPort())
	s.Start(t)
	return s
}

// configure adapts generate-config's output: an absolute key path (it is
// resolved against the working directory), federation and rate limiting
// off, the shared secret, cheap password hashing.
func configure(cfg, key string) (string, error) {
	for _, r := range [][2]string{
		{"private_key: matrix_key.pem", "private_key: " + key},
		{"disable_federation: false", "disable_federation: true"},
		{`registration_shared_secret: ""`, "registration_shared_secret: " + SharedSecret},
		{"rate_limiting:\n    enabled: true", "rate_limiting:\n    enabled: false"},
		{"bcrypt_cost: 10", "bcrypt_cost: 4"},
	} {
		if !strings.Contains(cfg, r[0]) {
			return "", fmt.Errorf("generate-config's output has no %q", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	return cfg, nil
}

func (s *Server) hostPort() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the homeserver's client API base URL.
func (s *Server) URL() string { return "http://" + s.hostPort() }

// Start starts the server (again, after Stop or Kill) and waits until it
// answers.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.proc.Start(); err != nil {
		t.Fatalf("dendritetest: start: %v", err)
	}
	c := &http.Client{Timeout: 2 * time.Second}
	ok := proctest.Poll(startTimeout, 50*time.Millisecond, func() bool {
		resp, err := c.Get(s.URL() + "/_matrix/client/versions")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	c.CloseIdleConnections()
	if !ok {
		t.Fatalf("dendritetest: Dendrite did not answer on %s within %v\n%s", s.URL(), startTimeout, s.proc.LogTail(30))
	}
}

// Stop stops the server (SIGTERM); Start starts it again with its data.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if _, err := s.proc.Stop(stopTimeout); err != nil {
		t.Fatalf("dendritetest: stop: %v", err)
	}
}

// Log returns the end of the server's output, for failure messages.
func (s *Server) Log() string { return s.proc.LogTail(40) }

// Register creates the account @localpart:localhost with password.
func (s *Server) Register(t testing.TB, localpart, password string) id.UserID {
	t.Helper()
	cli, err := mautrix.NewClient(s.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	cli.Client = hc
	admin := &synapseadmin.Client{Client: cli}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := admin.SharedSecretRegister(ctx, SharedSecret, synapseadmin.ReqSharedSecretRegister{Username: localpart, Password: password})
	if err != nil {
		t.Fatalf("dendritetest: register %s: %v", localpart, err)
	}
	return resp.UserID
}

// Client logs in as localpart and returns the client, whose HTTP
// connections are closed at cleanup.
func (s *Server) Client(t testing.TB, localpart, password string) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(s.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 90 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	cli.Client = hc
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cli.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:         password,
		StoreCredentials: true,
	})
	if err != nil {
		t.Fatalf("dendritetest: log in %s: %v", localpart, err)
	}
	return cli
}
