package push

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
)

// What a phone receives. Without content (the default) it learns that its
// account (node) has something new, and nothing else: the client wakes
// up and fetches its messages from its own server. With content, the
// sender and text that the XMPP server put in the notification's summary
// (Prosody sends a placeholder text unless configured otherwise).
type notification struct {
	Node   string `json:"node"`
	Count  int    `json:"count,omitempty"`
	Sender string `json:"sender,omitempty"`
	Body   string `json:"body,omitempty"`
}

// errGone: the push service says the token or endpoint will never work
// again; the registration is removed.
var errGone = errors.New("the push service says the device is gone")

type goneError struct{ why string }

func (e *goneError) Error() string   { return errGone.Error() + ": " + e.why }
func (e *goneError) Is(t error) bool { return t == errGone }

// permanent is a refusal that retrying cannot change.
func permanent(format string, args ...any) error {
	return &gateways.Error{Condition: gateways.NotAcceptable, Text: fmt.Sprintf(format, args...), Permanent: true}
}

// readBody reads at most 64 KiB of an answer.
func readBody(r io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	return b
}

func retryable(status int) bool { return status == http.StatusTooManyRequests || status >= 500 }

// UnifiedPush: RFC 8030 §5, as the UnifiedPush spec uses it: one POST to
// the endpoint, the message as the body, TTL and Urgency headers; Topic
// lets the distributor replace a push it has not delivered yet with the
// newer one for the same device.
func (a *Adapter) sendUnifiedPush(ctx context.Context, reg *registration, n notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	contentType := "application/json"
	if reg.P256DH != "" {
		keys, err := parseWebPushKeys(reg.P256DH, reg.Auth)
		if err != nil {
			return permanent("the registration's Web Push keys: %v", err)
		}
		if body, err = encryptWebPush(keys, body); err != nil {
			return err
		}
		contentType = "application/octet-stream"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, reg.Endpoint, bytes.NewReader(body))
	if err != nil {
		return permanent("the endpoint is not a valid URL")
	}
	req.Header.Set("Content-Type", contentType)
	if reg.P256DH != "" {
		req.Header.Set("Content-Encoding", "aes128gcm")
	}
	req.Header.Set("TTL", strconv.Itoa(int(a.cfg.TTL/time.Second)))
	req.Header.Set("Urgency", a.cfg.Urgency)
	req.Header.Set("Topic", n.Node)
	resp, err := a.endpoints.Do(req)
	if err != nil {
		if errors.Is(err, errPrivateAddress) {
			return permanent("the endpoint now resolves to a private address")
		}
		return fmt.Errorf("unifiedpush: %w", err)
	}
	defer resp.Body.Close()
	b := readBody(resp.Body)
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusNotFound || s == http.StatusGone:
		return &goneError{fmt.Sprintf("unifiedpush endpoint answered %d", s)}
	case retryable(s):
		return fmt.Errorf("unifiedpush endpoint answered %d: %s", s, snippet(b))
	default:
		return permanent("the unifiedpush endpoint answered %d: %s", s, snippet(b))
	}
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// FCM HTTP v1: POST /v1/projects/<project>/messages:send with an OAuth2
// access token of the service account (JWT bearer grant, RFC 7523),
// cached until shortly before it expires.
type fcmClient struct {
	cfg  FCMConfig
	sa   *serviceAccount
	http *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

func (f *fcmClient) accessToken(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token != "" && time.Now().Before(f.expires) {
		return f.token, nil
	}
	now := time.Now()
	assertion, err := signJWT(f.sa.key, f.sa.PrivateKeyID, map[string]any{
		"iss": f.sa.ClientEmail, "scope": fcmScope, "aud": f.cfg.TokenURL,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	if err != nil {
		return "", err
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("fcm: token: %w", err)
	}
	defer resp.Body.Close()
	b := readBody(resp.Body)
	if resp.StatusCode != http.StatusOK {
		if retryable(resp.StatusCode) {
			return "", fmt.Errorf("fcm: token endpoint answered %d: %s", resp.StatusCode, snippet(b))
		}
		// A revoked or wrong key: every push fails until the operator
		// acts; kept transient so that pushes wait rather than vanish.
		return "", fmt.Errorf("fcm: the token endpoint refused the service account (%d): %s", resp.StatusCode, snippet(b))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("fcm: token endpoint answered no access_token: %s", snippet(b))
	}
	f.token = tok.AccessToken
	f.expires = now.Add(time.Duration(tok.ExpiresIn)*time.Second - time.Minute)
	return f.token, nil
}

func (f *fcmClient) invalidate(token string) {
	f.mu.Lock()
	if f.token == token {
		f.token = ""
	}
	f.mu.Unlock()
}

type fcmError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type      string `json:"@type"`
			ErrorCode string `json:"errorCode"`
		} `json:"details"`
	} `json:"error"`
}

