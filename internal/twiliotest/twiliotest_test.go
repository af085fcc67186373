package twiliotest_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "0123456789abcdef0123456789abcdef"
	fromNumber = "+15005550006"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
)

var smSID = regexp.MustCompile(`^SM[0-9a-f]{32}$`)

// rewrite sends every request to the fake, whatever host twilio-go built.
type rewrite struct{ target *url.URL }

func (rw rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = rw.target.Scheme, rw.target.Host, rw.target.Host
	return http.DefaultTransport.RoundTrip(r)
}

// newClient is how the product reaches the fake: twilio-go ignores
// ClientParams.Username/Password once Client is set, so credentials and
// the account SID go on the client.Client.
func newClient(t *testing.T, s *twiliotest.Server, sid, token string, timeout time.Duration) *twilio.RestClient {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &client.Client{
		Credentials: client.NewCredentials(sid, token),
		HTTPClient:  &http.Client{Transport: rewrite{u}, Timeout: timeout},
	}
	c.SetAccountSid(sid)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
}

func send(tc *twilio.RestClient, to, body string) (*api.ApiV2010Message, error) {
	p := &api.CreateMessageParams{}
	p.SetFrom(fromNumber).SetTo(to).SetBody(body)
	return tc.Api.CreateMessage(p)
}

func restError(t *testing.T, err error) *client.TwilioRestError {
	t.Helper()
	var re *client.TwilioRestError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *client.TwilioRestError", err, err)
	}
	return re
}

func TestCreateMessage(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)

	p := &api.CreateMessageParams{}
	p.SetFrom(fromNumber).SetTo("+15551234567").SetBody("hello").SetStatusCallback("https://gw.example/status")
	m, err := tc.Api.CreateMessage(p)
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	if m.Sid == nil || !smSID.MatchString(*m.Sid) {
		t.Errorf("sid = %v, want SM + 32 hex", m.Sid)
	}
	for name, got := range map[string]*string{
		"status": m.Status, "num_segments": m.NumSegments, "num_media": m.NumMedia,
		"direction": m.Direction, "api_version": m.ApiVersion, "from": m.From, "to": m.To,
		"body": m.Body, "account_sid": m.AccountSid, "price_unit": m.PriceUnit,
	} {
		want := map[string]string{
			"status": "queued", "num_segments": "1", "num_media": "0",
			"direction": "outbound-api", "api_version": "2010-04-01", "from": fromNumber,
			"to": "+15551234567", "body": "hello", "account_sid": accountSID, "price_unit": "USD",
		}[name]
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %q", name, got, want)
		}
	}
	if m.DateSent != nil || m.Price != nil || m.ErrorCode != nil || m.ErrorMessage != nil || m.MessagingServiceSid != nil {
		t.Errorf("date_sent/price/error_code/error_message/messaging_service_sid should be null: %+v", m)
	}
	if m.DateCreated == nil {
		t.Fatal("no date_created")
	}
	if _, err := time.Parse(time.RFC1123Z, *m.DateCreated); err != nil || !strings.HasSuffix(*m.DateCreated, "+0000") {
		t.Errorf("date_created %q is not RFC 1123 in GMT: %v", *m.DateCreated, err)
	}
	wantURI := "/2010-04-01/Accounts/" + accountSID + "/Messages/" + *m.Sid + ".json"
	if m.Uri == nil || *m.Uri != wantURI {
		t.Errorf("uri = %v, want %s", m.Uri, wantURI)
	}
	if m.SubresourceUris == nil || (*m.SubresourceUris)["media"] != strings.TrimSuffix(wantURI, ".json")+"/Media.json" {
		t.Errorf("subresource_uris = %v", m.SubresourceUris)
	}

	got := s.WaitMessages(t, 1, time.Second)
	if g := got[0]; g.SID != *m.Sid || g.StatusCallback != "https://gw.example/status" || g.NumSegments != 1 || g.Body != "hello" {
		t.Errorf("stored %+v", g)
	}
	if s.Requests() != 1 {
		t.Errorf("Requests = %d, want 1", s.Requests())
	}
}

