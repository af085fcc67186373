package xmpptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"
)

const (
	loginTimeout = 10 * time.Second
	closeTimeout = 5 * time.Second
)

// Client is a logged-in go-xmpp client. A goroutine reads everything the
// server sends; Wait* methods pick from what was received.
type Client struct {
	xc  *xmpp.Client
	jid string

	tap     *rawTap
	recvEnd chan struct{} // closed when the Recv loop has returned
	tapEnd  chan struct{} // closed when the raw stream parser has returned

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever something arrives
	chats   []xmpp.Chat   // not yet consumed by WaitChat
	stanzas []Stanza      // not yet consumed by WaitStanza
	log     []string      // everything received, for failure messages
	recvErr error         // why the Recv loop ended
	tapErr  error         // why the raw parser ended

	closeOnce sync.Once
}

// Login logs user@s.Domain() in on s's c2s port without TLS, sends initial
// presence and returns the client; it is closed on cleanup. It fails the test
// if the login does not complete within 10 s.
func Login(t testing.TB, s *Server, user, password string) *Client {
	t.Helper()
	c := &Client{
		tap:     newRawTap(),
		recvEnd: make(chan struct{}),
		tapEnd:  make(chan struct{}),
		changed: make(chan struct{}),
	}
	go func() {
		defer close(c.tapEnd)
		err := parseStream(c.tap.pr, c.addStanza)
		c.mu.Lock()
		c.tapErr = err
		c.mu.Unlock()
		_, _ = io.Copy(io.Discard, c.tap.pr) // never block the reader
	}()

	opts := xmpp.Options{
		Host:                         s.C2SAddr(), // never empty: that would mean a DNS SRV lookup
		User:                         user + "@" + s.Domain(),
		Password:                     password,
		Resource:                     "test-" + randomID()[:6],
		DialTimeout:                  5 * time.Second,
		NoTLS:                        true,
		InsecureAllowUnencryptedAuth: true,
		// go-xmpp's Chat has no stanza id and no error details; its debug
		// tee is the only way to see the raw stream (see rawTap).
		Debug:       true,
		DebugWriter: c.tap,
	}
	xc, err := NewClient(opts, loginTimeout)
	if err != nil {
		c.tap.Close()
		t.Fatalf("xmpptest: login %s to %s (%s): %v\n%s", opts.User, s.Name(), s.C2SAddr(), err, s.Log())
	}
	c.xc = xc
	c.jid = xc.JID()
	go c.recvLoop()
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Logf("xmpptest: close %s: %v", c.jid, err)
		}
	})
	// go-xmpp sent the initial presence without waiting. The server handles
	// a session's stanzas in order, so once a ping is answered the presence
	// took effect: a message to the bare JID sent next is delivered, not
	// bounced as to an offline user.
	id := "xmpptest-sync-" + randomID()
	c.SendRaw(t, fmt.Sprintf(`<iq type="get" id="%s" to="%s"><ping xmlns="urn:xmpp:ping"/></iq>`, id, escape(s.Domain())))
	c.WaitStanza(t, loginTimeout, func(st Stanza) bool { return st.Kind == "iq" && st.ID == id })
	return c
}

// NewClient logs in with go-xmpp's opts.NewClient, bounded by timeout:
// NewClient itself cannot be interrupted, so a login that hangs is left to
// fail on its own and reported as timed out.
func NewClient(opts xmpp.Options, timeout time.Duration) (*xmpp.Client, error) {
	type result struct {
		xc  *xmpp.Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		xc, err := opts.NewClient()
		res <- result{xc, err}
	}()
	select {
	case r := <-res:
		return r.xc, r.err
	case <-time.After(timeout):
		return nil, fmt.Errorf("timed out after %v", timeout)
	}
}

// JID returns the client's full JID (user@domain/resource).
func (c *Client) JID() string { return c.jid }

// BareJID returns user@domain.
func (c *Client) BareJID() string {
	bare, _, _ := strings.Cut(c.jid, "/")
	return bare
}

// SendChat sends a type="chat" message with a fresh id and returns the id.
func (c *Client) SendChat(t testing.TB, to, body string) string {
	t.Helper()
	id := randomID()
	c.SendRaw(t, fmt.Sprintf(`<message to="%s" type="chat" id="%s"><body>%s</body></message>`, escape(to), id, escape(body)))
	return id
}

// SendRaw sends xml (one or more stanzas) as is.
func (c *Client) SendRaw(t testing.TB, xml string) {
	t.Helper()
	select {
	case <-c.recvEnd:
		t.Fatalf("xmpptest: %s: send on a closed stream (%v)", c.jid, c.err())
	default:
	}
	if _, err := c.xc.SendOrg(xml); err != nil {
		t.Fatalf("xmpptest: %s: send: %v", c.jid, err)
	}
}

