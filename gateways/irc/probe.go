package irc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The longest nick a server allows (ISUPPORT NICKLEN) bounds registration:
// a nick the server would refuse is refused when the user chooses it, with
// the limit named, not at connect. It is known from any connection that
// saw the server's 005, kept in the registrations bucket for processes
// that have no connection (a component-only process, a restart), and
// when nothing has seen it yet, asked for by a short probe connection.

// probeWait bounds a registration waiting for the probe. The component
// handles a domain's stanzas one at a time, so this is a stall of the whole
// domain; it happens only before anything learned the limit (Start asks the
// server at once when the bucket does not know it). The form is shown with
// MaxNickLength if the server cannot be asked in time (a nick it refuses is
// then reported at connect, as before).
const probeWait = 3 * time.Second

func (r *Registrar) nickLenKey() string { return r.gw + ".server.nicklen" }

// serverNickLimit returns the server's NICKLEN, asking the bucket and then
// the server itself when this process has not seen it. It falls back to
// MaxNickLength when neither can tell.
func (r *Registrar) serverNickLimit(ctx context.Context) int {
	if r.knownNickLimit(ctx) {
		return r.a.nickLimit()
	}
	ctx, cancel := context.WithTimeout(ctx, min(probeWait, r.a.cfg.ConnectTimeout))
	defer cancel()
	ch := r.a.probeOnce(context.Background())
	select {
	case <-ch:
	case <-ctx.Done():
	}
	return r.a.nickLimit()
}

// knownNickLimit reports whether this process knows the server's NICKLEN,
// reading the bucket if it must.
func (r *Registrar) knownNickLimit(ctx context.Context) bool {
	if r.a.nickLen.Load() > 0 {
		return true
	}
	v, _, err := r.get(ctx, r.nickLenKey())
	if err != nil || v == "" {
		return false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return false
	}
	r.a.nickLen.CompareAndSwap(0, int32(min(n, MaxNickLength)))
	return true
}

// probeOnce starts one probe unless one is running; the channel closes
// when it ends. The probe ends with parent, or after connect_timeout.
func (a *Adapter) probeOnce(parent context.Context) <-chan struct{} {
	a.probeMu.Lock()
	defer a.probeMu.Unlock()
	if a.probing != nil {
		return a.probing
	}
	done := make(chan struct{})
	a.probing = done
	go func() {
		defer func() {
			a.probeMu.Lock()
			a.probing = nil
			a.probeMu.Unlock()
			close(done)
		}()
		ctx, cancel := context.WithTimeout(parent, a.cfg.ConnectTimeout)
		defer cancel()
		is, err := a.probe(ctx)
		if err != nil && parent.Err() != nil {
			return // stopped
		}
		if err != nil {
			a.log.Warn("irc: could not ask the server how long nicks may be; registration allows up to the default",
				"max", MaxNickLength, "err", err)
			return
		}
		a.learn(is)
	}()
	return done
}

// probe connects, registers under a throwaway nick, reads the server's
// ISUPPORT until the end of the MOTD, and quits.
func (a *Adapter) probe(ctx context.Context) (isupport, error) {
	cfg := a.cfg
	nc, err := dial(ctx, cfg.Server, a.tls)
	if err != nil {
		return isupport{}, err
	}
	c := newConn(nc, cfg.FloodBurst, cfg.FloodInterval)
	stop := context.AfterFunc(ctx, c.close)
	defer func() {
		stop()
		c.quit("xmppgw: asked for the server's limits")
		c.wait()
	}()
	nick := probeNick()
	var reg []string
	if cfg.Password != "" {
		reg = append(reg, line("PASS", cfg.Password))
	}
	reg = append(reg, line("NICK", nick), line("USER", "xmppgw", "0", "*", safeParam(cfg.Realname)))
	c.enqueue(reg...)
	is := isupport{}
	for tries := 0; ; {
		m, err := c.nextRegistrationReply()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return isupport{}, fmt.Errorf("irc: probe: %w", err)
		}
		switch m.command {
		case "001":
			c.registered.Store(true)
		case "005":
			if len(m.params) > 2 {
				is.parse(m.params[1 : len(m.params)-1])
			}
		case "376", "422": // end of MOTD, no MOTD: ISUPPORT came before
			if is.nickLen == 0 {
				return isupport{}, errors.New("irc: probe: the server announced no NICKLEN")
			}
			return is, nil
		case "433", "436", "437":
			if tries++; tries > maxNickTries {
				return isupport{}, errors.New("irc: probe: no free nick")
			}
			nick = probeNick()
			c.enqueue(line("NICK", nick))
		default:
			if err := registrationRefused(m); err != nil {
				return isupport{}, err
			}
		}
	}
}

// probeNick is a throwaway nick of 9 characters, RFC 2812's limit that
// every server allows.
func probeNick() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return "xgw" + string(b)
}

// keepNickLen writes the server's NICKLEN to the bucket, for processes
// that have not seen it; only when it changed.
func (r *Registrar) keepNickLen(ctx context.Context, n int) {
	if v, _, err := r.get(ctx, r.nickLenKey()); err == nil && v == strconv.Itoa(n) {
		return
	}
	if _, err := r.kv.Put(ctx, r.nickLenKey(), []byte(strconv.Itoa(n))); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		r.a.log.Warn("irc: could not keep the server's NICKLEN", "err", err)
	}
}
