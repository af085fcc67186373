package proctest

import (
	"net"
	"sync"
)

// SwitchListener is a listener that can stop listening and start again on
// the same address, which an HTTP server's Serve loop does not notice:
// Accept waits while it is not listening. The fake providers
// (internal/twiliotest, internal/telnyxtest) use it for outages: new
// connections are refused while it is down.
type SwitchListener struct {
	addr net.Addr

	mu      sync.Mutex
	l       net.Listener  // nil while down
	changed chan struct{} // closed (and replaced) when l changes or on Close
	closed  bool
}

// NewSwitchListener wraps l, listening.
func NewSwitchListener(l net.Listener) *SwitchListener {
	return &SwitchListener{addr: l.Addr(), l: l, changed: make(chan struct{})}
}

func (sl *SwitchListener) Accept() (net.Conn, error) {
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

// Set listens (up) or stops listening.
func (sl *SwitchListener) Set(up bool) error {
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

func (sl *SwitchListener) Close() error {
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

func (sl *SwitchListener) Addr() net.Addr { return sl.addr }
