package twiliotest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

const (
	apiVersion   = "2010-04-01"
	maxBodyChars = 1600
	pollInterval = 10 * time.Millisecond
)

var e164 = regexp.MustCompile(`^\+[1-9]\d{1,14}$`)

// Server is a fake of Twilio's Messages REST API on a loopback listener.
// It is safe for concurrent use.
type Server struct {
	URL        string // base URL, http://127.0.0.1:port
	AccountSID string
	AuthToken  string

	srv       *httptest.Server
	listener  *proctest.SwitchListener
	closing   chan struct{}
	closeOnce sync.Once

	mu             sync.Mutex
	messages       []storedMessage
	failures       []Failure
	responder      func(CreateRequest) *Failure
	latency        time.Duration
	requests       int
	inFlight       int
	maxInFlight    int
	concurrency    int                  // 0: unlimited; above it create calls get 429
	throttled      int                  // create calls answered 429 for concurrency
	conns          int                  // TCP connections accepted
	media          map[string]mediaItem // by URL path
	pendingMMS     string               // message SID shared by AddMedia calls until InboundSMS
	mediaFetches   int
	inboundService string

	// The sending queue: Twilio sends each number's (or Messaging
	// Service's) messages at a fixed rate, and until a message is sent its
	// status is queued/accepted and date_sent is null.
	sendRate float64              // per sender, messages per second; 0: at once
	holding  bool                 // HoldSending: nothing leaves the queue
	nextSlot map[string]time.Time // per sender, when its queue is free
}

// DefaultSendRate is the fake's sending rate per number: Twilio sends 1
// message per second from a US long code and queues the rest.
const DefaultSendRate = 1.0

// Message is an outbound message the fake accepted.
type Message struct {
	SID                 string
	AccountSID          string
	From                string
	To                  string
	Body                string
	MessagingServiceSID string
	StatusCallback      string
	MediaURLs           []string
	// NumSegments is what Twilio bills: see CountSegments; 1 for MMS.
	NumSegments int
	// Status is what the create call answered: "queued", or "accepted"
	// when sent through a Messaging Service without From.
	Status  string
	Created time.Time
	// Sent is when the message left Twilio's queue (its date_sent, status
	// "sent" from then on); zero while it is queued.
	Sent time.Time
}

type storedMessage struct {
	Message
	// viaService: Twilio has not picked a sender yet, so the resource
	// shows from null and num_segments "0".
	viaService bool
	// sendAt is when the message leaves the queue; zero while it is held
	// (HoldSending).
	sendAt time.Time
}

// sender names the queue a message waits in: its number, or the
// Messaging Service that picks one.
func (m storedMessage) sender() string {
	if m.From != "" {
		return m.From
	}
	return m.MessagingServiceSID
}

// at is the message as it stands at now: sent once its time has come.
func (m storedMessage) at(now time.Time) storedMessage {
	if !m.sendAt.IsZero() && !now.Before(m.sendAt) {
		m.Sent = m.sendAt
	}
	m.MediaURLs = slices.Clone(m.MediaURLs)
	return m
}

// Failure scripts the answer to one create call.
type Failure struct {
	Status  int    // HTTP status; 0 with a Delay means accept the message late
	Code    int    // Twilio error code, e.g. 20429, 21610
	Message string // empty: Twilio's message for Code
	// Delay holds the answer back, to make clients time out. The fake
	// keeps going after the client has given up, like Twilio would.
	Delay time.Duration
	// Accept stores the message before the (delayed, possibly failed)
	// answer: the send happened but the client cannot know.
	Accept bool
}

// CreateRequest is what a responder sees of a create call.
type CreateRequest struct {
	From, To, Body, MessagingServiceSID string
	MediaURLs                           []string
	Attempt                             int // 1-based count of create calls
}

type mediaItem struct {
	contentType string
	data        []byte
}

