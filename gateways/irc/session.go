package irc

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/backoff"
)

const (
	reconnectBase = time.Second
	reconnectMax  = time.Minute
	// maxNickTries bounds the alternative nicks (nick_, nick__…) tried
	// when the registered one is in use.
	maxNickTries = 4
	// maxIn bounds one received line with its tags (IRCv3 allows 8 KiB
	// of tags on top of the 512 bytes).
	maxIn = 16 << 10
)

// wantedCaps are the IRCv3 capabilities requested when offered:
// message-tags for msgid (deduplication), multi-prefix for every
// membership prefix in names lists.
var wantedCaps = []string{"message-tags", "multi-prefix"}

// session is one user's presence on IRC: their connection, reconnected as
// long as they are registered, and the channels they are in.
type session struct {
	r    *run
	a    *Adapter
	user string // bare JID
	log  *slog.Logger

	ctx       context.Context // ends when the session stops
	cancel    context.CancelFunc
	firstDone chan struct{} // closed when the first connection attempt ended
	wake      chan struct{} // the nick changed: retry now
	quitMsg   atomic.Pointer[string]

	// emitMu orders what this user's traffic hands to the gateway: the
	// reader's events, the replay of a room to a rejoining client, and
	// reflections of the user's own messages.
	emitMu sync.Mutex

	mu           sync.Mutex
	want         string        // the registered nick
	conn         *conn         // registered with the server; nil while down
	dialing      *conn         // being registered
	attempt      chan struct{} // closed when the attempt in progress ends; nil between attempts
	lastErr      error         // why the last attempt failed
	failure      error         // permanent until the nick changes (the server refuses it)
	lostNotified bool          // the user was told the connection is down
	rooms        map[string]*room
	recent       map[string]sentRef // by folded target: the last message sent there
	ctcp         *rate.Limiter      // answers to CTCP queries
}

// sentRef remembers an outbound message so that an error reply the server
// sends afterwards (no such nick, cannot send to channel) reaches its
// sender as a failed delivery.
type sentRef struct {
	id, key, from, to string
	at                time.Time
}

func newSession(r *run, user, nick string) *session {
	ctx, cancel := context.WithCancel(r.ctx)
	return &session{
		r: r, a: r.a, user: user,
		log:       r.a.log.With("user", user),
		ctx:       ctx,
		cancel:    cancel,
		firstDone: make(chan struct{}),
		attempt:   make(chan struct{}),
		wake:      make(chan struct{}, 1),
		want:      nick,
		rooms:     map[string]*room{},
		recent:    map[string]sentRef{},
		ctcp:      rate.NewLimiter(rate.Every(time.Second), ctcpBurst),
	}
}

// stop quits with reason and ends the session; the loop exits.
func (s *session) stop(reason string) {
	s.quitMsg.Store(&reason)
	s.cancel()
}

// kill drops the connection without waiting for the server.
func (s *session) kill() {
	s.cancel()
	s.mu.Lock()
	cs := []*conn{s.conn, s.dialing}
	s.mu.Unlock()
	for _, c := range cs {
		if c != nil {
			c.close()
		}
	}
}

func (s *session) quitReason() string {
	if p := s.quitMsg.Load(); p != nil {
		return *p
	}
	return "Gateway shutting down"
}

