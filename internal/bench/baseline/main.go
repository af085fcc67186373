// Command baseline is the thin SMS gateway the benchmark (internal/bench)
// measures xmppgw against: the least a gateway must do per message, with
// nothing else.
//
// Outbound, it is an XEP-0114 component: it reads <message> stanzas from the
// stream with encoding/xml, and for each one with a body POSTs a Twilio
// Messages create call (form-encoded To, From, Body, basic auth) over a
// keep-alive connection pool, decoding the answer's sid. Inbound, it checks
// the X-Twilio-Signature of a webhook (HMAC-SHA1 of the URL and the sorted
// parameters), maps the number to a user and writes a <message> to the
// component stream before answering 200.
//
// It keeps nothing: no bus, no durability, no retries, no registration, no
// ordering guarantee. A message in flight when it stops is lost. It exists
// only as a yardstick; see docs/performance.md.
//
//	baseline -component 127.0.0.1:5347 -domain sms.localhost -secret s \
//	  -listen 127.0.0.1:8080 -api-url http://127.0.0.1:9000 \
//	  -account-sid AC… -auth-token … -numbers +15550000000=u0@localhost,…
package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	component, domain, secret string
	listen, publicURL         string
	apiURL, accountSID, token string
	concurrency               int
	numbers                   map[string]string // E.164 → bare JID
}

func main() {
	var c config
	var numbers string
	flag.StringVar(&c.component, "component", "", "XMPP server's component address, host:port")
	flag.StringVar(&c.domain, "domain", "", "component domain")
	flag.StringVar(&c.secret, "secret", "", "component secret")
	flag.StringVar(&c.listen, "listen", "", "HTTP listen address for webhooks and /readyz")
	flag.StringVar(&c.publicURL, "public-url", "", "URL Twilio signs webhooks with; default http://<listen>")
	flag.StringVar(&c.apiURL, "api-url", "https://api.twilio.com", "Twilio API base URL")
	flag.StringVar(&c.accountSID, "account-sid", "", "Twilio account SID")
	flag.StringVar(&c.token, "auth-token", "", "Twilio auth token")
	flag.IntVar(&c.concurrency, "concurrency", 8, "create calls in flight at once")
	flag.StringVar(&numbers, "numbers", "", "comma-separated number=jid assignments")
	flag.Parse()
	if c.publicURL == "" {
		c.publicURL = "http://" + c.listen
	}
	c.numbers = map[string]string{}
	for _, kv := range strings.Split(numbers, ",") {
		if n, j, ok := strings.Cut(kv, "="); ok {
			c.numbers[n] = j
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("baseline stopped", "err", err)
		os.Exit(1)
	}
}

// gateway is one component stream and its HTTP side.
type gateway struct {
	c       config
	log     *slog.Logger
	users   map[string]string // bare JID → number
	client  *http.Client
	sendURL string

	wmu  sync.Mutex // one stanza at a time on the stream
	conn net.Conn
	up   atomic.Bool

	sent, failed atomic.Int64
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	g := &gateway{
		c:       c,
		log:     log,
		users:   map[string]string{},
		sendURL: strings.TrimRight(c.apiURL, "/") + "/2010-04-01/Accounts/" + c.accountSID + "/Messages.json",
	}
	for n, j := range c.numbers {
		g.users[j] = n
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = c.concurrency
	g.client = &http.Client{Transport: tr, Timeout: 20 * time.Second}

	l, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /twilio/sms/sms", g.inbound)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !g.up.Load() {
			http.Error(w, "component stream not up", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.component)
	if err != nil {
		return err
	}
	g.conn = conn
	context.AfterFunc(ctx, func() { conn.Close() })
	dec := xml.NewDecoder(bufio.NewReaderSize(conn, 64<<10))
	if err := g.handshake(dec); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	g.up.Store(true)
	log.Info("component stream up", "domain", c.domain)

	work := make(chan outMessage, 1024)
	var wg sync.WaitGroup
	for range c.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				g.send(m)
			}
		}()
	}
	err = g.read(dec, work)
	close(work)
	wg.Wait()
	log.Info("stopped", "sent", g.sent.Load(), "failed", g.failed.Load())
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// handshake opens the stream and authenticates (XEP-0114 §3):
// <handshake> carries hex(sha1(stream id + secret)).
func (g *gateway) handshake(dec *xml.Decoder) error {
	_, err := fmt.Fprintf(g.conn, `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>`, xmlEscape(g.c.domain))
	if err != nil {
		return err
	}
	se, err := nextStart(dec)
	if err != nil {
		return err
	}
	if se.Name.Local != "stream" {
		return fmt.Errorf("expected the stream header, got <%s>", se.Name.Local)
	}
	id := ""
	for _, a := range se.Attr {
		if a.Name.Local == "id" {
			id = a.Value
		}
	}
	if id == "" {
		return errors.New("stream header without id")
	}
	sum := sha1.Sum([]byte(id + g.c.secret))
	if _, err := fmt.Fprintf(g.conn, "<handshake>%s</handshake>", hex.EncodeToString(sum[:])); err != nil {
		return err
	}
	se, err = nextStart(dec)
	if err != nil {
		return err
	}
	if se.Name.Local != "handshake" {
		return fmt.Errorf("handshake refused: <%s>", se.Name.Local)
	}
	return dec.Skip()
}