// Start runs a fake Twilio API for the length of the test.
func Start(t testing.TB, accountSID, authToken string) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", accountSID, authToken)
	if err != nil {
		t.Fatalf("twiliotest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Listen runs a fake Twilio API on addr until Close, for use outside tests
// (a long-running fault-injection run, say).
func Listen(addr, accountSID, authToken string) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &Server{
		AccountSID: accountSID,
		AuthToken:  authToken,
		closing:    make(chan struct{}),
		media:      make(map[string]mediaItem),
		sendRate:   DefaultSendRate,
		nextSlot:   make(map[string]time.Time),
	}
	s.listener = proctest.NewSwitchListener(l)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.srv.Listener.Close()
	s.srv.Listener = s.listener
	s.srv.Start()
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the server. Delayed answers still pending are abandoned
// (their connections are closed) so Close does not wait for them.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.srv.Close()
	})
}

// Messages returns the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = m.at(now).Message
	}
	return out
}

// SetSendRate sets how many messages per second each sending number (or
// Messaging Service) sends; the others wait in its queue, status queued
// (accepted through a service) and date_sent null, as on Twilio. 0 sends
// every message the moment it is created. It applies to messages created
// from then on. The default is DefaultSendRate.
func (s *Server) SetSendRate(mps float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendRate = max(mps, 0)
}

// HoldSending keeps every message created from now on in the queue until
// ReleaseSending, as when a number's queue is hours long.
func (s *Server) HoldSending() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holding = true
}

// ReleaseSending ends HoldSending: the held messages leave their queues
// from now on, in the order they were created, at the send rate.
func (s *Server) ReleaseSending() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holding = false
	now := time.Now().UTC()
	for i := range s.messages {
		if s.messages[i].sendAt.IsZero() {
			s.messages[i].sendAt = s.slot(s.messages[i].sender(), now)
		}
	}
}

// slot takes the next free place in sender's queue at or after now.
// Callers hold s.mu.
func (s *Server) slot(sender string, now time.Time) time.Time {
	at := now
	if next := s.nextSlot[sender]; next.After(at) {
		at = next
	}
	if s.sendRate > 0 {
		s.nextSlot[sender] = at.Add(time.Duration(float64(time.Second) / s.sendRate))
	}
	return at
}

// WaitMessages waits until at least n messages were accepted and returns
// them all; on timeout it fails the test, listing what came. Call it from
// the test goroutine.
func (s *Server) WaitMessages(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, m := range msgs {
				fmt.Fprintf(&b, "\n\t%s %s -> %s: %q", m.SID, m.From, m.To, m.Body)
			}
			t.Fatalf("twiliotest: want %d messages within %v, got %d (after %d create calls):%s",
				n, timeout, len(msgs), s.Requests(), b.String())
		}
		time.Sleep(pollInterval)
	}
}

// Requests counts every create call, failed or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// MaxInFlight is the peak number of create calls being answered at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// SetConcurrencyLimit makes create calls beyond n at once fail as Twilio's
// do above an account's concurrency limit: 429 with error 20429. 0 lifts it.
func (s *Server) SetConcurrencyLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.concurrency = n
}

// Throttled counts create calls refused for concurrency (429).
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Connections counts the TCP connections clients opened to the fake.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// SetLatency delays the answer to every create call by d, before anything
// else (auth included) happens.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext queues scripted answers for the next create calls, first in
// first out; each is used once.
func (s *Server) FailNext(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, f...)
}

// SetResponder installs a hook consulted on every authenticated create
// call before the FailNext queue; it returns nil to go on normally. It may
// run on many goroutines at once. nil removes it.
func (s *Server) SetResponder(fn func(r CreateRequest) *Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.responder = fn
}

// MediaFetches counts media downloads that were served (authenticated).
func (s *Server) MediaFetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mediaFetches
}

// AddMedia stores an inbound MMS attachment and returns its URL, shaped
// like Twilio's: {URL}/2010-04-01/Accounts/{AC}/Messages/{MM}/Media/{ME}.
// Calls until the next InboundSMS share one message SID, so pass their URLs
// to InboundSMS together.
func (s *Server) AddMedia(contentType string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pendingMMS == "" {
		s.pendingMMS = NewSID("MM")
	}
	path := fmt.Sprintf("/%s/Accounts/%s/Messages/%s/Media/%s", apiVersion, s.AccountSID, s.pendingMMS, NewSID("ME"))
	s.media[path] = mediaItem{contentType: contentType, data: slices.Clone(data)}
	return s.URL + path
}

