package irc

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/tlsca"
)

// ID is the adapter's name in configuration.
const ID = "irc"

func init() {
	gateways.Register(gateways.Info{
		ID:           ID,
		Type:         "irc",
		ContactType:  "pc",
		Name:         "IRC",
		Capabilities: gateways.Capabilities{Rooms: true},
		NewConfig:    newConfig,
		New:          New,
	})
}

const (
	// startWait bounds how long Start waits for the registered users'
	// first connections; those still connecting carry on in the
	// background.
	startWait = 10 * time.Second
	// hostTimeout bounds one hand-over to the gateway (Deliver, Occupant).
	hostTimeout = 30 * time.Second
	// maxDials is how many connections are being set up at once, so that a
	// restart with many users does not storm the server.
	maxDials = 8
)

// Adapter is the IRC network: one IRC connection per registered user.
type Adapter struct {
	name   string
	domain string
	cfg    *Config
	log    *slog.Logger
	kv     jetstream.KeyValue
	reg    *Registrar
	tls    *tls.Config // nil without cfg.TLS; shared by every connection

	// What servers announced (ISUPPORT), for every user: channel
	// prefixes and the longest nick.
	chanTypes atomic.Pointer[string]
	nickLen   atomic.Int32

	probeMu sync.Mutex
	probing chan struct{} // closed when the running probe ends; nil if none

	mu  sync.Mutex
	run *run // nil unless started
}

var (
	_ gateways.Adapter           = (*Adapter)(nil)
	_ gateways.RoomAdapter       = (*Adapter)(nil)
	_ gateways.RegistrarProvider = (*Adapter)(nil)
	_ gateways.Registrar         = (*Registrar)(nil)
	_ gateways.AddressChooser    = (*Registrar)(nil)
)

