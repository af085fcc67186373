package irc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/xmppgw/xmppgw/gateways"
)

const (
	writeTimeout = 30 * time.Second
	// errorPenalty: ngircd suspends a client for two seconds for every
	// error reply it sends; the writer pauses as long, so lines do not
	// pile up unread on the server (which disconnects past 2 KiB).
	errorPenalty = 2 * time.Second
	// quitWait bounds how long a quitting connection waits for the server
	// to close it, which is when others have seen the QUIT.
	quitWait = 2 * time.Second
)

// errConnClosed: the connection ended before a line could be written.
var errConnClosed = fmt.Errorf("irc: connection closed: %w", gateways.ErrNotConnected)

// conn is one TCP (or TLS) connection of one user to the IRC server. Its
// writer goroutine paces every line through a token bucket; the session's
// goroutine reads.
type conn struct {
	nc      net.Conn
	br      *bufio.Reader // read by the session's goroutine only
	partial []byte        // a line cut short by a read deadline
	limiter *rate.Limiter

	out  chan *batch // lines in order, paced
	prio chan string // PONG and PING: ahead of the queue, not paced

	wmu sync.Mutex // one writer on nc at a time

	ctx         context.Context // ends when the connection is closed, or quits
	cancel      context.CancelFunc
	closed      <-chan struct{} // ctx.Done(): no more writing
	closeOnce   sync.Once
	writerDone  chan struct{}
	pauseUntil  atomic.Int64 // unix nanoseconds; see errorPenalty
	quitting    atomic.Bool
	registered  atomic.Bool
	writerErr   error // why the writer stopped; read after writerDone
	writerErrMu sync.Mutex

	// Owned by the session's goroutine, and read by others under the
	// session's mu.
	nick     string // our nick as the server knows it
	userHost int    // len("user@host") the server puts on our lines
	isup     isupport
}

func newConn(nc net.Conn, burst int, interval time.Duration) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		nc:         nc,
		br:         bufio.NewReaderSize(nc, 4096),
		limiter:    rate.NewLimiter(rate.Every(interval), burst),
		out:        make(chan *batch, 256),
		prio:       make(chan string, 8),
		ctx:        ctx,
		cancel:     cancel,
		closed:     ctx.Done(),
		writerDone: make(chan struct{}),
		userHost:   defaultUserHost,
		isup:       defaultISupport(),
	}
	go c.writeLoop()
	return c
}

// batch is lines written together, in order, such as the pieces of one
// long message. Once its first line is out the rest follows: a message is
// not cut short because the sender stopped waiting.
type batch struct {
	lines []string
	state atomic.Int32 // batchQueued, batchStarted, batchCancelled
	done  chan error   // receives the outcome once
}

const (
	batchQueued int32 = iota
	batchStarted
	batchCancelled
)

// enqueue queues lines without waiting for them to be written. It never
// blocks (the reader calls it): when the queue is full, the server being
// far behind, or the connection closed, the lines are dropped.
func (c *conn) enqueue(lines ...string) {
	b := &batch{lines: lines, done: make(chan error, 1)}
	select {
	case <-c.closed:
	case c.out <- b:
	default:
	}
}

// send writes lines, paced, and returns once they are on the wire. If ctx
// ends before the first line went out, nothing is sent.
func (c *conn) send(ctx context.Context, lines ...string) error {
	if len(lines) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("irc: not sent: %w", err)
	}
	b := &batch{lines: lines, done: make(chan error, 1)}
	select {
	case c.out <- b:
	case <-c.closed:
		return errConnClosed
	case <-ctx.Done():
		return fmt.Errorf("irc: send queue full: %w", ctx.Err())
	}
	select {
	case err := <-b.done:
		return err
	case <-ctx.Done():
		if b.state.CompareAndSwap(batchQueued, batchCancelled) {
			return fmt.Errorf("irc: still waiting for flood control: %w", ctx.Err())
		}
		return <-b.done // started: it finishes, or fails with the connection
	case <-c.writerDone:
		// Queued as the writer stopped: never taken.
		if b.state.CompareAndSwap(batchQueued, batchCancelled) {
			return errConnClosed
		}
		return <-b.done
	}
}

// sendPriority writes a line ahead of the queue, without pacing. It never
// blocks: if even the priority queue is full the line is dropped.
func (c *conn) sendPriority(l string) {
	select {
	case c.prio <- l:
	default:
	}
}