// SetInboundMessagingService makes InboundSMS carry MessagingServiceSid,
// as Twilio does for numbers in a Messaging Service. "" removes it.
func (s *Server) SetInboundMessagingService(sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inboundService = sid
}

// NewSID returns a random Twilio SID: prefix and 32 lowercase hex digits.
func NewSID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Twilio-Request-Id", NewSID("RQ"))
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 4 || parts[0] != apiVersion || parts[1] != "Accounts" {
		writeNotFound(w, r.URL.Path)
		return
	}
	account, rest := parts[2], parts[3:]
	switch {
	case len(rest) == 1 && rest[0] == "Messages.json":
		switch r.Method {
		case http.MethodPost:
			s.handleCreate(w, r, account)
		case http.MethodGet:
			if s.authorize(w, r, account) {
				s.handleList(w, r)
			}
		default:
			s.methodNotAllowed(w, r, account)
		}
	case len(rest) == 2 && rest[0] == "Messages" && strings.HasSuffix(rest[1], ".json"):
		if r.Method != http.MethodGet {
			s.methodNotAllowed(w, r, account)
			return
		}
		if s.authorize(w, r, account) {
			s.handleFetch(w, r, strings.TrimSuffix(rest[1], ".json"))
		}
	case len(rest) == 4 && rest[0] == "Messages" && rest[2] == "Media":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.methodNotAllowed(w, r, account)
			return
		}
		if s.authorize(w, r, account) {
			s.handleMedia(w, r)
		}
	default:
		if s.authorize(w, r, account) {
			writeNotFound(w, r.URL.Path)
		}
	}
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request, account string) {
	if s.authorize(w, r, account) {
		writeError(w, http.StatusMethodNotAllowed, 20004, knownMessages[20004])
	}
}

// authorize answers 401 (20003) unless the request carries the account's
// credentials, and 404 (20404) when they are good but the path names
// another account, as Twilio does for an account you do not own.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, account string) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.AccountSID ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.AuthToken)) != 1 {
		writeUnauthorized(w)
		return false
	}
	if account != s.AccountSID {
		writeNotFound(w, r.URL.Path)
		return false
	}
	return true
}

// wait sleeps for d unless the server is closing; false means closing.
func (s *Server) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closing:
		return false
	}
}

