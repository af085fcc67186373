package main

import (
	"net/url"
	"testing"

	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

// The baseline must check signatures as Twilio makes them, or the
// benchmark would compare xmppgw with a gateway that does less.
func TestValidSignature(t *testing.T) {
	const token, hook = "0123456789abcdef0123456789abcdef", "http://127.0.0.1:8080/twilio/sms/sms"
	params := url.Values{"From": {"+15551230001"}, "To": {"+15550000000"}, "Body": {"hi & <bye>"}, "AccountSid": {"AC1"}}
	sig := twiliotest.Sign(token, hook, params)
	tests := []struct {
		name       string
		token, url string
		params     url.Values
		sig        string
		want       bool
	}{
		{"valid", token, hook, params, sig, true},
		{"other token", "x" + token[1:], hook, params, sig, false},
		{"other url", token, hook + "?x=1", params, sig, false},
		{"changed body", token, hook, url.Values{"From": {"+15551230001"}, "To": {"+15550000000"}, "Body": {"hi"}, "AccountSid": {"AC1"}}, sig, false},
		{"missing", token, hook, params, "", false},
	}
	for _, tt := range tests {
		if got := validSignature(tt.token, tt.url, tt.params, tt.sig); got != tt.want {
			t.Errorf("%s: validSignature = %v, want %v", tt.name, got, tt.want)
		}
	}
}