// penalize holds the queue back for d from now.
func (c *conn) penalize(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := c.pauseUntil.Load()
		if cur >= until || c.pauseUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	fail := func(err error) {
		c.writerErrMu.Lock()
		c.writerErr = err
		c.writerErrMu.Unlock()
		c.close()
	}
	for {
		select {
		case <-c.closed:
			c.drain()
			return
		case l := <-c.prio:
			if err := c.write(l); err != nil {
				fail(err)
			}
		case b := <-c.out:
			if !b.state.CompareAndSwap(batchQueued, batchStarted) {
				continue // its sender gave up
			}
			var err error
			for _, l := range b.lines {
				if err = c.pace(c.ctx); err != nil {
					err = errConnClosed
					break
				}
				// PONGs due while we waited go first.
				c.flushPriority()
				if err = c.write(l); err != nil {
					fail(err)
					err = fmt.Errorf("irc: write: %v: %w", err, gateways.ErrNotConnected)
					break
				}
			}
			b.done <- err
		}
	}
}

// pace waits for the token bucket and any penalty.
func (c *conn) pace(ctx context.Context) error {
	if until := c.pauseUntil.Load(); until > 0 {
		if d := time.Until(time.Unix(0, until)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
	return c.limiter.Wait(ctx)
}

func (c *conn) flushPriority() {
	for {
		select {
		case l := <-c.prio:
			if err := c.write(l); err != nil {
				return
			}
		default:
			return
		}
	}
}

// drain fails every queued batch once the connection is closed.
func (c *conn) drain() {
	for {
		select {
		case b := <-c.out:
			if b.state.CompareAndSwap(batchQueued, batchStarted) {
				b.done <- errConnClosed
			}
		default:
			return
		}
	}
}

// write puts one line on the wire.
func (c *conn) write(l string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write([]byte(l + "\r\n"))
	return err
}

// quit sends QUIT at once, ahead of anything queued, stops writing, and
// gives the server quitWait to close the connection, so that others see
// the reason rather than a dropped link. The reader ends then; close
// follows.
func (c *conn) quit(reason string) {
	if !c.quitting.CompareAndSwap(false, true) {
		return
	}
	c.cancel() // the writer stops; what it was writing fails
	if c.registered.Load() {
		c.wmu.Lock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, err := c.nc.Write([]byte(line("QUIT", safeParam(reason)) + "\r\n"))
		c.wmu.Unlock()
		if err == nil {
			_ = c.nc.SetReadDeadline(time.Now().Add(quitWait))
			return
		}
	}
	c.close()
}

// close ends the connection; the writer goroutine exits.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		_ = c.nc.Close()
	})
}

// wait closes the connection and waits for its writer.
func (c *conn) wait() {
	c.close()
	<-c.writerDone
}

// isupport is what a server announces about itself (RPL_ISUPPORT, 005).
type isupport struct {
	chanTypes   string    // channel prefixes, e.g. "#&"
	prefixModes string    // membership modes, e.g. "ov"
	prefixChars string    // their nick prefixes, e.g. "@+"
	chanModes   [4]string // list modes, modes with a parameter, with one when set, without
	nickLen     int       // 0 when not announced
}

func defaultISupport() isupport {
	return isupport{
		chanTypes:   defaultChanTypes,
		prefixModes: "ov",
		prefixChars: "@+",
		chanModes:   [4]string{"beI", "k", "l", "imnpst"},
	}
}

// parse reads the KEY=VALUE tokens of one 005 reply (between the nick and
// the trailing "are supported by this server").
func (s *isupport) parse(tokens []string) {
	for _, t := range tokens {
		k, v, _ := strings.Cut(t, "=")
		switch k {
		case "CHANTYPES":
			if v != "" {
				s.chanTypes = v
			}
		case "PREFIX":
			// (modes)chars, e.g. (qaohv)~&@%+
			if modes, chars, ok := strings.Cut(strings.TrimPrefix(v, "("), ")"); ok && len(modes) == len(chars) {
				s.prefixModes, s.prefixChars = modes, chars
			}
		case "CHANMODES":
			parts := strings.Split(v, ",")
			for i := 0; i < len(parts) && i < 4; i++ {
				s.chanModes[i] = parts[i]
			}
		case "NICKLEN", "MAXNICKLEN":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				s.nickLen = n
			}
		}
	}
}

// splitPrefix separates a names-list entry ("@+bob") into its membership
// prefixes and the nick.
func (s *isupport) splitPrefix(entry string) (prefixes, nick string) {
	i := 0
	for i < len(entry) && strings.IndexByte(s.prefixChars, entry[i]) >= 0 {
		i++
	}
	return entry[:i], entry[i:]
}

// modeTakesParam reports whether channel mode m consumes a parameter when
// set (adding) or unset.
func (s *isupport) modeTakesParam(m byte, adding bool) bool {
	switch {
	case strings.IndexByte(s.prefixModes, m) >= 0,
		strings.IndexByte(s.chanModes[0], m) >= 0,
		strings.IndexByte(s.chanModes[1], m) >= 0:
		return true
	case strings.IndexByte(s.chanModes[2], m) >= 0:
		return adding
	}
	return false
}

// isTimeout reports a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
