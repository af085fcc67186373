package proctest

import (
	"encoding/xml"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// Tap is a TCP relay between the gateway and Prosody's component
// port that records what crosses each XEP-0114 connection. XEP-0114 has no
// acknowledgements: a stanza Prosody wrote to the socket of a process that
// then died is gone, and neither side knows. The tap makes that window
// measurable: per connection it keeps, in order, the ids of the messages
// Prosody wrote towards the component and the bodies of the messages the
// component wrote towards Prosody.
//
// It forwards bytes as they come (no extra buffering beyond one read) and
// keeps the half-close semantics of a direct connection: when one side goes
// away the other sees end-of-stream, so Prosody notices a killed gateway as
// fast as it would without the tap. After the gateway died, what Prosody
// still writes is read and recorded (it is what Prosody wrote into a dead
// socket) until Prosody closes.
type Tap struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []*TapConn
	open  map[*TapConn][2]net.Conn
}

// TapConn is what one connection carried.
type TapConn struct {
	Ended    bool     // both directions finished: the stream is gone
	Abrupt   bool     // open when a fault that cuts streams was injected
	ToComp   []string // message ids Prosody wrote to the component, in order
	ToServer []string // message bodies the component wrote to Prosody, in order
	// Messages written after the writer's own </stream:stream>: no server
	// reads them, whatever TCP does.
	ToCompAfterClose, ToServerAfterClose []string
	// CompClosed: the component's </stream:stream> went through (an
	// orderly close by the gateway).
	CompClosed bool
}

// StartTap listens on a free loopback port and relays each connection to
// target; it stops (closing every connection) when the test ends.
func StartTap(t testing.TB, target string) *Tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Tap{ln: ln, target: target, open: map[*TapConn][2]net.Conn{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is where the gateway connects instead of target.
func (p *Tap) Addr() string { return p.ln.Addr().String() }

func (p *Tap) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Tap) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, cs := range p.open {
		cs[0].Close()
		cs[1].Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Tap) serve(gc net.Conn) {
	defer p.wg.Done()
	pc, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		gc.Close() // Prosody is down: the gateway sees a refused stream
		return
	}
	tc := &TapConn{}
	p.mu.Lock()
	p.conns = append(p.conns, tc)
	p.open[tc] = [2]net.Conn{gc, pc}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // Prosody → component
		defer wg.Done()
		p.relay(pc, gc, false, nil, func(id, _ string, afterClose bool) {
			p.mu.Lock()
			if afterClose {
				tc.ToCompAfterClose = append(tc.ToCompAfterClose, id)
			} else {
				tc.ToComp = append(tc.ToComp, id)
			}
			p.mu.Unlock()
		})
		// Prosody closed the connection (or the other relay ended it after
		// the gateway died). On a direct connection the gateway's next
		// writes would now fail: pass the end on, take in what the gateway
		// has already written, then close, so that they do.
		closeWrite(gc)
		_ = gc.SetReadDeadline(time.Now().Add(time.Millisecond))
	}()
	go func() { // component → Prosody
		defer wg.Done()
		p.relay(gc, pc, true, func() {
			p.mu.Lock()
			tc.CompClosed = true
			p.mu.Unlock()
		}, func(_, body string, afterClose bool) {
			p.mu.Lock()
			if afterClose {
				tc.ToServerAfterClose = append(tc.ToServerAfterClose, body)
			} else {
				tc.ToServer = append(tc.ToServer, body)
			}
			p.mu.Unlock()
		})
		// The gateway closed or died: Prosody sees the end of the stream,
		// and the other relay records what Prosody still writes until it
		// closes in turn.
		closeWrite(pc)
	}()
	wg.Wait()
	gc.Close()
	pc.Close()
	p.mu.Lock()
	tc.Ended = true
	delete(p.open, tc)
	p.mu.Unlock()
}

// relay copies src to dst and feeds the bytes to a stanza parser (closed,
// when not nil, is called when src's stream element ends). When dst fails,
// it keeps reading src (and recording) until src ends.
func (p *Tap) relay(src, dst net.Conn, bodies bool, closed func(), record func(id, body string, afterClose bool)) {
	pr, pw := io.Pipe()
	parsed := make(chan struct{})
	go func() {
		defer close(parsed)
		parseMessages(pr, bodies, closed, record)
		_, _ = io.Copy(io.Discard, pr) // never block the relay
	}()
	buf := make([]byte, 32<<10)
	dstOK := true
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if dstOK {
				// A failed write means the reader of dst is gone; the
				// other relay sees that as the end of its source and
				// passes the end on.
				_, werr := dst.Write(buf[:n])
				dstOK = werr == nil
			}
			_, _ = pw.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	pw.Close()
	<-parsed
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// parseMessages reads one XEP-0114 stream and reports each top-level
// <message/>: with bodies false, its id as soon as its start tag is read (so
// a stanza cut in half still counts as written); with bodies true, its id and
// body once complete. Messages after the end of the stream element are
// reported with afterClose; onClose, when not nil, is called at the end of
// the stream element.
func parseMessages(r io.Reader, bodies bool, onClose func(), record func(id, body string, afterClose bool)) {
	d := xml.NewDecoder(r)
	depth := 0
	closed := false
	for {
		tok, err := d.Token()
		if err != nil {
			return
		}
		switch se := tok.(type) {
		case xml.StartElement:
			top := depth == 1 || (closed && depth == 0)
			if !top || se.Name.Local != "message" {
				depth++
				continue
			}
			id := attr(se, "id")
			if !bodies {
				record(id, "", closed)
				if d.Skip() != nil {
					return
				}
				continue
			}
			var m struct {
				Body string `xml:"body"`
			}
			if err := d.DecodeElement(&m, &se); err != nil {
				return
			}
			record(id, m.Body, closed)
		case xml.EndElement:
			depth--
			if depth == 0 && !closed {
				closed = true
				if onClose != nil {
					onClose()
				}
			}
		}
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// TapSnapshot is a copy of what every connection carried.
type TapSnapshot []TapConn

// Snapshot copies what every connection carried so far, in the order the
// connections were accepted.
func (p *Tap) Snapshot() TapSnapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(TapSnapshot, len(p.conns))
	for i, c := range p.conns {
		out[i] = TapConn{
			Ended:              c.Ended,
			Abrupt:             c.Abrupt,
			ToComp:             slices.Clone(c.ToComp),
			ToServer:           slices.Clone(c.ToServer),
			ToCompAfterClose:   slices.Clone(c.ToCompAfterClose),
			CompClosed:         c.CompClosed,
			ToServerAfterClose: slices.Clone(c.ToServerAfterClose),
		}
	}
	return out
}

// MarkAbrupt records that the connections open now are about to be cut by a
// fault (a killed process, a restarted server): only those are granted the
// socket window. A stream that ends in an orderly way has no excuse.
func (p *Tap) MarkAbrupt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if !c.Ended {
			c.Abrupt = true
		}
	}
}