func (e *fcmError) code() string {
	for _, d := range e.Error.Details {
		if d.ErrorCode != "" {
			return d.ErrorCode
		}
	}
	return e.Error.Status
}

// fcmMessage is a data message: the app is woken and handles it (no
// notification is shown by the system), at high priority unless the
// urgency says otherwise; collapse_key keeps one pending push per device.
func (a *Adapter) fcmMessage(token string, n notification) map[string]any {
	data := map[string]string{"node": n.Node}
	if n.Count > 0 {
		data["count"] = strconv.Itoa(n.Count)
	}
	if n.Sender != "" {
		data["sender"] = n.Sender
	}
	if n.Body != "" {
		data["body"] = n.Body
	}
	priority := "NORMAL"
	if a.cfg.Urgency == "high" {
		priority = "HIGH"
	}
	return map[string]any{"message": map[string]any{
		"token": token,
		"data":  data,
		"android": map[string]any{
			"priority": priority, "ttl": strconv.Itoa(int(a.cfg.TTL/time.Second)) + "s", "collapse_key": n.Node,
		},
	}}
}

func (a *Adapter) sendFCM(ctx context.Context, reg *registration, n notification) error {
	f := a.fcm
	if f == nil {
		return permanent("FCM is not configured on this gateway")
	}
	access, err := f.accessToken(ctx)
	if err != nil {
		return err
	}
	body, err := json.Marshal(a.fcmMessage(reg.Token, n))
	if err != nil {
		return err
	}
	u := strings.TrimRight(f.cfg.APIURL, "/") + "/v1/projects/" + url.PathEscape(f.cfg.ProjectID) + "/messages:send"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := f.http.Do(req)
	if err != nil {
		return fmt.Errorf("fcm: %w", err)
	}
	defer resp.Body.Close()
	b := readBody(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var fe fcmError
	_ = json.Unmarshal(b, &fe)
	code := fe.code()
	switch {
	case code == "UNREGISTERED" || code == "SENDER_ID_MISMATCH" || resp.StatusCode == http.StatusNotFound:
		// FCM answers 404 only with UNREGISTERED: the app was
		// uninstalled or the token expired.
		return &goneError{"fcm: " + code}
	case resp.StatusCode == http.StatusUnauthorized:
		f.invalidate(access) // expired or revoked: a new one next time
		return fmt.Errorf("fcm: 401 %s: %s", code, fe.Error.Message)
	case retryable(resp.StatusCode):
		return fmt.Errorf("fcm: %d %s: %s", resp.StatusCode, code, fe.Error.Message)
	default:
		return permanent("fcm refused the push (%d %s): %s", resp.StatusCode, code, fe.Error.Message)
	}
}

// APNs: HTTP/2 POST /3/device/<token> with a provider token (ES256 JWT of
// the team, signed with the .p8 key), renewed every 40 minutes (Apple
// refuses tokens older than an hour, and renewals more often than every
// 20 minutes).
type apnsClient struct {
	cfg  APNsConfig
	key  *ecdsa.PrivateKey
	http *http.Client

	mu     sync.Mutex
	jwt    string
	issued time.Time
}

const apnsTokenLife = 40 * time.Minute

func (c *apnsClient) providerToken(renew bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jwt != "" && !renew && time.Since(c.issued) < apnsTokenLife {
		return c.jwt, nil
	}
	now := time.Now()
	t, err := signJWT(c.key, c.cfg.KeyID, map[string]any{"iss": c.cfg.TeamID, "iat": now.Unix()})
	if err != nil {
		return "", err
	}
	c.jwt, c.issued = t, now
	return t, nil
}

func (c *apnsClient) expire(token string) {
	c.mu.Lock()
	if c.jwt == token {
		c.jwt = ""
	}
	c.mu.Unlock()
}

// apnsPayload: without content a background push (content-available),
// which wakes the app without showing anything; with content an alert
// with the sender as title, which the app's notification service
// extension may rewrite (mutable-content).
func (a *Adapter) apnsPayload(n notification) (payload map[string]any, pushType string, priority string) {
	aps := map[string]any{}
	payload = map[string]any{"node": n.Node}
	if n.Count > 0 {
		payload["count"] = n.Count
	}
	if n.Sender == "" && n.Body == "" {
		aps["content-available"] = 1
		payload["aps"] = aps
		return payload, "background", "5" // Apple requires 5 for background pushes
	}
	alert := map[string]string{"body": n.Body}
	if n.Sender != "" {
		alert["title"] = n.Sender
	}
	if n.Body == "" {
		alert["body"] = "New message"
	}
	aps["alert"] = alert
	aps["mutable-content"] = 1
	aps["sound"] = "default"
	payload["aps"] = aps
	priority = "5"
	if a.cfg.Urgency == "high" {
		priority = "10"
	}
	return payload, "alert", priority
}

func (a *Adapter) sendAPNs(ctx context.Context, reg *registration, n notification) error {
	c := a.apns
	if c == nil {
		return permanent("APNs is not configured on this gateway")
	}
	token, err := c.providerToken(false)
	if err != nil {
		return err
	}
	payload, pushType, priority := a.apnsPayload(n)
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	u := strings.TrimRight(c.cfg.APIURL, "/") + "/3/device/" + url.PathEscape(reg.Token)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("authorization", "bearer "+token)
	req.Header.Set("apns-topic", c.cfg.Topic)
	req.Header.Set("apns-push-type", pushType)
	req.Header.Set("apns-priority", priority)
	req.Header.Set("apns-expiration", strconv.FormatInt(time.Now().Add(a.cfg.TTL).Unix(), 10))
	req.Header.Set("apns-collapse-id", n.Node)
	req.Header.Set("content-type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("apns: %w", err)
	}
	defer resp.Body.Close()
	b := readBody(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var ae struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(b, &ae)
	switch {
	case resp.StatusCode == http.StatusGone || ae.Reason == "BadDeviceToken" || ae.Reason == "DeviceTokenNotForTopic" || ae.Reason == "Unregistered":
		return &goneError{"apns: " + ae.Reason}
	case ae.Reason == "ExpiredProviderToken" || ae.Reason == "InvalidProviderToken":
		c.expire(token)
		return fmt.Errorf("apns: %d %s", resp.StatusCode, ae.Reason)
	case retryable(resp.StatusCode):
		return fmt.Errorf("apns: %d %s", resp.StatusCode, ae.Reason)
	default:
		return permanent("apns refused the push (%d %s)", resp.StatusCode, ae.Reason)
	}
}

// apnsHTTP speaks HTTP/2 only: over TLS to Apple, and without TLS (h2c,
// prior knowledge) to an http:// URL.
func apnsHTTP(timeout time.Duration) *http.Client {
	t := &http.Transport{
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       5 * time.Minute,
	}
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP2(true)
	t.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: t, Timeout: timeout}
}
