package telnyxtest_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/sms"
	"github.com/xmppgw/xmppgw/gateways/telnyx"
	"github.com/xmppgw/xmppgw/internal/telnyxtest"
)

const key = "KEY0123456789ABCDEF"

// provider is the product's client, pointed at the fake.
func provider(t *testing.T, tx *telnyxtest.Server, apiKey string) *telnyx.Provider {
	t.Helper()
	p, err := telnyx.NewProvider(&telnyx.Account{APIKey: apiKey, PublicKey: tx.PublicKey, APIURL: tx.URL,
		MessagingProfileID: "40017a5c-0000-4000-8000-000000000001"}, 2*time.Second, gateways.Params{PublicURL: "https://gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	p.Bind("/telnyx/sms", nil)
	return p
}

// TestAgainstClient: the fake answers the product's client as Telnyx
// does: the message created with its id, Telnyx's error objects for auth
// and validation, group MMS limits.
func TestAgainstClient(t *testing.T) {
	tx := telnyxtest.Start(t, key)
	p := provider(t, tx, key)
	id, err := p.Send(t.Context(), sms.Message{From: "+15550001111", To: "+15551234567", Body: "hi", Attempt: "abc"})
	if err != nil || id == "" {
		t.Fatalf("Send = %q, %v", id, err)
	}
	m := tx.Messages()[0]
	if m.ID != id || m.WebhookURL != "https://gw.example/telnyx/sms/webhook?attempt=abc" || m.ProfileID == "" {
		t.Errorf("stored %+v", m)
	}
	gid, err := p.SendGroup(t.Context(), sms.Message{From: "+15550001111", Group: []string{"+15551234567", "+15551234568"}, Body: "all"})
	if err != nil || gid == "" || !tx.Messages()[1].Group || len(tx.Messages()[1].To) != 2 {
		t.Fatalf("SendGroup = %q, %v; stored %+v", gid, err, tx.Messages())
	}
	nine := make([]string, 9)
	for i := range nine {
		nine[i] = "+1555123450" + strconv.Itoa(i)
	}
	for _, tt := range []struct {
		name string
		send func() (string, error)
		cond gateways.Condition
		code string
	}{
		{"wrong key", func() (string, error) {
			return provider(t, tx, "KEYwrongwrongwrong").Send(t.Context(), sms.Message{From: "+15550001111", To: "+15551234567", Body: "x"})
		}, gateways.ServiceUnavailable, "10009"},
		{"bad to", func() (string, error) {
			return p.Send(t.Context(), sms.Message{From: "+15550001111", To: "+1", Body: "x"})
		}, gateways.JIDMalformed, "40310"},
		{"no text", func() (string, error) {
			return p.Send(t.Context(), sms.Message{From: "+15550001111", To: "+15551234567"})
		}, gateways.NotAcceptable, "10004"},
		{"group of nine", func() (string, error) {
			return p.SendGroup(t.Context(), sms.Message{From: "+15550001111", Group: nine, Body: "x"})
		}, gateways.NotAcceptable, "10015"},
		{"group abroad", func() (string, error) {
			return p.SendGroup(t.Context(), sms.Message{From: "+15550001111", Group: []string{"+442079460958"}, Body: "x"})
		}, gateways.JIDMalformed, "40310"},
	} {
		_, err := tt.send()
		var ge *gateways.Error
		var nc *sms.NotCreated
		if !errors.As(err, &ge) || ge.Condition != tt.cond || ge.Code != tt.code || !errors.As(err, &nc) {
			t.Errorf("%s: %v, want %s (%s), not created", tt.name, err, tt.cond, tt.code)
		}
	}
	if n := len(tx.Messages()); n != 2 {
		t.Errorf("%d messages stored, want 2", n)
	}
}

// TestErrorBody: the shape of Telnyx's error answers.
func TestErrorBody(t *testing.T) {
	tx := telnyxtest.Start(t, key)
	resp, err := http.Post(tx.URL+"/v2/messages", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Errors []struct{ Code, Title, Detail string } `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 401 || len(body.Errors) != 1 || body.Errors[0].Code != "10009" || body.Errors[0].Title != "Authentication failed" {
		t.Errorf("unauthenticated: %d %+v %v", resp.StatusCode, body, err)
	}
}

// TestSignature: webhooks verify with the public key over
// "<timestamp>|<body>", as Telnyx documents.
func TestSignature(t *testing.T) {
	tx := telnyxtest.Start(t, key)
	body := tx.Received("+15551230001", []string{"+15550001111"}, "hi")
	ts := time.Now().Unix()
	sig, _ := base64.StdEncoding.DecodeString(tx.Sign(ts, body))
	pub, _ := base64.StdEncoding.DecodeString(tx.PublicKey)
	signed := append([]byte(strconv.FormatInt(ts, 10)+"|"), body...)
	if !ed25519.Verify(pub, signed, sig) {
		t.Error("the signature does not verify with the public key")
	}
	if ed25519.Verify(pub, bytes.Replace(signed, []byte("hi"), []byte("ho"), 1), sig) {
		t.Error("the signature verifies a changed body")
	}
}