// abandon drops the connection without an answer.
func abandon(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
		}
	}
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, account string) {
	s.mu.Lock()
	s.requests++
	attempt := s.requests
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	latency := s.latency
	over := s.concurrency > 0 && s.inFlight > s.concurrency
	if over {
		s.throttled++
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if over {
		writeError(w, http.StatusTooManyRequests, 20429, "Too Many Requests")
		return
	}

	if !s.wait(latency) {
		abandon(w)
		return
	}
	if !s.authorize(w, r, account) {
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Unable to parse request: "+err.Error())
		return
	}
	req := CreateRequest{
		From:                r.PostForm.Get("From"),
		To:                  r.PostForm.Get("To"),
		Body:                r.PostForm.Get("Body"),
		MessagingServiceSID: r.PostForm.Get("MessagingServiceSid"),
		MediaURLs:           r.PostForm["MediaUrl"],
		Attempt:             attempt,
	}
	f := s.scripted(req)
	if f == nil {
		s.answerCreate(w, req, r.PostForm.Get("StatusCallback"))
		return
	}
	var stored *storedMessage
	if f.Accept {
		if m, ok := s.accept(w, req, r.PostForm.Get("StatusCallback")); ok {
			stored = &m
		} else {
			return // the validation error was the answer
		}
	}
	if !s.wait(f.Delay) {
		abandon(w)
		return
	}
	switch {
	case f.Status != 0:
		writeFailure(w, *f, req.To)
	case stored != nil:
		writeJSON(w, http.StatusCreated, s.resource(*stored))
	default:
		s.answerCreate(w, req, r.PostForm.Get("StatusCallback"))
	}
}

// scripted returns the responder's or the queue's Failure, or nil.
func (s *Server) scripted(req CreateRequest) *Failure {
	s.mu.Lock()
	fn := s.responder
	s.mu.Unlock()
	if fn != nil {
		if f := fn(req); f != nil {
			return f
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) == 0 {
		return nil
	}
	f := s.failures[0]
	s.failures = s.failures[1:]
	return &f
}

func (s *Server) answerCreate(w http.ResponseWriter, req CreateRequest, callback string) {
	if m, ok := s.accept(w, req, callback); ok {
		writeJSON(w, http.StatusCreated, s.resource(m))
	}
}

// accept validates req as Twilio does and stores the message. When it is
// invalid, it writes the error and returns false.
func (s *Server) accept(w http.ResponseWriter, req CreateRequest, callback string) (storedMessage, bool) {
	fail := func(code int, msg string) (storedMessage, bool) {
		writeError(w, http.StatusBadRequest, code, msg)
		return storedMessage{}, false
	}
	switch {
	case req.To == "":
		return fail(21604, knownMessages[21604])
	case !e164.MatchString(req.To):
		return fail(21211, "Invalid 'To' Phone Number: "+req.To)
	case req.From == "" && req.MessagingServiceSID == "":
		return fail(21603, knownMessages[21603])
	case req.Body == "" && len(req.MediaURLs) == 0:
		return fail(21619, knownMessages[21619])
	case utf8.RuneCountInString(req.Body) > maxBodyChars:
		return fail(21617, knownMessages[21617])
	}
	prefix, segments := "SM", CountSegments(req.Body)
	if len(req.MediaURLs) > 0 {
		prefix, segments = "MM", 1
	}
	m := storedMessage{
		Message: Message{
			SID:                 NewSID(prefix),
			AccountSID:          s.AccountSID,
			From:                req.From,
			To:                  req.To,
			Body:                req.Body,
			MessagingServiceSID: req.MessagingServiceSID,
			StatusCallback:      callback,
			MediaURLs:           slices.Clone(req.MediaURLs),
			NumSegments:         segments,
			Status:              "queued",
			Created:             time.Now().UTC(),
		},
		viaService: req.From == "",
	}
	if m.viaService {
		m.Status = "accepted"
	}
	s.mu.Lock()
	if !s.holding {
		m.sendAt = s.slot(m.sender(), m.Created)
	}
	s.messages = append(s.messages, m)
	s.mu.Unlock()
	// The create call answers with the message as created: queued, even
	// when its queue is empty.
	return m, true
}

// apiMessage is the Message resource as Twilio serialises it; nullable
// fields are pointers without omitempty so they come out as null.
type apiMessage struct {
	AccountSID          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                *string           `json:"from"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	SID                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

func (s *Server) resource(m storedMessage) apiMessage {
	base := fmt.Sprintf("/%s/Accounts/%s/Messages/%s", apiVersion, m.AccountSID, m.SID)
	date := m.Created.Format(time.RFC1123Z)
	a := apiMessage{
		AccountSID:      m.AccountSID,
		APIVersion:      apiVersion,
		Body:            m.Body,
		DateCreated:     date,
		DateUpdated:     date,
		Direction:       "outbound-api",
		NumMedia:        strconv.Itoa(len(m.MediaURLs)),
		NumSegments:     strconv.Itoa(m.NumSegments),
		PriceUnit:       "USD",
		SID:             m.SID,
		Status:          m.Status,
		SubresourceURIs: map[string]string{"media": base + "/Media.json"},
		To:              m.To,
		URI:             base + ".json",
	}
	if m.From != "" {
		a.From = &m.From
	}
	if m.MessagingServiceSID != "" {
		a.MessagingServiceSID = &m.MessagingServiceSID
	}
	if m.viaService {
		a.NumSegments = "0"
	}
	if !m.Sent.IsZero() {
		sent := m.Sent.UTC().Format(time.RFC1123Z)
		a.DateSent, a.DateUpdated, a.Status = &sent, sent, "sent"
	}
	return a
}

func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request, sid string) {
	s.mu.Lock()
	i := slices.IndexFunc(s.messages, func(m storedMessage) bool { return m.SID == sid })
	var m storedMessage
	if i >= 0 {
		m = s.messages[i].at(time.Now())
	}
	s.mu.Unlock()
	if i < 0 {
		writeNotFound(w, r.URL.Path)
		return
	}
	writeJSON(w, http.StatusOK, s.resource(m))
}

type messagePage struct {
	End             int          `json:"end"`
	FirstPageURI    string       `json:"first_page_uri"`
	Messages        []apiMessage `json:"messages"`
	NextPageURI     *string      `json:"next_page_uri"`
	Page            int          `json:"page"`
	PageSize        int          `json:"page_size"`
	PreviousPageURI *string      `json:"previous_page_uri"`
	Start           int          `json:"start"`
	URI             string       `json:"uri"`
}

// handleList serves one page of messages, newest first (by date_created),
// filtered by To, From and DateSent (DateSent, DateSent<, DateSent>). As on
// Twilio, a DateSent filter matches only messages that were sent: a queued
// message has no date_sent.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pageSize := 50
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, 20001, "Invalid PageSize: "+v)
			return
		}
		pageSize = n
	}
	page := 0
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, 20001, "Invalid Page: "+v)
			return
		}
		page = n
	}
	keep, err := listFilter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, 20001, err.Error())
		return
	}

	s.mu.Lock()
	now := time.Now()
	var all []storedMessage
	for i := len(s.messages) - 1; i >= 0; i-- {
		if m := s.messages[i].at(now); keep(m.Message) {
			all = append(all, m)
		}
	}
	s.mu.Unlock()

	start := min(page*pageSize, len(all))
	stop := min(start+pageSize, len(all))
	p := messagePage{
		Messages: make([]apiMessage, 0, stop-start),
		Page:     page,
		PageSize: pageSize,
		Start:    start,
		End:      max(stop-1, start),
	}
	for _, m := range all[start:stop] {
		p.Messages = append(p.Messages, s.resource(m))
	}
	pageURI := func(n int) string {
		v := url.Values{}
		for _, k := range []string{"To", "From", "DateSent", "DateSent<", "DateSent>"} {
			if x := q.Get(k); x != "" {
				v.Set(k, x)
			}
		}
		v.Set("PageSize", strconv.Itoa(pageSize))
		v.Set("Page", strconv.Itoa(n))
		if n > 0 {
			v.Set("PageToken", "PA"+strconv.Itoa(n*pageSize))
		}
		return r.URL.Path + "?" + v.Encode()
	}
	p.URI = pageURI(page)
	p.FirstPageURI = pageURI(0)
	if stop < len(all) {
		next := pageURI(page + 1)
		p.NextPageURI = &next
	}
	if page > 0 {
		prev := pageURI(page - 1)
		p.PreviousPageURI = &prev
	}
	writeJSON(w, http.StatusOK, p)
}

func listFilter(q url.Values) (func(Message) bool, error) {
	parse := func(key string) (time.Time, bool, error) {
		v := q.Get(key)
		if v == "" {
			return time.Time{}, false, nil
		}
		for _, layout := range []string{time.RFC3339, time.DateOnly} {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC(), true, nil
			}
		}
		return time.Time{}, false, fmt.Errorf("Invalid %s: %s", key, v)
	}
	on, hasOn, err := parse("DateSent")
	if err != nil {
		return nil, err
	}
	before, hasBefore, err := parse("DateSent<")
	if err != nil {
		return nil, err
	}
	after, hasAfter, err := parse("DateSent>")
	if err != nil {
		return nil, err
	}
	to, from := q.Get("To"), q.Get("From")
	byDate := hasOn || hasBefore || hasAfter
	return func(m Message) bool {
		day := m.Sent.Truncate(24 * time.Hour)
		switch {
		case to != "" && m.To != to,
			from != "" && m.From != from,
			byDate && m.Sent.IsZero(),
			hasOn && !day.Equal(on.Truncate(24*time.Hour)),
			hasBefore && !m.Sent.Before(before),
			hasAfter && m.Sent.Before(after):
			return false
		}
		return true
	}, nil
}

func (s *Server) handleMedia(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	item, ok := s.media[r.URL.Path]
	if ok {
		s.mediaFetches++
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w, r.URL.Path)
		return
	}
	w.Header().Set("Content-Type", item.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(item.data)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(item.data)
	}
}