// New constructs the adapter. It connects to nothing.
func New(p gateways.Params) (gateways.Adapter, error) {
	cfg, ok := p.Config.(*Config)
	if !ok || cfg == nil {
		return nil, errors.New("missing irc configuration block (server…)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{name: p.Name, domain: p.Domain, cfg: cfg, log: log, kv: p.Registrations}
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(cfg.Server)
		a.tls = &tls.Config{ServerName: host, InsecureSkipVerify: cfg.TLSInsecureSkipVerify, MinVersion: tls.VersionTLS12}
		if cfg.TLSCAFile != "" {
			// Validate read it too; this is the copy the connections use,
			// so that a file changed later cannot change them.
			roots, err := tlsca.Load(cfg.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("tls_ca_file: %w", err)
			}
			a.tls.RootCAs = roots
		}
	}
	if p.Registrations != nil {
		a.reg = &Registrar{kv: p.Registrations, gw: p.Name, a: a}
	}
	return a, nil
}

// Registrar returns the nick registry (nil when the adapter was built
// without its KV bucket, to check the configuration).
func (a *Adapter) Registrar() gateways.Registrar {
	if a.reg == nil {
		return nil
	}
	return a.reg
}

// errStopping: the adapter is stopping; Send may succeed after a Start.
var errStopping = fmt.Errorf("irc: stopping: %w", gateways.ErrNotConnected)

// run is one Start…Stop of the adapter.
type run struct {
	a       *Adapter
	host    gateways.Host
	ctx     context.Context // ends at Stop
	cancel  context.CancelFunc
	watcher jetstream.KeyWatcher
	synced  chan struct{} // closed once the watcher has sent every registration
	dials   chan struct{} // semaphore of maxDials
	wg      sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session // by bare JID
	stopping bool
	watchEnd bool // the watcher stopped before Stop
}

// Start connects every registered user and follows registrations (from
// this process or another) as they change. It returns once each user's
// first connection attempt ended, or after a bound: Send waits for a
// connection still being made.
func (a *Adapter) Start(ctx context.Context, h gateways.Host) error {
	if a.kv == nil {
		return errors.New("irc: adapter constructed without the registrations bucket")
	}
	a.mu.Lock()
	running := a.run != nil
	a.mu.Unlock()
	if running {
		return errors.New("irc: already started")
	}
	// Connections outlive Start: they end at Stop, not with ctx.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &run{
		a: a, host: h, ctx: rctx, cancel: cancel,
		synced: make(chan struct{}), dials: make(chan struct{}, maxDials),
		sessions: map[string]*session{},
	}
	w, err := a.kv.Watch(rctx, a.name+".user.*")
	if err != nil {
		cancel()
		return fmt.Errorf("irc: watch registrations: %w", err)
	}
	r.watcher = w
	r.wg.Add(1)
	go r.follow()
	if a.reg != nil && !a.reg.knownNickLimit(ctx) {
		// Ask the server for its nick limit now, so that registration
		// does not wait for it (see probe.go).
		probed := a.probeOnce(rctx)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			select {
			case <-probed:
			case <-rctx.Done(): // a probe of this run ends with rctx
			}
		}()
	}
	select {
	case <-r.synced:
	case <-ctx.Done():
		r.shutdown(context.Background())
		return ctx.Err()
	}
	r.mu.Lock()
	failed := r.watchEnd
	started := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		started = append(started, s)
	}
	r.mu.Unlock()
	a.mu.Lock()
	if failed || a.run != nil {
		a.mu.Unlock()
		r.shutdown(context.Background())
		if failed {
			return errors.New("irc: the registrations watcher stopped")
		}
		return errors.New("irc: already started")
	}
	a.run = r
	a.mu.Unlock()

	wait := time.NewTimer(startWait)
	defer wait.Stop()
	for _, s := range started {
		select {
		case <-s.firstDone:
		case <-wait.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// follow applies registration changes: the current ones first (Start
// waits for them), then every change as it happens.
func (r *run) follow() {
	defer r.wg.Done()
	var once sync.Once
	synced := func() { once.Do(func() { close(r.synced) }) }
	defer synced()
	for e := range r.watcher.Updates() { // closed once the watcher stops
		if e == nil {
			synced()
			continue
		}
		user, ok := r.a.reg.userOfKey(e.Key())
		if !ok {
			continue
		}
		if e.Operation() == jetstream.KeyValuePut {
			r.registered(user, string(e.Value()))
		} else {
			r.unregistered(user)
		}
	}
	r.mu.Lock()
	r.watchEnd = true
	r.mu.Unlock()
}

// registered starts a session for a new registration or moves an existing
// one to its new nick.
func (r *run) registered(user, nick string) {
	r.mu.Lock()
	s := r.sessions[user]
	r.mu.Unlock()
	if s != nil {
		s.setNick(nick)
		return
	}
	if _, err := r.ensure(user, nick); err != nil && !errors.Is(err, errStopping) {
		r.a.log.Warn("not connecting registered user", "user", user, "err", err)
	}
}

// unregistered disconnects a user.
func (r *run) unregistered(user string) {
	r.mu.Lock()
	s := r.sessions[user]
	delete(r.sessions, user)
	r.mu.Unlock()
	if s != nil {
		s.stop("Unregistered from the gateway")
	}
}

// ensure returns user's session, starting one with nick.
func (r *run) ensure(user, nick string) (*session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return nil, errStopping
	}
	if s := r.sessions[user]; s != nil {
		return s, nil
	}
	if max := r.a.cfg.MaxConnections; max > 0 && len(r.sessions) >= max {
		return nil, gateways.Reject(gateways.ResourceConstraint,
			"the gateway has all the IRC connections it may open (%d); try again later or ask an administrator", max)
	}
	s := newSession(r, user, nick)
	r.sessions[user] = s
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		s.loop()
	}()
	return s, nil
}

// current returns the running run, or an error for Send before Start.
func (a *Adapter) current() (*run, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run == nil {
		return nil, fmt.Errorf("irc: not started: %w", gateways.ErrNotConnected)
	}
	return a.run, nil
}

// sessionFor returns the session of a registered user, connecting them if
// they have none yet.
func (a *Adapter) sessionFor(ctx context.Context, user string) (*session, error) {
	r, err := a.current()
	if err != nil {
		return nil, err
	}
	user = strings.ToLower(user)
	r.mu.Lock()
	s := r.sessions[user]
	r.mu.Unlock()
	if s != nil {
		return s, nil
	}
	nick, err := a.reg.Lookup(ctx, user)
	if err != nil {
		return nil, err
	}
	if nick == "" {
		return nil, a.notRegistered()
	}
	return r.ensure(user, nick)
}

func (a *Adapter) notRegistered() error {
	return gateways.Reject(gateways.RegistrationRequired, "register with %s first to choose a nick", a.domain)
}

// existing returns user's session without starting one.
func (a *Adapter) existing(user string) *session {
	r, err := a.current()
	if err != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[strings.ToLower(user)]
}

// Stop quits every IRC connection and waits for them to close. It is safe
// to call without, or after a failed, Start.
func (a *Adapter) Stop(ctx context.Context) error {
	a.mu.Lock()
	r := a.run
	a.run = nil
	a.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.shutdown(ctx)
}

