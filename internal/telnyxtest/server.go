package telnyxtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// Server is a fake Telnyx API.
type Server struct {
	URL       string // the API's base URL: api_url
	APIKey    string
	PublicKey string // base64 Ed25519 public key: public_key
	// ProfileID, when set, is the only messaging_profile_id accepted.
	ProfileID string

	priv     ed25519.PrivateKey
	srv      *httptest.Server
	listener *proctest.SwitchListener

	mu           sync.Mutex
	messages     []Message
	failures     []Failure
	requests     int
	media        map[string]mediaItem
	mediaFetches int
	sendHooks    bool
	responder    func(CreateRequest) *Failure
	closing      chan struct{}
	closeOnce    sync.Once
	hooks        sync.WaitGroup
}

// Message is a message the fake accepted.
type Message struct {
	ID         string
	From       string
	To         []string // one, or several for a group MMS
	Group      bool
	Text       string
	MediaURLs  []string
	ProfileID  string
	WebhookURL string
	Created    time.Time
}

// CreateRequest is what a responder sees of a create call.
type CreateRequest struct {
	From    string
	To      []string
	Text    string
	Group   bool
	Attempt int // 1-based count of create calls
}

// SetResponder installs a hook consulted on every create call after
// FailNext's queue is empty: a non-nil Failure is answered instead of the
// normal handling. Nil removes it.
func (s *Server) SetResponder(fn func(CreateRequest) *Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.responder = fn
}

// Failure scripts the answer to the next create call.
type Failure struct {
	Status int    // HTTP status; 0 with a Delay: accept late
	Code   string // Telnyx error code, e.g. "10011", "40300"
	Title  string // empty: Telnyx's title for Code
	Detail string
	// Delay holds the answer back, to make clients time out. The fake
	// keeps going after the client has given up, as Telnyx would.
	Delay time.Duration
	// Accept stores the message before the (delayed, possibly failed)
	// answer: the send happened but the client cannot know.
	Accept bool
}

type mediaItem struct {
	contentType string
	data        []byte
}

// Start runs a fake Telnyx for the length of the test.
func Start(t testing.TB, apiKey string) *Server {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{APIKey: apiKey, PublicKey: base64.StdEncoding.EncodeToString(pub), priv: priv,
		media: map[string]mediaItem{}, closing: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.listener = proctest.NewSwitchListener(s.srv.Listener)
	s.srv.Listener = s.listener
	s.srv.Start()
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server; delayed answers are abandoned.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.hooks.Wait()
	})
}

// CloseAfterEachAnswer makes the fake close every connection once it has
// answered (no keep-alive). An outage (SetUnreachable) then always meets a
// client that dials, and is refused before it has sent anything; with
// keep-alive, a request written into a pooled connection at the instant
// the outage cuts it gets EOF, and nobody can tell whether Telnyx took it.
// Telnyx has no look-up of a message by the sender's key, so the adapter
// then waits for a webhook to settle it (up to two minutes), which is
// right, but not what a check of recovery after a clean outage measures.
func (s *Server) CloseAfterEachAnswer() { s.srv.Config.SetKeepAlivesEnabled(false) }

// SetUnreachable(true) makes the fake unreachable, as in an outage: new
// connections are refused and those open are cut (requests in progress
// get no answer). SetUnreachable(false) listens on the same address again.
func (s *Server) SetUnreachable(down bool) error {
	if err := s.listener.Set(!down); err != nil {
		return err
	}
	if down {
		s.srv.CloseClientConnections()
	}
	return nil
}

// Messages returns the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	copy(out, s.messages)
	return out
}

// WaitMessages waits until at least n messages were accepted.
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
				fmt.Fprintf(&b, "\n\t%s %s -> %v: %q", m.ID, m.From, m.To, m.Text)
			}
			t.Fatalf("telnyxtest: want %d messages within %v, got %d (after %d create calls):%s", n, timeout, len(msgs), s.Requests(), b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Requests counts every create call, failed or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// FailNext queues scripted answers for the next create calls.
func (s *Server) FailNext(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, f...)
}

// SetSendWebhooks turns on posting message.sent to the webhook_url of
// each message accepted from now on, retried until the gateway takes it
// (for a minute), as Telnyx retries.
func (s *Server) SetSendWebhooks(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendHooks = on
}

// AddMedia stores an inbound attachment and returns its URL, which needs
// the API key.
func (s *Server) AddMedia(contentType string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	s.media[id] = mediaItem{contentType, data}
	return s.URL + "/v2/media/" + id
}

