package twiliotest

import (
	"net"
	"sync"
)

// SetUnreachable(true) makes the fake unreachable, as in an outage or a
// network partition: it stops listening, so new connections are refused,
// and cuts the connections already open (requests in progress get no
// answer). SetUnreachable(false) listens on the same address again. Either
// may be called in either state. The error is from listening again.
func (s *Server) SetUnreachable(down bool) error {
	if err := s.listener.set(!down); err != nil {
		return err
	}
	if down {
		s.srv.CloseClientConnections()
	}
	return nil
}

// switchListener is a listener that can stop listening and start again on
// the same address, which the HTTP server's Serve loop does not notice:
// Accept waits while it is not listening.
type switchListener struct {
	addr net.Addr

	mu      sync.Mutex
	l       net.Listener  // nil while unreachable
	changed chan struct{} // closed (and replaced) when l changes or on Close
	closed  bool
}

func (sl *switchListener) Accept() (net.Conn, error) {
	for {
		sl.mu.Lock()
		l, changed, closed := sl.l, sl.changed, sl.closed
		sl.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		if l == nil {
			<-changed
			continue
		}
		c, err := l.Accept()
		if err == nil {
			return c, nil
		}
		sl.mu.Lock()
		switched := sl.l != l || sl.closed
		sl.mu.Unlock()
		if !switched {
			return nil, err
		}
	}
}

// set listens (up) or stops listening.
func (sl *switchListener) set(up bool) error {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	switch {
	case sl.closed:
		return net.ErrClosed
	case up && sl.l == nil:
		l, err := net.Listen(sl.addr.Network(), sl.addr.String())
		if err != nil {
			return err
		}
		sl.l = l
	case !up && sl.l != nil:
		sl.l.Close()
		sl.l = nil
	default:
		return nil
	}
	close(sl.changed)
	sl.changed = make(chan struct{})
	return nil
}

func (sl *switchListener) Close() error {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.closed {
		return nil
	}
	sl.closed = true
	close(sl.changed)
	if sl.l != nil {
		return sl.l.Close()
	}
	return nil
}

func (sl *switchListener) Addr() net.Addr { return sl.addr }
