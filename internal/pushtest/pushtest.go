// Package pushtest fakes the push services the push gateway talks to, for
// tests: a UnifiedPush distributor (which records what it receives), FCM's
// HTTP v1 API with Google's OAuth2 token endpoint, and APNs over HTTP/2.
//
// Google and Apple are boundaries we cannot run here, so the fakes check
// what the real services check and answer what they answer: FCM issues
// access tokens only for a JWT signed (RS256) with the service account's
// key, for its scope and audience, and refuses a send without one (401
// UNAUTHENTICATED); a token it no longer knows is 404 with errorCode
// UNREGISTERED. APNs speaks HTTP/2 only, takes a provider token signed
// (ES256) with the .p8 key of the key id and team, checks the topic and
// the push type's priority, and answers a gone device 410 Unregistered.
// Every server listens on a port from proctest (never the ephemeral range).
package pushtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// Request is one request a fake received.
type Request struct {
	Path   string
	Header http.Header
	Body   []byte
	Proto  int // HTTP major version
}

// JSON decodes the body.
func (r Request) JSON(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("pushtest: body %q is not JSON: %v", r.Body, err)
	}
	return v
}

type recorder struct {
	mu   sync.Mutex
	reqs []Request
}

func (r *recorder) add(req Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
}

// Requests returns what was received so far, in order.
func (r *recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// WaitRequests waits until at least n requests arrived.
func (r *recorder) WaitRequests(t testing.TB, n int, timeout time.Duration) []Request {
	t.Helper()
	var got []Request
	if !proctest.Poll(timeout, 10*time.Millisecond, func() bool { got = r.Requests(); return len(got) >= n }) {
		t.Fatalf("pushtest: %d requests within %v, want %d", len(got), timeout, n)
	}
	return got
}

func serve(t testing.TB, h http.Handler, h2c bool) string {
	t.Helper()
	addr := proctest.FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("pushtest: %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true) // answered 505 by the APNs fake, as a test failure to read
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + addr
}

func read(r *http.Request) Request {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	return Request{Path: r.URL.Path, Header: r.Header.Clone(), Body: b, Proto: r.ProtoMajor}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Distributor is a UnifiedPush distributor's push server: each endpoint
// (URL + "/up/<name>") accepts POSTs (201) until it is made gone.
type Distributor struct {
	URL string
	recorder
	mu   sync.Mutex
	gone map[string]int
}

// StartDistributor starts a distributor.
func StartDistributor(t testing.TB) *Distributor {
	d := &Distributor{gone: map[string]int{}}
	d.URL = serve(t, http.HandlerFunc(d.handle), false)
	return d
}

// Endpoint is the endpoint URL of an app instance called name.
func (d *Distributor) Endpoint(name string) string { return d.URL + "/up/" + name }

// Gone makes the endpoint answer status (404 or 410) from now on.
func (d *Distributor) Gone(name string, status int) {
	d.mu.Lock()
	d.gone["/up/"+name] = status
	d.mu.Unlock()
}

func (d *Distributor) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/up/") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	d.mu.Lock()
	gone := d.gone[r.URL.Path]
	d.mu.Unlock()
	if gone != 0 {
		http.Error(w, "endpoint unknown", gone)
		return
	}
	d.add(read(r))
	w.WriteHeader(http.StatusCreated)
}

// FCM fakes FCM's HTTP v1 send API and Google's OAuth2 token endpoint.
type FCM struct {
	URL       string // the API and token base URL
	ProjectID string
	recorder  // accepted sends

	key   *rsa.PrivateKey
	keyID string
	email string

	mu       sync.Mutex
	tokens   map[string]time.Time // access token → expiry
	gone     map[string]bool      // device tokens unregistered
	failNext []int
	issued   int
}

// StartFCM starts the fake with a new service account.
func StartFCM(t testing.TB) *FCM {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &FCM{ProjectID: "xmppgw-test", key: key, keyID: "k1", email: "push@xmppgw-test.iam.gserviceaccount.com",
		tokens: map[string]time.Time{}, gone: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", f.send)
	f.URL = serve(t, mux, false)
	return f
}

// TokenURL is the fake's OAuth2 token endpoint.
func (f *FCM) TokenURL() string { return f.URL + "/token" }

// CredentialsFile writes the service account's key file, as the Firebase
// console hands it out, and returns its path.
func (f *FCM) CredentialsFile(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(f.key)
	if err != nil {
		t.Fatal(err)
	}
	sa := map[string]string{
		"type": "service_account", "project_id": f.ProjectID, "private_key_id": f.keyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": f.email, "client_id": "1234567890", "token_uri": f.TokenURL(),
		"auth_uri": "https://accounts.google.com/o/oauth2/auth",
	}
	data, _ := json.MarshalIndent(sa, "", "  ")
	file := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// Unregister makes a device token gone (the app was uninstalled).
func (f *FCM) Unregister(token string) {
	f.mu.Lock()
	f.gone[token] = true
	f.mu.Unlock()
}

// FailNext makes the next sends answer these statuses (429, 500, 503).
func (f *FCM) FailNext(statuses ...int) {
	f.mu.Lock()
	f.failNext = append(f.failNext, statuses...)
	f.mu.Unlock()
}

// ExpireTokens forgets every access token issued, as after their hour.
func (f *FCM) ExpireTokens() {
	f.mu.Lock()
	clear(f.tokens)
	f.mu.Unlock()
}

// TokensIssued counts access tokens issued.
func (f *FCM) TokensIssued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

func googleError(w http.ResponseWriter, status int, grpc, msg string, fcmCode string) {
	e := map[string]any{"code": status, "message": msg, "status": grpc}
	if fcmCode != "" {
		e["details"] = []any{map[string]string{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcmCode}}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func (f *FCM) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		writeJSON(w, 400, map[string]string{"error": "unsupported_grant_type", "error_description": "Invalid grant_type: " + r.PostForm.Get("grant_type")})
		return
	}
	claims, err := verifyJWT(r.PostForm.Get("assertion"), "RS256", f.keyID, &f.key.PublicKey)
	if err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
		return
	}
	now := time.Now().Unix()
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	switch {
	case claims["iss"] != f.email:
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid issuer"})
		return
	case claims["aud"] != f.TokenURL():
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."})
		return
	case int64(iat) > now+60 || int64(exp) < now || exp-iat > 3600:
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."})
		return
	case !strings.Contains(fmt.Sprint(claims["scope"]), "https://www.googleapis.com/auth/firebase.messaging"):
		writeJSON(w, 400, map[string]string{"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."})
		return
	}
	tok := "ya29." + base64.RawURLEncoding.EncodeToString(randomBytes(24))
	f.mu.Lock()
	f.tokens[tok] = time.Now().Add(time.Hour)
	f.issued++
	f.mu.Unlock()
	writeJSON(w, 200, map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

func (f *FCM) send(w http.ResponseWriter, r *http.Request) {
	req := read(r)
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	exp, known := f.tokens[bearer]
	f.mu.Unlock()
	if !ok || !known || time.Now().After(exp) {
		googleError(w, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.", "")
		return
	}
	if r.PathValue("project") != f.ProjectID {
		googleError(w, 403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/"+r.PathValue("project")+"' (or it may not exist).", "")
		return
	}
	var body struct {
		Message struct {
			Token string `json:"token"`
		} `json:"message"`
	}
	if err := json.Unmarshal(req.Body, &body); err != nil || body.Message.Token == "" {
		googleError(w, 400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "INVALID_ARGUMENT")
		return
	}
	f.mu.Lock()
	gone := f.gone[body.Message.Token]
	var fail int
	if len(f.failNext) > 0 {
		fail, f.failNext = f.failNext[0], f.failNext[1:]
	}
	f.mu.Unlock()
	switch {
	case fail == 429:
		googleError(w, 429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED")
		return
	case fail != 0:
		googleError(w, fail, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")
		return
	case gone:
		googleError(w, 404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
		return
	}
	f.add(req)
	writeJSON(w, 200, map[string]string{"name": "projects/" + f.ProjectID + "/messages/0:" + fmt.Sprint(time.Now().UnixNano())})
}

// APNs fakes Apple's push API (HTTP/2 without TLS: point the gateway's
// api_url at URL).
type APNs struct {
	URL    string
	KeyID  string
	TeamID string
	Topic  string
	recorder

	key  *ecdsa.PrivateKey
	mu   sync.Mutex
	gone map[string]bool
}

// StartAPNs starts the fake with a new signing key.
func StartAPNs(t testing.TB) *APNs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &APNs{KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: "im.xmppgw.test", key: key, gone: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /3/device/{token}", a.handle)
	a.URL = serve(t, mux, true)
	return a
}

// KeyFile writes the .p8 key, as Apple hands it out, and returns its path.
func (a *APNs) KeyFile(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(a.key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "AuthKey_"+a.KeyID+".p8")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// Unregister makes a device token gone.
func (a *APNs) Unregister(token string) {
	a.mu.Lock()
	a.gone[token] = true
	a.mu.Unlock()
}

func apnsError(w http.ResponseWriter, status int, reason string) {
	v := map[string]any{"reason": reason}
	if status == http.StatusGone {
		v["timestamp"] = time.Now().UnixMilli()
	}
	writeJSON(w, status, v)
}

func (a *APNs) handle(w http.ResponseWriter, r *http.Request) {
	req := read(r)
	if r.ProtoMajor != 2 {
		http.Error(w, "APNs speaks HTTP/2 only", http.StatusHTTPVersionNotSupported)
		return
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "bearer ")
	if !ok || bearer == "" {
		apnsError(w, 403, "MissingProviderToken")
		return
	}
	claims, err := verifyJWT(bearer, "ES256", a.KeyID, &a.key.PublicKey)
	if err != nil || claims["iss"] != a.TeamID {
		apnsError(w, 403, "InvalidProviderToken")
		return
	}
	if iat, _ := claims["iat"].(float64); time.Since(time.Unix(int64(iat), 0)) > time.Hour {
		apnsError(w, 403, "ExpiredProviderToken")
		return
	}
	switch topic := r.Header.Get("apns-topic"); {
	case topic == "":
		apnsError(w, 400, "MissingTopic")
		return
	case topic != a.Topic:
		apnsError(w, 400, "DeviceTokenNotForTopic")
		return
	}
	pt, prio := r.Header.Get("apns-push-type"), r.Header.Get("apns-priority")
	if pt == "background" && prio != "5" {
		apnsError(w, 400, "BadPriority")
		return
	}
	if pt != "background" && pt != "alert" {
		apnsError(w, 400, "InvalidPushType")
		return
	}
	token := r.PathValue("token")
	if len(token) != 64 || strings.Trim(strings.ToLower(token), "0123456789abcdef") != "" {
		apnsError(w, 400, "BadDeviceToken")
		return
	}
	var payload map[string]any
	if err := json.Unmarshal(req.Body, &payload); err != nil {
		apnsError(w, 400, "BadPayload")
		return
	}
	if _, ok := payload["aps"].(map[string]any); !ok {
		apnsError(w, 400, "PayloadEmpty")
		return
	}
	a.mu.Lock()
	gone := a.gone[token]
	a.mu.Unlock()
	if gone {
		apnsError(w, 410, "Unregistered")
		return
	}
	a.add(req)
	w.Header().Set("apns-id", "7A8B9C0D-1234-5678-9ABC-DEF012345678")
	w.WriteHeader(http.StatusOK)
}

// verifyJWT checks a compact JWS's header and signature and returns its
// claims.
func verifyJWT(token, alg, kid string, pub crypto.PublicKey) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWS")
	}
	dec := base64.RawURLEncoding
	hb, err1 := dec.DecodeString(parts[0])
	cb, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	var h map[string]string
	if err := json.Unmarshal(hb, &h); err != nil || h["alg"] != alg || h["kid"] != kid {
		return nil, fmt.Errorf("header %s", hb)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig); err != nil {
			return nil, err
		}
	case *ecdsa.PublicKey:
		if len(sig) != 64 || !ecdsa.Verify(k, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return nil, errors.New("bad ES256 signature")
		}
	}
	var claims map[string]any
	if err := json.NewDecoder(bytes.NewReader(cb)).Decode(&claims); err != nil {
		return nil, err
	}
	return claims, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