// MediaFetches counts media downloads that were served.
func (s *Server) MediaFetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mediaFetches
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// titles are Telnyx's titles for the codes the fake answers with.
var titles = map[string]string{
	"10004": "Missing required parameter",
	"10009": "Authentication failed",
	"10011": "Too many requests",
	"10007": "Unexpected error",
	"10015": "Bad Request",
	"10016": "Phone number must be in +E.164 format",
	"10013": "Missing association",
	"40300": "Blocked due to STOP message",
	"40305": "Invalid 'from' address",
	"40310": "Invalid 'to' address",
	"40001": "Not routable",
	"40003": "Blocked as spam - permanent",
}

type apiError struct {
	Code   string            `json:"code"`
	Title  string            `json:"title"`
	Detail string            `json:"detail,omitempty"`
	Source map[string]string `json:"source,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, detail, pointer string) {
	writeErrorTitled(w, status, code, titles[code], detail, pointer)
}

func writeErrorTitled(w http.ResponseWriter, status int, code, title, detail, pointer string) {
	e := apiError{Code: code, Title: title, Detail: detail}
	if pointer != "" {
		e.Source = map[string]string{"pointer": pointer}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []apiError{e}})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v2/messages" || r.URL.Path == "/v2/messages/group_mms":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeError(w, http.StatusMethodNotAllowed, "10015", "method not allowed", "")
			return
		}
		if !s.authorized(w, r) {
			return
		}
		s.handleCreate(w, r, r.URL.Path == "/v2/messages/group_mms")
	case strings.HasPrefix(r.URL.Path, "/v2/media/") && r.Method == http.MethodGet:
		if !s.authorized(w, r) {
			return
		}
		s.mu.Lock()
		m, ok := s.media[strings.TrimPrefix(r.URL.Path, "/v2/media/")]
		if ok {
			s.mediaFetches++
		}
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusNotFound, "10005", "The requested resource or URL could not be found.", "")
			return
		}
		w.Header().Set("Content-Type", m.contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
		_, _ = w.Write(m.data)
	default:
		writeError(w, http.StatusNotFound, "10005", "The requested resource or URL could not be found.", "")
	}
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+s.APIKey {
		writeError(w, http.StatusUnauthorized, "10009", "The required authentication headers were either invalid or not included in the request.", "")
		return false
	}
	return true
}

type createBody struct {
	From               string          `json:"from"`
	To                 json.RawMessage `json:"to"`
	Text               string          `json:"text"`
	MediaURLs          []string        `json:"media_urls"`
	MessagingProfileID string          `json:"messaging_profile_id"`
	WebhookURL         string          `json:"webhook_url"`
	Type               string          `json:"type"`
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, group bool) {
	s.mu.Lock()
	s.requests++
	attempt := s.requests
	var f *Failure
	if len(s.failures) > 0 {
		f = &s.failures[0]
		s.failures = s.failures[1:]
	}
	responder := s.responder
	s.mu.Unlock()
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "10014", "The request failed because the server does not support the media type.", "")
		return
	}
	var b createBody
	if err := json.Unmarshal(raw, &b); err != nil {
		writeError(w, http.StatusBadRequest, "10015", "The request body is not valid JSON.", "")
		return
	}
	if f == nil && responder != nil {
		req := CreateRequest{From: b.From, Text: b.Text, Group: group, Attempt: attempt}
		if group {
			_ = json.Unmarshal(b.To, &req.To)
		} else {
			var one string
			_ = json.Unmarshal(b.To, &one)
			req.To = []string{one}
		}
		f = responder(req)
	}
	if f != nil {
		if f.Accept {
			s.accept(b, group)
		}
		select {
		case <-time.After(f.Delay):
		case <-s.closing:
			return
		case <-r.Context().Done():
			return // the client gave up; the fake has done what it did
		}
		if f.Status == 0 {
			if !f.Accept {
				m, status, code, detail, ptr := s.validate(b, group)
				if status != 0 {
					writeError(w, status, code, detail, ptr)
					return
				}
				s.store(m)
				writeMessage(w, m)
				return
			}
			s.mu.Lock()
			m := s.messages[len(s.messages)-1]
			s.mu.Unlock()
			writeMessage(w, m)
			return
		}
		title := f.Title
		if title == "" {
			title = titles[f.Code]
		}
		writeErrorTitled(w, f.Status, f.Code, title, f.Detail, "")
		return
	}
	m, status, code, detail, ptr := s.validate(b, group)
	if status != 0 {
		writeError(w, status, code, detail, ptr)
		return
	}
	s.store(m)
	writeMessage(w, m)
}

// accept stores a scripted message without validation.
func (s *Server) accept(b createBody, group bool) {
	m, _, _, _, _ := s.validate(b, group)
	s.store(m)
}

// validate checks a create call the way Telnyx does and returns the
// message it becomes, or the error answer.
func (s *Server) validate(b createBody, group bool) (m Message, status int, code, detail, pointer string) {
	m = Message{ID: newID(), From: b.From, Group: group, Text: b.Text, MediaURLs: b.MediaURLs,
		ProfileID: b.MessagingProfileID, WebhookURL: b.WebhookURL, Created: time.Now()}
	if group {
		if err := json.Unmarshal(b.To, &m.To); err != nil {
			return m, 400, "10015", "'to' must be a list of numbers for a group MMS.", "/to"
		}
	} else {
		var one string
		if err := json.Unmarshal(b.To, &one); err != nil {
			return m, 400, "10015", "'to' must be a phone number.", "/to"
		}
		if one != "" {
			m.To = []string{one}
		}
	}
	switch {
	case b.From == "":
		return m, 400, "10004", "The 'from' parameter is required.", "/from"
	case !e164.MatchString(b.From):
		return m, 400, "40305", "The 'from' address should be a +E.164 number owned by you.", "/from"
	case len(m.To) == 0:
		return m, 400, "10004", "The 'to' parameter is required.", "/to"
	case b.Text == "" && len(b.MediaURLs) == 0:
		return m, 400, "10004", "Either 'text' or 'media_urls' is required.", "/text"
	case s.ProfileID != "" && b.MessagingProfileID != "" && b.MessagingProfileID != s.ProfileID:
		return m, 422, "10013", "The messaging profile does not exist.", "/messaging_profile_id"
	}
	if group && len(m.To) > 8 {
		return m, 422, "10015", "A group MMS takes at most 8 recipients.", "/to"
	}
	for _, to := range m.To {
		if !e164.MatchString(to) {
			return m, 400, "40310", fmt.Sprintf("%q is not a valid +E.164 destination.", to), "/to"
		}
		if group && !(strings.HasPrefix(to, "+1") && len(to) == 12) {
			return m, 422, "40310", "Group MMS is available between US and Canadian numbers only.", "/to"
		}
	}
	if group && !(strings.HasPrefix(b.From, "+1") && len(b.From) == 12) {
		return m, 422, "40305", "Group MMS is available from US and Canadian numbers only.", "/from"
	}
	return m, 0, "", "", ""
}

func (s *Server) store(m Message) {
	s.mu.Lock()
	s.messages = append(s.messages, m)
	hook := s.sendHooks && m.WebhookURL != ""
	s.mu.Unlock()
	if hook {
		s.hooks.Add(1)
		go func() {
			defer s.hooks.Done()
			s.deliverHook(m.WebhookURL, s.Sent(m))
		}()
	}
}

// hookRetry is how long the fake keeps retrying a webhook that was not
// answered 2xx, as Telnyx retries failed deliveries.
const hookRetry = time.Minute

// deliverHook posts body to url, again after a failure (backing off from
// 100 ms to 2 s) until it is taken, the server closes, or hookRetry passed.
func (s *Server) deliverHook(url string, body []byte) {
	deadline := time.Now().Add(hookRetry)
	backoff := 100 * time.Millisecond
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, _, err := s.Post(ctx, url, body)
		cancel()
		if err == nil && code/100 == 2 {
			return
		}
		select {
		case <-time.After(backoff):
		case <-s.closing:
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// resource is the message as the API returns it and webhooks carry it.
func resource(m Message, status string, errCode string) map[string]any {
	to := make([]map[string]any, len(m.To))
	for i, n := range m.To {
		to[i] = map[string]any{"phone_number": n, "status": status, "carrier": "T-Mobile USA", "line_type": "Wireless"}
	}
	typ := "SMS"
	media := []map[string]any{}
	for _, u := range m.MediaURLs {
		media = append(media, map[string]any{"url": u, "content_type": nil, "sha256": nil, "size": nil})
	}
	if len(m.MediaURLs) > 0 || m.Group {
		typ = "MMS"
	}
	errs := []map[string]any{}
	if errCode != "" {
		errs = append(errs, map[string]any{"code": errCode, "title": titles[errCode]})
	}
	var text any = m.Text
	if m.Text == "" {
		text = nil
	}
	return map[string]any{
		"record_type": "message", "id": m.ID, "direction": "outbound", "type": typ,
		"messaging_profile_id": m.ProfileID,
		"from":                 map[string]any{"phone_number": m.From, "carrier": "Telnyx", "line_type": "Wireless"},
		"to":                   to, "cc": []any{}, "text": text, "media": media, "webhook_url": m.WebhookURL,
		"encoding": "GSM-7", "parts": 1, "errors": errs, "received_at": m.Created.UTC().Format(time.RFC3339Nano),
		"sent_at": nil, "completed_at": nil,
	}
}

func writeMessage(w http.ResponseWriter, m Message) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": resource(m, "queued", "")})
}

// event wraps a payload the way Telnyx posts webhooks.
func event(typ string, payload map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{
		"data": map[string]any{"event_type": typ, "id": newID(), "occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
			"payload": payload, "record_type": "event"},
		"meta": map[string]any{"attempt": 1, "delivered_to": ""},
	})
	return b
}

// Sent is the message.sent event for m.
func (s *Server) Sent(m Message) []byte { return event("message.sent", resource(m, "sent", "")) }

// Finalized is the message.finalized event for m with every recipient's
// status (delivered, delivery_failed, sending_failed…) and, for a
// failure, the error code.
func (s *Server) Finalized(m Message, status, errCode string) []byte {
	return event("message.finalized", resource(m, status, errCode))
}

// Received is a message.received event: from sent text (and media, URLs
// from AddMedia) to the numbers in to — one for a direct text, several
// for a group MMS.
func (s *Server) Received(from string, to []string, text string, media ...string) []byte {
	return s.ReceivedID(newID(), from, to, text, media...)
}

// ReceivedID is Received with the message id given.
func (s *Server) ReceivedID(id, from string, to []string, text string, media ...string) []byte {
	tos := make([]map[string]any, len(to))
	for i, n := range to {
		tos[i] = map[string]any{"phone_number": n, "status": "webhook_delivered", "carrier": "Telnyx", "line_type": "Wireless"}
	}
	typ := "SMS"
	ms := []map[string]any{}
	for _, u := range media {
		s.mu.Lock()
		ct := s.media[u[strings.LastIndexByte(u, '/')+1:]].contentType
		s.mu.Unlock()
		ms = append(ms, map[string]any{"url": u, "content_type": ct, "size": 0, "hash_sha256": ""})
	}
	if len(media) > 0 || len(to) > 1 {
		typ = "MMS"
	}
	return event("message.received", map[string]any{
		"record_type": "message", "id": id, "direction": "inbound", "type": typ,
		"from": map[string]any{"phone_number": from, "carrier": "T-Mobile USA", "line_type": "Wireless"},
		"to":   tos, "cc": []any{}, "text": text, "media": ms, "encoding": "GSM-7", "parts": 1,
		"received_at": time.Now().UTC().Format(time.RFC3339Nano), "errors": []any{},
	})
}

// Sign returns telnyx-signature-ed25519 for body at timestamp ts (Unix
// seconds) with the fake's key.
func (s *Server) Sign(ts int64, body []byte) string {
	msg := append([]byte(strconv.FormatInt(ts, 10)+"|"), body...)
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.priv, msg))
}

// Post delivers body to url as Telnyx does, signed now.
func (s *Server) Post(ctx context.Context, url string, body []byte) (int, string, error) {
	ts := time.Now().Unix()
	return PostSigned(ctx, url, ts, s.Sign(ts, body), body)
}

// PostWebhook signs body and POSTs it to url; it fails the test if the
// request cannot be made.
func (s *Server) PostWebhook(t testing.TB, url string, body []byte) (int, string) {
	t.Helper()
	code, answer, err := s.Post(context.Background(), url, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, answer
}

// PostSigned POSTs body with the given timestamp and signature (forged
// or replayed ones, for tests).
func PostSigned(ctx context.Context, url string, ts int64, signature string, body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "telnyx-webhooks")
	req.Header.Set("telnyx-timestamp", strconv.FormatInt(ts, 10))
	if signature != "" {
		req.Header.Set("telnyx-signature-ed25519", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("webhook %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