func TestCreateViaMessagingService(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)

	p := &api.CreateMessageParams{}
	p.SetMessagingServiceSid(serviceSID).SetTo("+15551234567").SetBody("hi")
	m, err := tc.Api.CreateMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	// Twilio has not picked a sender yet: accepted, from null, 0 segments.
	if *m.Status != "accepted" || m.From != nil || *m.NumSegments != "0" || *m.MessagingServiceSid != serviceSID {
		t.Errorf("got status=%v from=%v num_segments=%v service=%v", *m.Status, m.From, *m.NumSegments, *m.MessagingServiceSid)
	}
}

func TestCreateMMS(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)

	p := &api.CreateMessageParams{}
	p.SetFrom(fromNumber).SetTo("+15551234567").SetMediaUrl([]string{"https://gw.example/a.jpg", "https://gw.example/b.png"})
	m, err := tc.Api.CreateMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*m.Sid, "MM") || *m.NumMedia != "2" || *m.NumSegments != "1" {
		t.Errorf("sid=%s num_media=%s num_segments=%s", *m.Sid, *m.NumMedia, *m.NumSegments)
	}
	if got := s.Messages()[0].MediaURLs; len(got) != 2 || got[1] != "https://gw.example/b.png" {
		t.Errorf("MediaURLs = %v", got)
	}
}

func TestValidation(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)

	tests := []struct {
		name          string
		from, to, svc string
		body          string
		code          int
		message       string
	}{
		{"no To", fromNumber, "", "", "x", 21604, "A 'To' phone number is required."},
		{"To not E.164", fromNumber, "5551234", "", "x", 21211, "Invalid 'To' Phone Number: 5551234"},
		{"To with leading zero", fromNumber, "+05551234", "", "x", 21211, "Invalid 'To' Phone Number: +05551234"},
		{"no From nor service", "", "+15551234567", "", "x", 21603, "A 'From' phone number is required."},
		{"no body nor media", fromNumber, "+15551234567", "", "", 21619, "A text message body or media urls must be specified."},
		{"body over 1600", fromNumber, "+15551234567", "", strings.Repeat("a", 1601), 21617, "The concatenated message body exceeds the 1600 character limit."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &api.CreateMessageParams{}
			if tt.from != "" {
				p.SetFrom(tt.from)
			}
			if tt.to != "" {
				p.SetTo(tt.to)
			}
			if tt.body != "" {
				p.SetBody(tt.body)
			}
			_, err := tc.Api.CreateMessage(p)
			re := restError(t, err)
			if re.Status != 400 || re.Code != tt.code || re.Message != tt.message {
				t.Errorf("got %d/%d %q, want 400/%d %q", re.Status, re.Code, re.Message, tt.code, tt.message)
			}
		})
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d invalid messages were stored", n)
	}
	if s.Requests() != len(tests) {
		t.Errorf("Requests = %d, want %d", s.Requests(), len(tests))
	}
	// 1600 exactly is fine, and counts characters, not bytes.
	if _, err := send(tc, "+15551234567", strings.Repeat("ж", 1600)); err != nil {
		t.Errorf("1600 characters: %v", err)
	}
}