// setNick follows a new registration: the connection changes nick, or a
// connection that failed on the old nick retries.
func (s *session) setNick(nick string) {
	s.mu.Lock()
	if s.want == nick {
		s.mu.Unlock()
		return
	}
	s.want = nick
	s.failure = nil
	c := s.conn
	if c == nil && s.attempt == nil {
		// The loop connects at once (wake): Send waits for that attempt.
		s.attempt = make(chan struct{})
	}
	s.mu.Unlock()
	if c != nil {
		c.enqueue(line("NICK", nick))
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ready returns the registered connection. It waits for a connection
// attempt in progress unless the user had a connection and lost it: while
// reconnecting it fails at once with ErrNotConnected, so the runner
// retries with its backoff.
func (s *session) ready(ctx context.Context) (*conn, error) {
	for {
		s.mu.Lock()
		c, failure, lastErr, attempt, lost := s.conn, s.failure, s.lastErr, s.attempt, s.lostNotified
		s.mu.Unlock()
		switch {
		case c != nil:
			return c, nil
		case failure != nil:
			return nil, failure
		case attempt == nil || lost:
			if lastErr != nil {
				return nil, fmt.Errorf("irc: not connected to the IRC server (%v): %w", lastErr, gateways.ErrNotConnected)
			}
			return nil, fmt.Errorf("irc: not connected to the IRC server: %w", gateways.ErrNotConnected)
		}
		select {
		case <-attempt:
		case <-ctx.Done():
			return nil, fmt.Errorf("irc: still connecting to the IRC server: %w", errors.Join(gateways.ErrNotConnected, ctx.Err()))
		case <-s.ctx.Done():
			return nil, fmt.Errorf("irc: disconnected: %w", gateways.ErrNotConnected)
		}
	}
}

// endAttempt marks the connection attempt in progress as over; s.mu is
// held.
func (s *session) endAttempt() {
	if s.attempt != nil {
		close(s.attempt)
		s.attempt = nil
	}
}

// loop connects, serves and reconnects until the session stops.
func (s *session) loop() {
	first := true
	endFirst := func() {
		if first {
			first = false
			close(s.firstDone)
		}
	}
	defer endFirst()
	defer s.cancel()
	failures := 0
	for s.ctx.Err() == nil {
		s.mu.Lock()
		if s.attempt == nil {
			s.attempt = make(chan struct{})
		}
		s.mu.Unlock()
		c, err := s.connect()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var refused *nickRefused
			if errors.As(err, &refused) {
				s.refused(refused)
				endFirst()
				select { // until the user registers another nick
				case <-s.wake:
				case <-s.ctx.Done():
				}
				continue
			}
			failures++
			s.mu.Lock()
			s.lastErr = err
			s.endAttempt()
			s.mu.Unlock()
			endFirst()
			if failures == 1 {
				s.log.Warn("cannot connect to IRC; retrying", "err", err)
			} else {
				s.log.Debug("cannot connect to IRC; retrying", "err", err, "attempt", failures)
			}
			s.pause(backoff.Delay(reconnectBase, reconnectMax, failures))
			continue
		}
		failures = 0
		s.up(c)
		endFirst()
		err = s.serve(c)
		c.wait()
		s.down()
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("lost the IRC connection; reconnecting", "err", err)
		s.pause(backoff.Jitter(reconnectBase))
	}
}

// pause waits d, or less if the session stops or the nick changes.
func (s *session) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.wake:
	case <-s.ctx.Done():
	}
}

// nickRefused: the server will not accept the nick at all (erroneous
// nickname); retrying cannot help until the user picks another.
type nickRefused struct {
	nick, reason string
}

func (e *nickRefused) Error() string {
	return fmt.Sprintf("irc: the server refuses the nick %q: %s", e.nick, e.reason)
}

// refused records a refused nick and tells the user.
func (s *session) refused(e *nickRefused) {
	text := fmt.Sprintf("The IRC server refuses the nick %s (%s). Register again with %s to choose another.", e.nick, e.reason, s.a.domain)
	s.mu.Lock()
	s.failure = gateways.Reject(gateways.NotAcceptable, "%s", text)
	s.endAttempt()
	s.mu.Unlock()
	s.log.Warn("the IRC server refuses the nick", "nick", e.nick, "reason", e.reason)
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	s.emit([]effect{{in: ptr(gateways.Notice(s.user, text))}})
}