// shutdown stops following registrations, quits every session and waits
// for all of it; when ctx ends first, connections are dropped without
// waiting for the server.
func (r *run) shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.stopping = true
	sessions := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		sessions = append(sessions, s)
	}
	r.mu.Unlock()
	_ = r.watcher.Stop()
	for _, s := range sessions {
		s.stop("Gateway shutting down")
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	defer r.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	r.cancel()
	for _, s := range sessions {
		s.kill()
	}
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("irc: connections did not close")
	}
}

// IsRoom tells channels ("#go-nuts") from nicks, by the channel prefixes
// the server announced (RFC 2811's #&+! until it has).
func (a *Adapter) IsRoom(address string) bool {
	return isChannel(address, a.chanTypesOr())
}

func (a *Adapter) chanTypesOr() string {
	if p := a.chanTypes.Load(); p != nil {
		return *p
	}
	return defaultChanTypes
}

func (a *Adapter) nickLimit() int {
	if n := int(a.nickLen.Load()); n > 0 {
		return n
	}
	return MaxNickLength
}

// Send delivers one message: a PRIVMSG to a nick, or to a channel the user
// has joined (Groupchat); a Subject on a groupchat message sets the topic.
// IRC has no message ids: nothing to record.
func (a *Adapter) Send(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	return gateways.Sent{}, a.send(ctx, m)
}

func (a *Adapter) send(ctx context.Context, m gateways.Outbound) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("irc: not sent: %w", err) // the caller gave up: nothing goes out
	}
	s, err := a.sessionFor(ctx, gateways.BareJID(m.From))
	if err != nil {
		return err
	}
	chanTypes := a.chanTypesOr()
	if m.Groupchat || isChannel(m.To, chanTypes) {
		if !m.Groupchat {
			return gateways.Reject(gateways.NotAcceptable, "%s is a channel: join it as a room to talk there", m.To)
		}
		if why := checkChannel(m.To, chanTypes); why != "" {
			return gateways.Reject(gateways.JIDMalformed, "%s", why)
		}
		return s.sendChannel(ctx, m)
	}
	if why := checkTarget(m.To); why != "" {
		return gateways.Reject(gateways.JIDMalformed, "%s", why)
	}
	return s.sendPrivate(ctx, m)
}

// checkTarget is a lenient check of a nick to send to: the server, not
// the gateway, knows which nicks exist.
func checkTarget(nick string) string {
	if nick == "" || strings.ContainsAny(nick, " ,*?!@\r\n\x00\x01") || strings.IndexByte(":$", nick[0]) >= 0 {
		return fmt.Sprintf("%q is not an IRC nick", nick)
	}
	return ""
}

// Join enters a channel and returns once the server has sent its names
// list, after the occupants, the user (Self) and the topic were handed to
// the gateway. A refusal (banned, invite only…) is a permanent error.
func (a *Adapter) Join(ctx context.Context, j gateways.Join) error {
	if why := checkChannel(j.Room, a.chanTypesOr()); why != "" {
		return gateways.Reject(gateways.ItemNotFound, "%s", why)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("irc: not joined: %w", err)
	}
	s, err := a.sessionFor(ctx, gateways.BareJID(j.User))
	if err != nil {
		return err
	}
	return s.join(ctx, j)
}

// Leave parts a channel (once the last of the user's clients in it left)
// and confirms with the user's own unavailable occupant.
func (a *Adapter) Leave(ctx context.Context, l gateways.Leave) error {
	r, err := a.current()
	if err != nil {
		return err
	}
	if s := a.existing(gateways.BareJID(l.User)); s != nil {
		return s.leave(ctx, l)
	}
	// Not connected: nothing to part, but the client waits for its exit.
	return r.host.Occupant(ctx, gateways.Occupant{User: l.User, Room: l.Room, Nick: l.Nick, Self: true, Left: true, Status: l.Status})
}

// userKey and nickKey are the registry's KV keys, in the gateway's
// namespace; see Registrar.
func (r *Registrar) userKey(user string) string {
	return r.gw + ".user." + base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(user)))
}

func (r *Registrar) nickKey(nick string) string {
	return r.gw + ".nick." + base64.RawURLEncoding.EncodeToString([]byte(fold(nick)))
}

func (r *Registrar) userOfKey(key string) (string, bool) {
	enc, ok := strings.CutPrefix(key, r.gw+".user.")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(b), true
}
