package matrix

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/tlsca"
)

// ID is the adapter's name in configuration.
const ID = "matrix"

func init() {
	gateways.Register(gateways.Info{
		ID:           ID,
		Type:         "matrix",
		ContactType:  "pc",
		Name:         "Matrix",
		Capabilities: gateways.Capabilities{Rooms: true, Media: true},
		NewConfig:    newConfig,
		New:          New,
	})
}

// hostTimeout bounds one hand-over to the gateway.
const hostTimeout = 30 * time.Second

// Adapter is the Matrix network: one Matrix client (device) per user.
type Adapter struct {
	name      string
	domain    string
	cfg       *Config
	log       *slog.Logger
	cryptoDir string // where devices' encryption state is kept (crypto_dir)
	// publicURL and mount: where the media links handed to users are
	// served (http.public_url, /matrix/<name>); no links without it.
	publicURL, mount string
	kv               jetstream.KeyValue // registrations
	msgs             jetstream.KeyValue // messages (expiring)
	tr               *http.Transport
	http             *http.Client // requests other than /sync
	sync             *http.Client // /sync: its long poll plus RequestTimeout

	mu  sync.Mutex
	run *run
}

var (
	_ gateways.Adapter         = (*Adapter)(nil)
	_ gateways.CommandProvider = (*Adapter)(nil)
	_ gateways.RoomAdapter     = (*Adapter)(nil)
	_ gateways.HTTPProvider    = (*Adapter)(nil)
	_ gateways.Editor          = (*Adapter)(nil)
	_ gateways.Replier         = (*Adapter)(nil)
	_ gateways.Reactor         = (*Adapter)(nil)
	_ gateways.Retractor       = (*Adapter)(nil)
	_ gateways.MarkerSender    = (*Adapter)(nil)
	_ gateways.Typer           = (*Adapter)(nil)
)

// New constructs the adapter. It connects to nothing.
func New(p gateways.Params) (gateways.Adapter, error) {
	cfg, ok := p.Config.(*Config)
	if !ok || cfg == nil {
		cfg = newConfig().(*Config)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{name: p.Name, domain: p.Domain, cfg: cfg, log: log, kv: p.Registrations, msgs: p.Messages,
		publicURL: strings.TrimSuffix(p.PublicURL, "/"), mount: "/" + ID + "/" + p.Name}
	a.cryptoDir = cfg.CryptoDir
	if a.cryptoDir == "" && p.DataDir != "" {
		a.cryptoDir = filepath.Join(p.DataDir, "matrix-crypto", p.Name)
	}
	if a.cryptoDir == "" {
		return nil, errors.New("crypto_dir: required when bus.data_dir is not set (an external bus): the directory where the end-to-end encryption keys of the gateway's Matrix devices are kept")
	}
	a.tr = a.newTransport()
	if cfg.TLSCAFile != "" {
		roots, err := tlsca.Load(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		a.tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	a.http = &http.Client{Transport: a.tr, Timeout: cfg.RequestTimeout}
	a.sync = &http.Client{Transport: a.tr, Timeout: cfg.SyncTimeout + cfg.RequestTimeout}
	return a, nil
}

// errStopped: the adapter is not running; Send may succeed after a Start.
var errStopped = fmt.Errorf("matrix: not started: %w", gateways.ErrNotConnected)

// run is one Start…Stop of the adapter.
type run struct {
	a       *Adapter
	id      string // this run, as the holder of sync leases
	host    gateways.Host
	ctx     context.Context // ends at Stop
	cancel  context.CancelFunc
	watcher jetstream.KeyWatcher
	wg      sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session // by bare JID
}

// Start follows the logins in the registrations bucket (made by this
// process or another) and connects each user. It returns once every stored
// login has a session; their first syncs carry on in the background.
func (a *Adapter) Start(ctx context.Context, h gateways.Host) error {
	if a.kv == nil {
		return errors.New("matrix: adapter constructed without the registrations bucket")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run != nil {
		return errors.New("matrix: already started")
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &run{a: a, id: nuid.Next(), host: h, ctx: rctx, cancel: cancel, sessions: map[string]*session{}}
	w, err := a.kv.Watch(ctx, a.accountPrefix()+"*")
	if err != nil {
		cancel()
		return fmt.Errorf("matrix: watch logins: %w", err)
	}
	r.watcher = w
	// The initial values end with nil.
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case e, ok = <-w.Updates():
		case <-ctx.Done():
			_ = w.Stop()
			cancel()
			return ctx.Err()
		}
		if !ok {
			cancel()
			return errors.New("matrix: the logins watcher stopped")
		}
		if e == nil {
			break
		}
		r.apply(e)
	}
	r.wg.Add(1)
	go r.follow()
	a.run = r
	return nil
}

// follow applies changes of logins until Stop.
func (r *run) follow() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case e, ok := <-r.watcher.Updates():
			if !ok {
				return
			}
			if e != nil {
				r.apply(e)
			}
		}
	}
}

// apply starts, restarts or ends a user's session for a changed login.
func (r *run) apply(e jetstream.KeyValueEntry) {
	user, ok := r.a.userOfAccountKey(e.Key())
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.sessions[user]
	if e.Operation() != jetstream.KeyValuePut {
		if old != nil {
			delete(r.sessions, user)
			old.logout()
		}
		return
	}
	acc, err := parseAccount(e.Value())
	if err != nil {
		r.a.log.Error("unreadable Matrix login", "user", user, "error", err)
		return
	}
	if old != nil {
		if old.acc == acc {
			return
		}
		if old.acc.DeviceID != acc.DeviceID {
			old.logout() // replaced by a new login
		} else {
			old.stop()
		}
	}
	s, err := r.newSession(user, acc)
	if err != nil {
		r.a.log.Error("cannot connect to Matrix", "user", user, "mxid", acc.UserID, "error", err)
		return
	}
	r.sessions[user] = s
}

// session returns user's session, starting it from the stored login when
// the watcher has not yet.
func (r *run) session(ctx context.Context, user string) (*session, error) {
	r.mu.Lock()
	s := r.sessions[user]
	r.mu.Unlock()
	if s != nil {
		return s, nil
	}
	acc, ok, err := r.a.loadAccount(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", gateways.ErrNotConnected, err)
	}
	if !ok {
		return nil, gateways.Reject(gateways.RegistrationRequired, "log in to Matrix first (the gateway's \"Log in to Matrix\" command)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sessions[user]; s != nil {
		return s, nil
	}
	if r.ctx.Err() != nil {
		return nil, errStopped
	}
	s, err = r.newSession(user, acc)
	if err != nil {
		return nil, err
	}
	r.sessions[user] = s
	return s, nil
}

// Stop ends every session. Safe after a failed or no Start.
func (a *Adapter) Stop(ctx context.Context) error {
	a.mu.Lock()
	r := a.run
	a.run = nil
	a.mu.Unlock()
	if r == nil {
		return nil
	}
	r.cancel()
	_ = r.watcher.Stop()
	r.mu.Lock()
	for _, s := range r.sessions {
		s.stop()
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("matrix: stop: %w", ctx.Err())
	}
	a.tr.CloseIdleConnections()
	return err
}

// current returns the running run, or errStopped.
func (a *Adapter) current() (*run, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run == nil {
		return nil, errStopped
	}
	return a.run, nil
}