func TestScriptedFailures(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)

	s.FailNext(
		twiliotest.Failure{Status: 429, Code: 20429},
		twiliotest.Failure{Status: 400, Code: 21610},
		twiliotest.Failure{Status: 400, Code: 21211},
		twiliotest.Failure{Status: 503, Code: 20503, Message: "custom"},
	)
	want := []struct {
		status, code int
		message      string
	}{
		{429, 20429, "Too Many Requests"},
		{400, 21610, "Attempt to send to unsubscribed recipient"},
		{400, 21211, "The 'To' number +15551234567 is not a valid phone number."},
		{503, 20503, "custom"},
	}
	for _, w := range want {
		_, err := send(tc, "+15551234567", "hi")
		re := restError(t, err)
		if re.Status != w.status || re.Code != w.code || re.Message != w.message ||
			re.MoreInfo != "https://www.twilio.com/docs/errors/"+itoa(w.code) {
			t.Errorf("got %+v, want %+v", re, w)
		}
	}
	if _, err := send(tc, "+15551234567", "hi"); err != nil {
		t.Fatalf("queue should be empty now: %v", err)
	}
	if s.Requests() != 5 || len(s.Messages()) != 1 {
		t.Errorf("Requests=%d messages=%d, want 5 and 1", s.Requests(), len(s.Messages()))
	}

	// The responder comes before the queue.
	s.FailNext(twiliotest.Failure{Status: 500, Code: 20500})
	var seen []twiliotest.CreateRequest
	var mu sync.Mutex
	s.SetResponder(func(r twiliotest.CreateRequest) *twiliotest.Failure {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r)
		if r.To == "+15550000000" {
			return &twiliotest.Failure{Status: 400, Code: 21614}
		}
		return nil
	})
	_, err := send(tc, "+15550000000", "x")
	if re := restError(t, err); re.Code != 21614 || re.Message != "'To' number is not a valid mobile number" {
		t.Errorf("responder: got %+v", re)
	}
	_, err = send(tc, "+15551234567", "x")
	if re := restError(t, err); re.Code != 20500 || re.Status != 500 || re.Message != "Internal Server Error" {
		t.Errorf("queue after responder: got %+v", re)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0].Attempt != 6 || seen[1].Attempt != 7 || seen[0].From != fromNumber || seen[0].Body != "x" {
		t.Errorf("responder saw %+v", seen)
	}
}

