package component

import (
	"bytes"
	"context"
	"encoding/xml"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
)

// encoder writes a stanza to the stream: the handler's token writer, or
// the session itself for work finished off the reader.
type encoder interface {
	Encode(v any) error
}

// Registration and ad-hoc commands call the registrar (KV round trips, and
// for IRC possibly a question to the IRC server) and can take seconds. The
// component reads a domain's stanzas one at a time, so they run off the
// reader and answer through the session: one slow registration does not
// hold up everyone's messages. Messages stay on the reader, in order.

// maxOffReader bounds the slow IQs in progress; past it they are handled on
// the reader (back pressure instead of unbounded goroutines).
const maxOffReader = 32

// replyTimeout bounds writing an answer made off the reader.
const replyTimeout = 10 * time.Second

// offReader runs slow IQ handlers for one stream.
type offReader struct {
	sess *xmpp.Session
	sem  chan struct{}
	wg   sync.WaitGroup
}

func newOffReader(sess *xmpp.Session) *offReader {
	return &offReader{sess: sess, sem: make(chan struct{}, maxOffReader)}
}

type offReaderKey struct{}

func withOffReader(ctx context.Context, o *offReader) context.Context {
	return context.WithValue(ctx, offReaderKey{}, o)
}

// runOffReader calls handle off the reader, writing through the session,
// or on the reader through w when the stream set no offReader or too many
// are in progress.
func (c *Component) runOffReader(ctx context.Context, w encoder, handle func(w encoder) error) error {
	o, _ := ctx.Value(offReaderKey{}).(*offReader)
	if o == nil {
		return handle(w)
	}
	select {
	case o.sem <- struct{}{}:
	default:
		return handle(w)
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer func() { <-o.sem }()
		if err := handle(sessionEncoder{o.sess}); err != nil {
			// The stream closed meanwhile: an IQ's answer has no second
			// chance (the client's request times out).
			c.log.Warn("could not write the answer to a request handled off the reader", "err", err)
		}
	}()
	return nil
}

// wait waits, at most timeout, for the handlers in progress, so that their
// answers go out before the stream is closed.
func (o *offReader) wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

type sessionEncoder struct{ sess *xmpp.Session }

// Encode writes v through the session's token writer, not Session.Encode:
// mellium's Encode does not look at whether our </stream:stream> has gone
// out, so a reply made after it "succeeds" into bytes no server reads (the
// sender is never told, and the gateway thinks it did). The token writer
// holds the session's output lock for the whole stanza and refuses every
// token once the stream is closed, so a reply either goes out whole before
// the close or fails (and its message is logged as unanswered).
func (e sessionEncoder) Encode(v any) error {
	data, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	w := e.sess.TokenWriter()
	defer w.Close()
	conn := e.sess.Conn()
	_ = conn.SetWriteDeadline(time.Now().Add(replyTimeout))
	defer conn.SetWriteDeadline(time.Time{})
	if _, err := xmlstream.Copy(w, rawTokens{xml.NewDecoder(bytes.NewReader(data))}); err != nil {
		return err
	}
	return w.Flush()
}

// rawTokens reads tokens as written (prefixes and xmlns attributes kept),
// as mellium's own Encode does, so that copying them to the stream's
// encoder does not rewrite namespaces.
type rawTokens struct{ d *xml.Decoder }

func (r rawTokens) Token() (xml.Token, error) { return r.d.RawToken() }
