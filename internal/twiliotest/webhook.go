package twiliotest

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// webhookTimeout is how long Twilio waits for a webhook answer.
const webhookTimeout = 15 * time.Second

// Sign computes X-Twilio-Signature for a POST of params to url: the URL
// exactly as configured in Twilio, then key+value of every parameter in
// key order, HMAC-SHA1 keyed with the auth token, standard base64.
//
// A key with several values contributes key+value for each distinct value
// in sorted order, as twilio-python and twilio-node compute it. twilio-go's
// RequestValidator cannot check those: it keeps only the first value of
// each key. Twilio's SMS webhooks never repeat a key (media arrive as
// MediaUrl0, MediaUrl1…), so this only matters for hand-made requests.
func Sign(authToken, url string, params url.Values) string {
	var b strings.Builder
	b.WriteString(url)
	for _, k := range slices.Sorted(maps.Keys(params)) {
		vals := slices.Compact(slices.Sorted(slices.Values(params[k])))
		for _, v := range vals {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	h := hmac.New(sha1.New, []byte(authToken))
	h.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// PostForm POSTs params to url the way Twilio delivers a webhook, with
// signature as X-Twilio-Signature, and returns the answer. It is the
// building block for PostWebhook and PostSigned, usable outside tests.
func PostForm(ctx context.Context, url, signature string, params url.Values) (status int, body string, err error) {
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(params.Encode()))
	if err != nil {
		return 0, "", fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("X-Twilio-Signature", signature)
	req.Header.Set("I-Twilio-Idempotency-Token", NewSID(""))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("webhook %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, string(b), fmt.Errorf("webhook %s: read answer: %w", url, err)
	}
	return resp.StatusCode, string(b), nil
}

// PostWebhook signs params with the server's auth token and POSTs them to
// url; it fails the test if the request cannot be made. Call it from the
// test goroutine (or use PostForm elsewhere).
func (s *Server) PostWebhook(t testing.TB, url string, params url.Values) (int, string) {
	t.Helper()
	return PostSigned(t, url, Sign(s.AuthToken, url, params), params)
}

// PostSigned POSTs params to url with the given X-Twilio-Signature, for
// tests of bad signatures.
func PostSigned(t testing.TB, url, signature string, params url.Values) (int, string) {
	t.Helper()
	status, body, err := PostForm(context.Background(), url, signature, params)
	if err != nil {
		t.Fatalf("twiliotest: %v", err)
	}
	return status, body
}

// InboundSMS builds the parameters of Twilio's incoming-message webhook.
// With media (URLs from AddMedia, or any others) it is an MMS: the
// MessageSid is "MM…" (the one in the AddMedia URLs) and MediaUrlN /
// MediaContentTypeN describe each attachment.
func (s *Server) InboundSMS(from, to, body string, media ...string) url.Values {
	s.mu.Lock()
	service := s.inboundService
	sid := ""
	types := make([]string, len(media))
	for i, m := range media {
		types[i] = "application/octet-stream"
		u, err := url.Parse(m)
		if err != nil {
			continue
		}
		if item, ok := s.media[u.Path]; ok && strings.HasPrefix(m, s.URL) {
			types[i] = item.contentType
			if parts := strings.Split(u.Path, "/"); sid == "" && len(parts) > 5 {
				sid = parts[5]
			}
		} else if t := mime.TypeByExtension(path.Ext(u.Path)); t != "" {
			types[i] = t
		}
	}
	s.pendingMMS = ""
	s.mu.Unlock()

	segments := CountSegments(body)
	switch {
	case sid != "":
	case len(media) > 0:
		sid = NewSID("MM")
	default:
		sid = NewSID("SM")
	}
	if len(media) > 0 {
		segments = 1
	}
	v := url.Values{}
	v.Set("MessageSid", sid)
	v.Set("SmsSid", sid)
	v.Set("SmsMessageSid", sid)
	v.Set("AccountSid", s.AccountSID)
	if service != "" {
		v.Set("MessagingServiceSid", service)
	}
	v.Set("From", from)
	v.Set("To", to)
	v.Set("Body", body)
	v.Set("NumMedia", strconv.Itoa(len(media)))
	v.Set("NumSegments", strconv.Itoa(segments))
	for i, m := range media {
		v.Set("MediaUrl"+strconv.Itoa(i), m)
		v.Set("MediaContentType"+strconv.Itoa(i), types[i])
	}
	v.Set("SmsStatus", "received")
	v.Set("ApiVersion", apiVersion)
	setGeo(v, "From", from)
	setGeo(v, "To", to)
	return v
}

// setGeo fills {prefix}Country/State/City/Zip as Twilio does: from its
// number database, empty when it knows nothing.
func setGeo(v url.Values, prefix, number string) {
	country, state, city, zip := "", "", "", ""
	switch {
	case strings.HasPrefix(number, "+1"):
		country, state, city, zip = "US", "CA", "SAN FRANCISCO", "94105"
	case strings.HasPrefix(number, "+44"):
		country = "GB"
	case strings.HasPrefix(number, "+49"):
		country = "DE"
	case strings.HasPrefix(number, "+33"):
		country = "FR"
	}
	v.Set(prefix+"Country", country)
	v.Set(prefix+"State", state)
	v.Set(prefix+"City", city)
	v.Set(prefix+"Zip", zip)
}

// StatusCallback builds the parameters of Twilio's message status
// callback for m (POST it to m.StatusCallback). ErrorCode is present only
// when errorCode is non-zero (Twilio sends it for failed and undelivered,
// without an error message); RawDlrDoneDate (YYMMDDhhmm, from the carrier's
// receipt) only for "delivered".
func (s *Server) StatusCallback(m Message, status string, errorCode int) url.Values {
	v := url.Values{}
	v.Set("MessageSid", m.SID)
	v.Set("SmsSid", m.SID)
	v.Set("MessageStatus", status)
	v.Set("SmsStatus", status)
	v.Set("AccountSid", s.AccountSID)
	if m.From != "" {
		v.Set("From", m.From)
	}
	v.Set("To", m.To)
	if m.MessagingServiceSID != "" {
		v.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	v.Set("ApiVersion", apiVersion)
	if errorCode != 0 {
		v.Set("ErrorCode", strconv.Itoa(errorCode))
	}
	if status == "delivered" {
		v.Set("RawDlrDoneDate", time.Now().UTC().Format("0601021504"))
	}
	return v
}