// The error body must be byte-for-byte what Twilio documents.
func TestErrorBodyShape(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	s.FailNext(twiliotest.Failure{Status: 429, Code: 20429})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/2010-04-01/Accounts/"+accountSID+"/Messages.json",
		strings.NewReader(url.Values{"To": {"+15551234567"}, "From": {fromNumber}, "Body": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(accountSID, authToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	const want = `{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}`
	if resp.StatusCode != 429 || string(b) != want {
		t.Errorf("got %d %s\nwant 429 %s", resp.StatusCode, b, want)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestAuth(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	const other = "ACffffffffffffffffffffffffffffffff"
	tests := []struct {
		name       string
		sid, token string
		path       string // PathAccountSid; "" = the client's
		status     int
		code       int
	}{
		{"wrong token", accountSID, "ffffffffffffffffffffffffffffffff", "", 401, 20003},
		{"unknown account", other, authToken, "", 401, 20003},
		{"another account in path", accountSID, authToken, other, 404, 20404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newClient(t, s, tt.sid, tt.token, 5*time.Second)
			p := &api.CreateMessageParams{}
			p.SetFrom(fromNumber).SetTo("+15551234567").SetBody("x")
			if tt.path != "" {
				p.SetPathAccountSid(tt.path)
			}
			_, err := tc.Api.CreateMessage(p)
			re := restError(t, err)
			if re.Status != tt.status || re.Code != tt.code {
				t.Errorf("got %d/%d %q, want %d/%d", re.Status, re.Code, re.Message, tt.status, tt.code)
			}
			if tt.code == 20003 && re.Message != "Authenticate" {
				t.Errorf("message %q", re.Message)
			}
			if tt.code == 20404 && re.Message != "The requested resource /2010-04-01/Accounts/"+other+"/Messages.json was not found" {
				t.Errorf("message %q", re.Message)
			}
		})
	}
	// No credentials at all: twilio-go only sends basic auth when both are set.
	resp, err := http.Post(s.URL+"/2010-04-01/Accounts/"+accountSID+"/Messages.json", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no auth: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if len(s.Messages()) != 0 || s.Requests() != 4 {
		t.Errorf("messages=%d requests=%d, want 0 and 4", len(s.Messages()), s.Requests())
	}
}

func TestListAndFetch(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	s.SetSendRate(0) // every message sent at once: the DateSent filter sees them all
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)

	var sids []string
	for i, to := range []string{"+15551110001", "+15551110002", "+15551110001", "+15551110002", "+15551110001"} {
		m, err := send(tc, to, "msg "+itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		sids = append(sids, *m.Sid)
	}

	// PageSize 2 makes twilio-go follow next_page_uri twice.
	p := &api.ListMessageParams{}
	p.SetPageSize(2)
	all, err := tc.Api.ListMessage(p)
	if err != nil {
		t.Fatalf("ListMessage: %v", err)
	}
	if len(all) != 5 {
		t.Fatalf("listed %d, want 5", len(all))
	}
	for i, m := range all { // newest first
		if *m.Sid != sids[len(sids)-1-i] {
			t.Errorf("list[%d] = %s, want %s", i, *m.Sid, sids[len(sids)-1-i])
		}
	}

	p = &api.ListMessageParams{}
	p.SetTo("+15551110001").SetDateSent(time.Now().UTC())
	some, err := tc.Api.ListMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(some) != 3 || *some[0].Body != "msg 4" || *some[2].Body != "msg 0" {
		t.Errorf("filtered list: %d messages", len(some))
	}
	p = &api.ListMessageParams{}
	p.SetDateSent(time.Now().UTC().AddDate(0, 0, -2))
	if none, err := tc.Api.ListMessage(p); err != nil || len(none) != 0 {
		t.Errorf("DateSent two days ago: %d messages, %v", len(none), err)
	}

	page, err := tc.Api.PageMessage(&api.ListMessageParams{}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if page.PageSize != 50 || page.Page != 0 || page.Start != 0 || page.End != 4 || page.NextPageUri != nil ||
		page.FirstPageUri != "/2010-04-01/Accounts/"+accountSID+"/Messages.json?Page=0&PageSize=50" {
		t.Errorf("page: %+v", page)
	}

	m, err := tc.Api.FetchMessage(sids[2], nil)
	if err != nil {
		t.Fatalf("FetchMessage: %v", err)
	}
	if *m.Sid != sids[2] || *m.Body != "msg 2" {
		t.Errorf("fetched %s %q", *m.Sid, *m.Body)
	}
	missing := "SM00000000000000000000000000000000"
	_, err = tc.Api.FetchMessage(missing, nil)
	re := restError(t, err)
	if re.Status != 404 || re.Code != 20404 ||
		re.Message != "The requested resource /2010-04-01/Accounts/"+accountSID+"/Messages/"+missing+".json was not found" {
		t.Errorf("fetch missing: %+v", re)
	}
}

// A message waits in its number's queue, queued with date_sent null, and
// the DateSent filters do not see it until it was sent, as on Twilio.
func TestSendingQueue(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)
	s.SetSendRate(5) // one every 200ms per number
	today := time.Now().UTC()
	sentToday := func() int {
		t.Helper()
		p := &api.ListMessageParams{}
		p.SetDateSent(today)
		l, err := tc.Api.ListMessage(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range l {
			if m.DateSent == nil || *m.Status != "sent" {
				t.Errorf("DateSent filter matched %s, status %s, date_sent %v", *m.Sid, *m.Status, m.DateSent)
			}
		}
		return len(l)
	}

	first, err := send(tc, "+15551234567", "first")
	if err != nil {
		t.Fatal(err)
	}
	second, err := send(tc, "+15557654321", "second") // same number: waits its turn
	if err != nil {
		t.Fatal(err)
	}
	if *first.Status != "queued" || first.DateSent != nil {
		t.Errorf("create answered %s, date_sent %v; want queued, null", *first.Status, first.DateSent)
	}
	all, err := tc.Api.ListMessage(&api.ListMessageParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || *all[0].Sid != *second.Sid || *all[0].Status != "queued" || all[0].DateSent != nil {
		t.Fatalf("unfiltered list: %d messages, newest %v %v %v", len(all), *all[0].Sid, *all[0].Status, all[0].DateSent)
	}
	if !proctest.Poll(5*time.Second, 10*time.Millisecond, func() bool { return sentToday() == 2 }) {
		t.Fatalf("DateSent matches %d messages, want 2 once both were sent", sentToday())
	}
	m, err := tc.Api.FetchMessage(*second.Sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	created, _ := time.Parse(time.RFC1123Z, *m.DateCreated)
	sent, err := time.Parse(time.RFC1123Z, *m.DateSent)
	if err != nil || *m.Status != "sent" || sent.Before(created) {
		t.Errorf("second: status %s, created %s, sent %s (%v)", *m.Status, *m.DateCreated, *m.DateSent, err)
	}
	if got := s.Messages(); got[0].Sent.IsZero() || got[1].Sent.Sub(got[0].Sent) < 150*time.Millisecond {
		t.Errorf("sent at %v and %v: want 200ms apart (5 per second)", got[0].Sent, got[1].Sent)
	}

	// Held: queued however long it takes, then sent after the release.
	s.HoldSending()
	held, err := send(tc, "+15551234567", "held")
	if err != nil {
		t.Fatal(err)
	}
	p := &api.CreateMessageParams{}
	p.SetMessagingServiceSid(serviceSID).SetTo("+15551234567").SetBody("via service")
	viaService, err := tc.Api.CreateMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // longer than the rate would hold it
	for sid, want := range map[string]string{*held.Sid: "queued", *viaService.Sid: "accepted"} {
		if m, err := tc.Api.FetchMessage(sid, nil); err != nil || *m.Status != want || m.DateSent != nil {
			t.Errorf("held %s: %v %v (%v), want %s and no date_sent", sid, *m.Status, m.DateSent, err, want)
		}
	}
	if n := sentToday(); n != 2 {
		t.Errorf("DateSent matches %d messages while two are held, want 2", n)
	}
	s.ReleaseSending()
	if !proctest.Poll(5*time.Second, 10*time.Millisecond, func() bool { return sentToday() == 4 }) {
		t.Errorf("DateSent matches %d messages after the release, want 4", sentToday())
	}
}

func TestMedia(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	jpeg := []byte("\xff\xd8\xff\xe0 not really a jpeg")
	u := s.AddMedia("image/jpeg", jpeg)
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(s.URL) + `/2010-04-01/Accounts/` + accountSID + `/Messages/MM[0-9a-f]{32}/Media/ME[0-9a-f]{32}$`).MatchString(u) {
		t.Fatalf("media URL %s", u)
	}
	get := func(user, pass string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, b := get("", ""); resp.StatusCode != 401 || !strings.Contains(string(b), `"code":20003`) {
		t.Errorf("no auth: %d %s", resp.StatusCode, b)
	}
	if resp, _ := get(accountSID, "wrong"); resp.StatusCode != 401 {
		t.Errorf("bad token: %d", resp.StatusCode)
	}
	if s.MediaFetches() != 0 {
		t.Errorf("MediaFetches = %d after refusals", s.MediaFetches())
	}
	resp, b := get(accountSID, authToken)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || string(b) != string(jpeg) {
		t.Errorf("got %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if s.MediaFetches() != 1 {
		t.Errorf("MediaFetches = %d, want 1", s.MediaFetches())
	}
}

func TestSignMatchesTwilioGo(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	const hook = "https://gw.example.com:8443/twilio/sms?tenant=a"
	png := s.AddMedia("image/png", []byte("png"))
	gif := s.AddMedia("image/gif", []byte("gif"))
	tests := []struct {
		name   string
		params url.Values
	}{
		{"inbound SMS", s.InboundSMS("+15551234567", fromNumber, "hello & ünïcødé ✓")},
		{"inbound MMS, MediaUrl0/1", s.InboundSMS("+15551234567", fromNumber, "", png, gif)},
		{"status callback", s.StatusCallback(twiliotest.Message{SID: twiliotest.NewSID("SM"), From: fromNumber, To: "+15551234567"}, "undelivered", 30003)},
		{"empty", url.Values{}},
	}
	v := client.NewRequestValidator(authToken)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := twiliotest.Sign(authToken, hook, tt.params)
			flat := map[string]string{}
			for k := range tt.params {
				flat[k] = tt.params.Get(k)
			}
			if !v.Validate(hook, flat, sig) {
				t.Errorf("twilio-go Validate rejects %s", sig)
			}
			if !v.ValidateBody(hook, []byte(tt.params.Encode()), sig) {
				t.Errorf("twilio-go ValidateBody rejects %s", sig)
			}
			if len(flat) == 0 {
				return
			}
			for k := range flat {
				tampered := map[string]string{}
				for k2, v2 := range flat {
					tampered[k2] = v2
				}
				tampered[k] += "x"
				if v.Validate(hook, tampered, sig) {
					t.Errorf("tampered %s still validates", k)
				}
				break
			}
			if v.Validate(hook, flat, twiliotest.Sign("wrong-token", hook, tt.params)) {
				t.Error("signature with another token validates")
			}
		})
	}
}

// A repeated key contributes each distinct value, sorted (twilio-python and
// twilio-node agree). twilio-go's ValidateBody keeps only the first value,
// so it cannot check such requests; Twilio's SMS webhooks never send them.
func TestSignRepeatedKey(t *testing.T) {
	const hook = "https://gw.example.com/x"
	params := url.Values{"B": {"2"}, "A": {"z", "y", "z"}}
	h := hmac.New(sha1.New, []byte(authToken))
	h.Write([]byte(hook + "Ay" + "Az" + "B2"))
	want := base64.StdEncoding.EncodeToString(h.Sum(nil))
	if got := twiliotest.Sign(authToken, hook, params); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	// twilio-go judges the same body by its first values only.
	v := client.NewRequestValidator(authToken)
	firstOnly := twiliotest.Sign(authToken, hook, url.Values{"A": {"z"}, "B": {"2"}})
	if v.ValidateBody(hook, []byte(params.Encode()), want) || !v.ValidateBody(hook, []byte(params.Encode()), firstOnly) {
		t.Log("twilio-go's handling of repeated keys changed; update the Sign doc")
	}
}

func TestSegments(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int
	}{
		{"160 GSM", strings.Repeat("a", 160), 1},
		{"161 GSM", strings.Repeat("a", 161), 2},
		{"306 GSM", strings.Repeat("a", 306), 2},
		{"307 GSM", strings.Repeat("a", 307), 3},
		{"ü é ñ are GSM basic", strings.Repeat("üéñÄ", 40), 1},
		{"80 € = 160 septets", strings.Repeat("€", 80), 1},
		{"81 € = 162 septets", strings.Repeat("€", 81), 2},
		{"{ counts 2", strings.Repeat("a", 159) + "{", 2},
		{"escape not split", strings.Repeat("a", 152) + "[" + strings.Repeat("a", 153), 3},
		{"70 Cyrillic", strings.Repeat("ж", 70), 1},
		{"71 Cyrillic", strings.Repeat("ж", 71), 2},
		{"134 Chinese", strings.Repeat("中", 134), 2},
		{"135 Chinese", strings.Repeat("中", 135), 3},
		{"200 UCS-2 = ceil(200/67)", strings.Repeat("ж", 200), 3},
		{"202 UCS-2", strings.Repeat("ж", 202), 4},
		{"one ç forces UCS-2", strings.Repeat("a", 70) + "ç", 2},
		{"emoji is 2 code units", "😀" + strings.Repeat("a", 68), 1},
		{"emoji is 2 code units, over", "😀" + strings.Repeat("a", 69), 2},
		{"empty", "", 1},
	}
	for _, tt := range tests {
		if got := twiliotest.CountSegments(tt.body); got != tt.want {
			t.Errorf("%s: CountSegments = %d, want %d", tt.name, got, tt.want)
		}
	}

	// And as twilio-go sees it.
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)
	for _, tt := range tests[:4] {
		m, err := send(tc, "+15551234567", tt.body)
		if err != nil {
			t.Fatal(err)
		}
		if *m.NumSegments != itoa(tt.want) {
			t.Errorf("%s: num_segments %s, want %d", tt.name, *m.NumSegments, tt.want)
		}
	}
}

func TestDelay(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	impatient := newClient(t, s, accountSID, authToken, 100*time.Millisecond)

	// A late failure: the client gives up, nothing is stored.
	s.FailNext(twiliotest.Failure{Status: 503, Code: 20503, Delay: time.Second})
	_, err := send(impatient, "+15551234567", "late failure")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a client timeout, got %v", err)
	}

	// An ambiguous success: the client times out, the message still goes.
	s.FailNext(twiliotest.Failure{Delay: 300 * time.Millisecond})
	if _, err := send(impatient, "+15551234567", "ambiguous"); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a client timeout, got %v", err)
	}
	if got := s.WaitMessages(t, 1, 5*time.Second); got[0].Body != "ambiguous" {
		t.Errorf("stored %q", got[0].Body)
	}

	// Accepted, then a 500 arrives in time: the client sees an error, the
	// message was sent anyway.
	patient := newClient(t, s, accountSID, authToken, 5*time.Second)
	s.FailNext(twiliotest.Failure{Status: 500, Code: 20500, Delay: 50 * time.Millisecond, Accept: true})
	_, err = send(patient, "+15551234567", "sent but 500")
	if re := restError(t, err); re.Status != 500 {
		t.Errorf("got %+v", re)
	}
	if got := s.Messages(); len(got) != 2 || got[1].Body != "sent but 500" {
		t.Errorf("messages %+v", got)
	}
	if s.Requests() != 3 {
		t.Errorf("Requests = %d, want 3", s.Requests())
	}
}

func TestCloseAbandonsDelays(t *testing.T) {
	s, err := twiliotest.Listen("127.0.0.1:0", accountSID, authToken)
	if err != nil {
		t.Fatal(err)
	}
	s.FailNext(twiliotest.Failure{Status: 500, Code: 20500, Delay: time.Hour})
	tc := newClient(t, s, accountSID, authToken, 10*time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := send(tc, "+15551234567", "x")
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Requests() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := <-done; err == nil {
		t.Error("abandoned request succeeded")
	}
}

func TestConcurrencyAndLatency(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)
	s.SetLatency(200 * time.Millisecond)
	const n = 5
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := send(tc, "+15551234567", "c"+itoa(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if s.MaxInFlight() != n || len(s.Messages()) != n {
		t.Errorf("MaxInFlight=%d messages=%d, want %d", s.MaxInFlight(), len(s.Messages()), n)
	}
}

func TestWebhooks(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	s.SetInboundMessagingService(serviceSID)
	var mu sync.Mutex
	var got []url.Values
	validator := client.NewRequestValidator(authToken)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		full := "http://" + r.Host + r.URL.RequestURI()
		if !validator.ValidateBody(full, b, r.Header.Get("X-Twilio-Signature")) {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		v, _ := url.ParseQuery(string(b))
		mu.Lock()
		got = append(got, v)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, "<Response/>")
	}))
	t.Cleanup(gw.Close)

	m1 := s.AddMedia("image/jpeg", []byte("1"))
	m2 := s.AddMedia("video/mp4", []byte("2"))
	in := s.InboundSMS("+4915112345678", fromNumber, "", m1, m2)
	if status, body := s.PostWebhook(t, gw.URL+"/sms", in); status != 200 || body != "<Response/>" {
		t.Fatalf("inbound: %d %s", status, body)
	}
	if status, _ := twiliotest.PostSigned(t, gw.URL+"/sms", "AAAA", in); status != 403 {
		t.Errorf("bad signature: %d, want 403", status)
	}
	sms := s.InboundSMS("+15551234567", fromNumber, strings.Repeat("ж", 71))
	s.PostWebhook(t, gw.URL+"/sms", sms)

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("gateway accepted %d webhooks, want 2", len(got))
	}
	mms := got[0]
	sid := mms.Get("MessageSid")
	if !strings.HasPrefix(sid, "MM") || mms.Get("SmsSid") != sid || mms.Get("SmsMessageSid") != sid ||
		!strings.Contains(m1, "/Messages/"+sid+"/Media/") || !strings.Contains(m2, "/Messages/"+sid+"/Media/") {
		t.Errorf("MessageSid %s does not match media URLs %s %s", sid, m1, m2)
	}
	for k, want := range map[string]string{
		"NumMedia": "2", "MediaUrl0": m1, "MediaContentType0": "image/jpeg", "MediaUrl1": m2,
		"MediaContentType1": "video/mp4", "SmsStatus": "received", "ApiVersion": "2010-04-01",
		"AccountSid": accountSID, "MessagingServiceSid": serviceSID, "From": "+4915112345678",
		"To": fromNumber, "FromCountry": "DE", "ToCountry": "US", "NumSegments": "1",
	} {
		if mms.Get(k) != want {
			t.Errorf("inbound MMS %s = %q, want %q", k, mms.Get(k), want)
		}
	}
	if _, ok := mms["Body"]; !ok {
		t.Error("inbound MMS without Body parameter (Twilio sends it empty)")
	}
	if got[1].Get("NumSegments") != "2" || !strings.HasPrefix(got[1].Get("MessageSid"), "SM") || got[1].Get("NumMedia") != "0" {
		t.Errorf("inbound SMS: %v", got[1])
	}

	msg := twiliotest.Message{SID: twiliotest.NewSID("SM"), From: fromNumber, To: "+15551234567"}
	cb := s.StatusCallback(msg, "delivered", 0)
	if cb.Get("MessageStatus") != "delivered" || cb.Get("SmsStatus") != "delivered" || cb.Has("ErrorCode") ||
		!regexp.MustCompile(`^\d{10}$`).MatchString(cb.Get("RawDlrDoneDate")) || cb.Get("MessageSid") != msg.SID {
		t.Errorf("delivered callback: %v", cb)
	}
	cb = s.StatusCallback(msg, "undelivered", 30003)
	if cb.Get("ErrorCode") != "30003" || cb.Has("RawDlrDoneDate") {
		t.Errorf("undelivered callback: %v", cb)
	}
}

// The fake's JSON must carry every field twilio-go knows, so a field
// renamed on either side shows up here.
func TestResourceHasEveryModelField(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 5*time.Second)
	m, err := send(tc, "+15551234567", "x")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+*m.Uri, nil)
	req.SetBasicAuth(accountSID, authToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range modelFields() {
		if _, ok := raw[f]; !ok {
			t.Errorf("field %q missing from the fake's resource", f)
		}
	}
	for f := range raw {
		if !slices.Contains(modelFields(), f) {
			t.Errorf("fake sends %q, which twilio-go's model does not have", f)
		}
	}
}

// modelFields lists the JSON names of twilio-go's ApiV2010Message.
func modelFields() []string {
	var out []string
	typ := reflect.TypeFor[api.ApiV2010Message]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