// connect dials and registers: CAP negotiation, PASS, NICK (with _
// appended while it is in use), USER, until the welcome.
func (s *session) connect() (*conn, error) {
	select {
	case s.r.dials <- struct{}{}:
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
	defer func() { <-s.r.dials }()
	cfg := s.a.cfg
	ctx, cancel := context.WithTimeout(s.ctx, cfg.ConnectTimeout)
	defer cancel()
	nc, err := dial(ctx, cfg.Server, s.a.tls)
	if err != nil {
		return nil, err
	}
	c := newConn(nc, cfg.FloodBurst, cfg.FloodInterval)
	s.mu.Lock()
	s.dialing = c
	want := s.want
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, c.close) // ends the reads below
	ok := false
	defer func() {
		stop()
		s.mu.Lock()
		s.dialing = nil
		s.mu.Unlock()
		if !ok {
			c.wait()
		}
	}()

	nick := want
	reg := []string{"CAP LS 302"}
	if cfg.Password != "" {
		reg = append(reg, line("PASS", cfg.Password))
	}
	reg = append(reg, line("NICK", nick), line("USER", username(nick), "0", "*", safeParam(cfg.Realname)))
	c.enqueue(reg...)
	var offered []string
	tries := 0
	fail := func(err error) (*conn, error) {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("irc: registering as %s: %w", nick, ctx.Err())
		}
		return nil, err
	}
	for {
		m, err := c.nextRegistrationReply()
		if err != nil {
			return fail(fmt.Errorf("irc: registering as %s: %w", nick, err))
		}
		switch m.command {
		case "CAP":
			switch strings.ToUpper(m.param(1)) {
			case "LS":
				offered = append(offered, strings.Fields(m.trailing())...)
				if m.param(2) == "*" && len(m.params) > 3 {
					continue // more to come
				}
				if req := pickCaps(offered); len(req) > 0 {
					c.enqueue(line("CAP", "REQ", strings.Join(req, " ")))
				} else {
					c.enqueue("CAP END")
				}
			case "ACK", "NAK":
				c.enqueue("CAP END")
			}
		case "001":
			c.nick = m.param(0)
			c.learnUserHost(m.trailing())
			c.registered.Store(true)
			ok = true
			return c, nil
		case "433", "436", "437": // in use, collision, temporarily unavailable
			tries++
			if tries > maxNickTries {
				return fail(fmt.Errorf("irc: the nick %s and %d alternatives are in use", want, maxNickTries))
			}
			nick = altNick(want, tries, s.a.nickLimit())
			c.enqueue(line("NICK", nick))
		case "432":
			return fail(&nickRefused{nick: nick, reason: m.trailing()})
		default:
			if err := registrationRefused(m); err != nil {
				return fail(err)
			}
		}
	}
}

// nextRegistrationReply reads the next line the server sends while a
// connection registers, answering PINGs and skipping what does not parse.
func (c *conn) nextRegistrationReply() (message, error) {
	for {
		raw, err := c.readLine()
		if err != nil {
			return message{}, err
		}
		m, err := parseMessage(raw)
		if err != nil {
			continue
		}
		if m.command == "PING" {
			c.sendPriority(line("PONG", m.trailing()))
			continue
		}
		return m, nil
	}
}

// registrationRefused says why the server ended a registration (a wrong
// password, a ban, an ERROR), nil for any other line.
func registrationRefused(m message) error {
	switch m.command {
	case "464":
		return errors.New("irc: the server refused the password (464); check password")
	case "465":
		return fmt.Errorf("irc: banned from the server: %s", m.trailing())
	case "ERROR":
		return fmt.Errorf("irc: the server closed the connection: %s", m.trailing())
	}
	return nil
}

// dial opens the TCP connection to server, with TLS unless tc is nil.
func dial(ctx context.Context, server string, tc *tls.Config) (net.Conn, error) {
	d := net.Dialer{KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, fmt.Errorf("irc: %w", err)
	}
	if tc == nil {
		return nc, nil
	}
	c := tls.Client(nc, tc)
	if err := c.HandshakeContext(ctx); err != nil {
		nc.Close()
		var unknown x509.UnknownAuthorityError
		if errors.As(err, &unknown) {
			// Name the setting that decides, for whoever reads the log.
			by := "a CA the system trusts (tls_ca_file names a private one)"
			if tc.RootCAs != nil {
				by = "a CA of tls_ca_file"
			}
			return nil, fmt.Errorf("irc: TLS: the server's certificate is not signed by %s: %w", by, err)
		}
		return nil, fmt.Errorf("irc: TLS: %w", err)
	}
	return c, nil
}