// Send sends xml (one or more stanzas) as is and returns the write's error
// instead of failing the test: for goroutines other than the test's, which
// must not call t.Fatal, and for tests that expect the stream to break.
func (c *Client) Send(xml string) error {
	select {
	case <-c.recvEnd:
		return fmt.Errorf("xmpptest: %s: send on a closed stream (%v)", c.jid, c.err())
	default:
	}
	if _, err := c.xc.SendOrg(xml); err != nil {
		return fmt.Errorf("xmpptest: %s: send: %w", c.jid, err)
	}
	return nil
}

// Done is closed when the stream has ended: the server closed it, the
// connection broke, or Close was called.
func (c *Client) Done() <-chan struct{} { return c.recvEnd }

// WaitChat waits for a message matching pred, as go-xmpp reports it
// (messages of every type, including "error"; not roster results), and
// consumes it. It fails the test with everything received if none arrives
// within timeout.
func (c *Client) WaitChat(t testing.TB, timeout time.Duration, pred func(xmpp.Chat) bool) xmpp.Chat {
	t.Helper()
	var got xmpp.Chat
	c.wait(t, timeout, "chat", func() bool {
		for i, ch := range c.chats {
			if pred(ch) {
				got = ch
				c.chats = append(c.chats[:i], c.chats[i+1:]...)
				return true
			}
		}
		return false
	})
	return got
}

// WaitStanza waits for a stanza (message, presence or iq) matching pred and
// consumes it. It fails the test with everything received if none arrives
// within timeout.
func (c *Client) WaitStanza(t testing.TB, timeout time.Duration, pred func(Stanza) bool) Stanza {
	t.Helper()
	var got Stanza
	c.wait(t, timeout, "stanza", func() bool {
		for i, s := range c.stanzas {
			if pred(s) {
				got = s
				c.stanzas = append(c.stanzas[:i], c.stanzas[i+1:]...)
				return true
			}
		}
		return false
	})
	return got
}

// Stanzas returns the raw XML of every stanza received so far, consumed or
// not (what Wait* failure messages show).
func (c *Client) Stanzas() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

// wait calls take (under c.mu) until it reports success or timeout passes.
func (c *Client) wait(t testing.TB, timeout time.Duration, what string, take func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := take()
		changed := c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			c.mu.Lock()
			received := strings.Join(c.log, "\n  ")
			c.mu.Unlock()
			if received == "" {
				received = "(nothing)"
			}
			t.Fatalf("xmpptest: %s: no matching %s within %v (stream: %v)\nreceived:\n  %s", c.jid, what, timeout, c.err(), received)
		}
	}
}

// Close ends the stream and waits (bounded) for the server to close it.
// It is called on cleanup; calling it again is a no-op.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		select {
		case <-c.recvEnd:
		default:
			// Not xc.Close: it writes fields the Recv goroutine reads (a
			// data race). Ending the stream makes the server close it,
			// which ends Recv.
			_, _ = c.xc.SendOrg("</stream:stream>")
			select {
			case <-c.recvEnd:
			case <-time.After(closeTimeout):
				err = fmt.Errorf("server did not close the stream within %v", closeTimeout)
				return // leave the goroutines: closing now would race
			}
		}
		// Recv has returned, so Close no longer races; it closes the socket.
		_ = c.xc.Close()
		c.tap.Close()
		<-c.tapEnd
	})
	return err
}

func (c *Client) recvLoop() {
	defer close(c.recvEnd)
	for {
		v, err := c.xc.Recv()
		if err != nil {
			c.mu.Lock()
			c.recvErr = err
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
		if ch, ok := v.(xmpp.Chat); ok && ch.Type != "roster" {
			c.mu.Lock()
			c.chats = append(c.chats, ch)
			c.notifyLocked()
			c.mu.Unlock()
		}
	}
}

func (c *Client) addStanza(s Stanza) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stanzas = append(c.stanzas, s)
	c.log = append(c.log, s.Raw)
	c.notifyLocked()
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Client) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.recvErr != nil:
		return c.recvErr
	case c.tapErr != nil:
		return fmt.Errorf("raw stream parser: %w", c.tapErr)
	}
	return nil
}

// rawTap receives go-xmpp's debug output and feeds the received bytes to a
// parser. go-xmpp's debug tee writes each chunk read from the socket as one
// Write of "RECV " + chunk, plus "\n" unless the chunk ends with one, and each
// sent chunk as "SEND " + chunk. So the received stream is recovered exactly,
// except that a newline may be added or lost at chunk boundaries; only text
// split across two socket reads (large stanzas) could differ by that newline.
type rawTap struct {
	pr *io.PipeReader
	pw *io.PipeWriter
}

func newRawTap() *rawTap {
	pr, pw := io.Pipe()
	return &rawTap{pr: pr, pw: pw}
}

// Write never fails: go-xmpp would turn an error into a failed Recv.
func (r *rawTap) Write(p []byte) (int, error) {
	if chunk, ok := bytes.CutPrefix(p, []byte("RECV ")); ok {
		// After Close this returns io.ErrClosedPipe, deliberately ignored.
		_, _ = r.pw.Write(bytes.TrimSuffix(chunk, []byte("\n")))
	}
	return len(p), nil
}

func (r *rawTap) Close() { r.pw.Close() }

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
