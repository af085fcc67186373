package irctest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	dialTimeout  = 10 * time.Second
	writeTimeout = 5 * time.Second
)

// Line is one message received from the server, parsed independently of
// the gateway's own parser so that tests check one against the other.
type Line struct {
	Raw     string // as received, without CR LF
	Tags    string // without the leading @, "" when none
	Prefix  string // without the leading :, "" when none
	Command string // upper case, or a three-digit numeric
	Params  []string
}

// Nick is the nick part of the prefix ("bob" of "bob!~bob@host").
func (l Line) Nick() string {
	n, _, _ := strings.Cut(l.Prefix, "!")
	return n
}

// Param returns the i-th parameter, "" when there are fewer.
func (l Line) Param(i int) string {
	if i < len(l.Params) {
		return l.Params[i]
	}
	return ""
}

// Text is the last parameter: a message's text.
func (l Line) Text() string {
	if len(l.Params) == 0 {
		return ""
	}
	return l.Params[len(l.Params)-1]
}

// parseLine is a plain RFC 1459 parser with IRCv3 tags.
func parseLine(raw string) Line {
	l := Line{Raw: raw}
	rest := raw
	if strings.HasPrefix(rest, "@") {
		l.Tags, rest, _ = strings.Cut(rest[1:], " ")
	}
	rest = strings.TrimLeft(rest, " ")
	if strings.HasPrefix(rest, ":") {
		l.Prefix, rest, _ = strings.Cut(rest[1:], " ")
	}
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if l.Command == "" {
			l.Command, rest, _ = strings.Cut(rest, " ")
			l.Command = strings.ToUpper(l.Command)
			continue
		}
		if strings.HasPrefix(rest, ":") {
			l.Params = append(l.Params, rest[1:])
			break
		}
		var p string
		p, rest, _ = strings.Cut(rest, " ")
		l.Params = append(l.Params, p)
	}
	return l
}

// Client is a plain IRC client (a person on IRC, in tests). A goroutine
// reads everything the server sends and answers its PINGs; Wait picks from
// what was received.
type Client struct {
	conn net.Conn
	nick string
	done chan struct{} // closed when the read loop ends

	wmu sync.Mutex // one writer at a time

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever something arrives
	queue   []Line        // not yet consumed by Wait
	log     []string      // everything received, for failure messages
	readErr error

	closeOnce sync.Once
}

// Dial connects to s as nick, registers (with the server password, if
// any) and waits for the welcome. The client is closed on cleanup.
func (s *Server) Dial(t testing.TB, nick string) *Client {
	t.Helper()
	return Dial(t, s.Addr(), s.Password(), nick)
}

// DialTLS is Dial over TLS, to TLSAddr, trusting the server's
// certificate (CACertFile). The server must have Options.TLS.
func (s *Server) DialTLS(t testing.TB, nick string) *Client {
	t.Helper()
	if s.TLSAddr() == "" {
		t.Fatal("irctest: DialTLS on a server without Options.TLS")
	}
	pem, err := os.ReadFile(s.CACertFile())
	if err != nil {
		t.Fatalf("irctest: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("irctest: no certificate in %s", s.CACertFile())
	}
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: dialTimeout},
		Config:    &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
	}
	conn, err := d.Dial("tcp", s.TLSAddr())
	if err != nil {
		t.Fatalf("irctest: dial %s: %v", s.TLSAddr(), err)
	}
	return register(t, conn, s.Password(), nick)
}

// Dial connects to the IRC server at addr as nick; see (*Server).Dial.
func Dial(t testing.TB, addr, password, nick string) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		t.Fatalf("irctest: dial %s: %v", addr, err)
	}
	return register(t, conn, password, nick)
}

// register starts the client on conn and registers it as nick.
func register(t testing.TB, conn net.Conn, password, nick string) *Client {
	t.Helper()
	c := &Client{conn: conn, nick: nick, done: make(chan struct{}), changed: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { c.Close() })
	if password != "" {
		c.Send(t, "PASS "+password)
	}
	c.Send(t, "NICK "+nick)
	c.Send(t, "USER "+nick+" 0 * :irctest "+nick)
	c.Wait(t, dialTimeout, func(l Line) bool { return l.Command == "001" })
	return c
}

// Nick returns the nick the client registered with.
func (c *Client) Nick() string { return c.nick }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

func (c *Client) readLoop() {
	defer close(c.done)
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		raw := strings.TrimSuffix(sc.Text(), "\r")
		l := parseLine(raw)
		if l.Command == "PING" {
			_ = c.Write("PONG :" + l.Text())
		}
		c.mu.Lock()
		c.queue = append(c.queue, l)
		c.log = append(c.log, raw)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.readErr = sc.Err()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Write sends one line (CR LF is added). It is safe to call from any
// goroutine; use Send in the test's own.
func (c *Client) Write(line string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.conn.Write([]byte(line + "\r\n"))
	return err
}

// Send sends one line and fails the test if it cannot.
func (c *Client) Send(t testing.TB, line string) {
	t.Helper()
	if err := c.Write(line); err != nil {
		t.Fatalf("irctest: %s: send %q: %v", c.nick, line, err)
	}
}

// Privmsg sends text to target (a nick or a channel).
func (c *Client) Privmsg(t testing.TB, target, text string) {
	t.Helper()
	c.Send(t, "PRIVMSG "+target+" :"+text)
}

// Join joins channel and waits until the server has sent its names list.
func (c *Client) Join(t testing.TB, channel string) {
	t.Helper()
	c.Send(t, "JOIN "+channel)
	c.Wait(t, dialTimeout, func(l Line) bool {
		return l.Command == "366" && strings.EqualFold(l.Param(1), channel)
	})
}

// Wait consumes and returns the first received line (queued or yet to
// come) for which match is true. It fails the test, showing everything
// received, if none arrives within timeout.
func (c *Client) Wait(t testing.TB, timeout time.Duration, match func(Line) bool) Line {
	t.Helper()
	l, ok := c.TryWait(timeout, match)
	if !ok {
		c.mu.Lock()
		log, err := strings.Join(c.log, "\n"), c.readErr
		c.mu.Unlock()
		t.Fatalf("irctest: %s: no matching line within %v (read error: %v); received:\n%s", c.nick, timeout, err, log)
	}
	return l
}

// TryWait is Wait without failing: ok is false after timeout.
func (c *Client) TryWait(timeout time.Duration, match func(Line) bool) (l Line, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i, l := range c.queue {
			if match(l) {
				c.queue = append(c.queue[:i:i], c.queue[i+1:]...)
				c.mu.Unlock()
				return l, true
			}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return Line{}, false
		}
	}
}

// Received returns every line received so far, for failure messages.
func (c *Client) Received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

// Quit sends QUIT with reason and waits until the server has closed the
// connection, so that others have seen the quit.
func (c *Client) Quit(t testing.TB, reason string) {
	t.Helper()
	c.Send(t, "QUIT :"+reason)
	select {
	case <-c.done:
	case <-time.After(dialTimeout):
		t.Fatalf("irctest: %s: server did not close the connection after QUIT", c.nick)
	}
	c.Close()
}

// Close quits and closes the connection; it is safe to call twice.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		_ = c.Write("QUIT :irctest done")
		_ = c.conn.Close()
		<-c.done
	})
}

// String is for test logs.
func (c *Client) String() string { return fmt.Sprintf("irctest client %s", c.nick) }