// readLine reads one line, without its line end. A line cut short by a
// read deadline is kept for the next call.
func (c *conn) readLine() (string, error) {
	for {
		chunk, err := c.br.ReadSlice('\n')
		c.partial = append(c.partial, chunk...)
		if len(c.partial) > maxIn {
			return "", errors.New("irc: line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		l := strings.TrimRight(string(c.partial), "\r\n")
		c.partial = c.partial[:0]
		return l, nil
	}
}

// pickCaps are the wanted capabilities among those offered ("name" or
// "name=value").
func pickCaps(offered []string) []string {
	var out []string
	for _, o := range offered {
		name, _, _ := strings.Cut(o, "=")
		for _, w := range wantedCaps {
			if name == w {
				out = append(out, w)
			}
		}
	}
	return out
}

// altNick is the n-th alternative to a nick in use: nick_, nick__…,
// shortened to fit the server's limit.
func altNick(nick string, n, limit int) string {
	suffix := strings.Repeat("_", n)
	if len(nick)+n > limit && limit > n {
		nick = nick[:limit-n]
	}
	return nick + suffix
}

// username derives the USER name (ident) from the nick: letters and digits,
// at most ten.
func username(nick string) string {
	var b strings.Builder
	for i := 0; i < len(nick) && b.Len() < 10; i++ {
		c := nick[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "xmpp"
	}
	return b.String()
}

// learnUserHost takes "user@host" from the welcome's "… nick!user@host",
// which tells how long the server's prefix on our lines is.
func (c *conn) learnUserHost(welcome string) {
	f := strings.Fields(welcome)
	if len(f) == 0 {
		return
	}
	if n, uh, ok := strings.Cut(f[len(f)-1], "!"); ok && fold(n) == fold(c.nick) && strings.Contains(uh, "@") {
		c.userHost = len(uh)
	}
}

// serve reads until the connection ends, handing every message to handle.
// A quiet server is PINGed; one that stays quiet is given up on.
func (s *session) serve(c *conn) error {
	stop := context.AfterFunc(s.ctx, func() { c.quit(s.quitReason()) })
	defer stop()
	cfg := s.a.cfg
	pinged := false
	for {
		d := cfg.PingInterval
		if pinged {
			d = cfg.PingTimeout
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
		if c.quitting.Load() { // quit set its own, shorter deadline: keep it
			_ = c.nc.SetReadDeadline(time.Now().Add(quitWait))
		}
		raw, err := c.readLine()
		if err != nil {
			switch {
			case c.quitting.Load():
				return fmt.Errorf("irc: quit: %s", s.quitReason())
			case isTimeout(err) && !pinged:
				pinged = true
				c.sendPriority("PING :xmppgw")
				continue
			case isTimeout(err):
				return fmt.Errorf("irc: no answer from the server within %s of a PING", cfg.PingTimeout)
			}
			if werr := c.writeErr(); werr != nil {
				return fmt.Errorf("irc: write: %w", werr)
			}
			return err
		}
		pinged = false
		m, err := parseMessage(raw)
		if err != nil {
			continue
		}
		s.handle(c, m)
	}
}

// up makes a registered connection the session's: the user hears about a
// recovered connection or a substitute nick, and channels are rejoined.
func (s *session) up(c *conn) {
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	s.mu.Lock()
	s.conn = c
	s.lastErr = nil
	s.endAttempt()
	recovered := s.lostNotified
	s.lostNotified = false
	want := s.want
	var joins []string
	for _, r := range sortedRooms(s.rooms) {
		joins = append(joins, line("JOIN", r.name))
	}
	s.mu.Unlock()
	if len(joins) > 0 {
		c.enqueue(joins...)
	}
	var effs []effect
	if recovered {
		effs = append(effs, effect{in: ptr(gateways.Notice(s.user, fmt.Sprintf("Reconnected to the IRC server as %s.", c.nick)))})
	}
	if fold(c.nick) != fold(want) {
		effs = append(effs, effect{in: ptr(gateways.Notice(s.user,
			fmt.Sprintf("The nick %s is in use on IRC; you are %s until you reconnect.", want, c.nick)))})
	}
	s.emit(effs)
}

// down forgets a lost connection: joined rooms wait for their rejoin, and
// the user is told (once per outage).
func (s *session) down() {
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	s.mu.Lock()
	s.conn = nil
	for _, r := range s.rooms {
		r.disconnected()
	}
	tell := s.ctx.Err() == nil && !s.lostNotified
	if tell {
		s.lostNotified = true
	}
	s.mu.Unlock()
	if tell {
		s.emit([]effect{{in: ptr(gateways.Notice(s.user, "Lost the connection to the IRC server; reconnecting…"))}})
	}
}

func (c *conn) writeErr() error {
	c.writerErrMu.Lock()
	defer c.writerErrMu.Unlock()
	return c.writerErr
}

func ptr[T any](v T) *T { return &v }