func nextStart(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se, nil
		}
	}
}

type outMessage struct {
	From string `xml:"from,attr"`
	To   string `xml:"to,attr"`
	Type string `xml:"type,attr"`
	ID   string `xml:"id,attr"`
	Body string `xml:"body"`
}

// read parses stanzas until the stream ends and queues every message with a
// body for sending.
func (g *gateway) read(dec *xml.Decoder, work chan<- outMessage) error {
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local != "message" {
				if err := dec.Skip(); err != nil {
					return err
				}
				continue
			}
			var m outMessage
			if err := dec.DecodeElement(&m, &t); err != nil {
				return err
			}
			if m.Type == "error" || strings.TrimSpace(m.Body) == "" {
				continue
			}
			work <- m
		case xml.EndElement:
			return io.EOF // </stream:stream>
		}
	}
}

// send makes one create call.
func (g *gateway) send(m outMessage) {
	bare, _, _ := strings.Cut(m.From, "/")
	to, _, _ := strings.Cut(m.To, "@")
	from := g.users[bare]
	if from == "" {
		g.log.Warn("message from a user without a number", "from", m.From)
		g.failed.Add(1)
		return
	}
	form := url.Values{"To": {to}, "From": {from}, "Body": {m.Body}}
	req, err := http.NewRequest(http.MethodPost, g.sendURL, strings.NewReader(form.Encode()))
	if err != nil {
		g.failed.Add(1)
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(g.c.accountSID, g.c.token)
	resp, err := g.client.Do(req)
	if err != nil {
		g.log.Warn("create call failed", "id", m.ID, "err", err)
		g.failed.Add(1)
		return
	}
	defer resp.Body.Close()
	var answer struct {
		SID string `json:"sid"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	_, _ = io.Copy(io.Discard, resp.Body) // keep the connection reusable
	if resp.StatusCode != http.StatusCreated || err != nil || answer.SID == "" {
		g.log.Warn("create call refused", "id", m.ID, "status", resp.StatusCode, "err", err)
		g.failed.Add(1)
		return
	}
	g.sent.Add(1)
}

const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`

// inbound checks a webhook's signature and writes the message to the stream.
func (g *gateway) inbound(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	url := g.c.publicURL + r.URL.RequestURI()
	if !validSignature(g.c.token, url, r.PostForm, r.Header.Get("X-Twilio-Signature")) {
		http.Error(w, "invalid X-Twilio-Signature", http.StatusForbidden)
		return
	}
	f := r.PostForm
	if f.Get("AccountSid") != g.c.accountSID {
		http.Error(w, "webhook for another account", http.StatusForbidden)
		return
	}
	user := g.c.numbers[f.Get("To")]
	from := f.Get("From")
	if user == "" || from == "" {
		writeTwiML(w)
		return
	}
	stanza := `<message from='` + xmlEscape(from+"@"+g.c.domain) + `' to='` + xmlEscape(user) +
		`' type='chat' id='` + xmlEscape(f.Get("MessageSid")) + `'><body>` + xmlEscape(f.Get("Body")) + `</body></message>`
	g.wmu.Lock()
	_, err := io.WriteString(g.conn, stanza)
	g.wmu.Unlock()
	if err != nil {
		http.Error(w, "component stream down", http.StatusServiceUnavailable)
		return
	}
	writeTwiML(w)
}

func writeTwiML(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, emptyTwiML)
}

// validSignature checks X-Twilio-Signature: base64(HMAC-SHA1(token, URL +
// key+value of each parameter in key order)), the first value of each key
// as twilio-go's RequestValidator takes it.
func validSignature(token, url string, params url.Values, sig string) bool {
	if sig == "" {
		return false
	}
	mac := hmac.New(sha1.New, []byte(token))
	_, _ = io.WriteString(mac, url)
	for _, k := range slices.Sorted(maps.Keys(params)) {
		_, _ = io.WriteString(mac, k)
		_, _ = io.WriteString(mac, params.Get(k))
	}
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return subtle.ConstantTimeCompare([]byte(want), []byte(sig)) == 1
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
