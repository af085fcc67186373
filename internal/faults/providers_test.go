//go:build faults

package faults_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/scenario"
	"github.com/xmppgw/xmppgw/internal/telnyxtest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

// provider is the fake SMS provider of a scenario, Twilio or Telnyx: what
// the suite needs of either to drive traffic, inject faults and count.
type provider interface {
	name() string
	// config sets the scenario config's provider.
	config(c *scenario.Config)
	webhookPath() string
	// accepted are the texts of the messages it accepted, oldest first,
	// with when each was created.
	accepted() []acceptedMessage
	requests() int
	// post delivers message i of the In series, reposting until 200.
	post(ctx context.Context, url string, i int, answered func(ok bool, answer string)) bool
	// postOnce delivers a text outside the series; true on a 200.
	postOnce(ctx context.Context, url, text string) bool
	// script answers create calls by pick ("" normal, "429", "500",
	// lateAnswer) until reset.
	script(pick func() string)
	reset()
}

type acceptedMessage struct {
	text    string
	created time.Time
}

func newProvider(t *testing.T, name string) provider {
	if name == "telnyx" {
		tx := telnyxtest.Start(t, scenario.TelnyxKey)
		// Telnyx posts message.sent for each message (retrying until it
		// is taken): what settles a send whose answer was lost.
		tx.SetSendWebhooks(true)
		return &telnyxFake{tx}
	}
	return &twilioFake{twiliotest.Start(t, scenario.AccountSID, scenario.AuthToken)}
}

func texts(p provider) []string {
	var out []string
	for _, m := range p.accepted() {
		out = append(out, m.text)
	}
	return out
}

type twilioFake struct{ tw *twiliotest.Server }

func (f *twilioFake) name() string                { return "Twilio" }
func (f *twilioFake) config(c *scenario.Config)   { c.TwilioAPI = f.tw.URL }
func (f *twilioFake) webhookPath() string         { return scenario.WebhookPath }
func (f *twilioFake) requests() int               { return f.tw.Requests() }
func (f *twilioFake) reset()                      { f.tw.SetResponder(nil) }
func (f *twilioFake) accepted() []acceptedMessage { return acceptedOf(f.tw.Messages(), twilioText) }

func twilioText(m twiliotest.Message) acceptedMessage { return acceptedMessage{m.Body, m.Created} }

func (f *twilioFake) post(ctx context.Context, url string, i int, answered func(bool, string)) bool {
	return scenario.PostWebhook(ctx, f.tw, url, i, answered)
}

func (f *twilioFake) postOnce(ctx context.Context, url, text string) bool {
	params := f.tw.InboundSMS(scenario.Friend, scenario.AliceNumber, text)
	status, _, err := twiliotest.PostForm(ctx, url, twiliotest.Sign(scenario.AuthToken, url, params), params)
	return err == nil && status == http.StatusOK
}

func (f *twilioFake) script(pick func() string) {
	f.tw.SetResponder(func(twiliotest.CreateRequest) *twiliotest.Failure {
		switch pick() {
		case "429":
			return &twiliotest.Failure{Status: 429, Code: 20429}
		case "500":
			return &twiliotest.Failure{Status: 500, Code: 20500}
		case lateAnswer:
			return &twiliotest.Failure{Delay: time.Second, Accept: true}
		}
		return nil
	})
}

type telnyxFake struct{ tx *telnyxtest.Server }

func (f *telnyxFake) name() string { return "Telnyx" }
func (f *telnyxFake) config(c *scenario.Config) {
	c.TelnyxAPI, c.TelnyxPublicKey = f.tx.URL, f.tx.PublicKey
}
func (f *telnyxFake) webhookPath() string         { return scenario.TelnyxWebhookPath }
func (f *telnyxFake) requests() int               { return f.tx.Requests() }
func (f *telnyxFake) reset()                      { f.tx.SetResponder(nil) }
func (f *telnyxFake) accepted() []acceptedMessage { return acceptedOf(f.tx.Messages(), telnyxText) }

func telnyxText(m telnyxtest.Message) acceptedMessage { return acceptedMessage{m.Text, m.Created} }

func (f *telnyxFake) post(ctx context.Context, url string, i int, answered func(bool, string)) bool {
	return scenario.PostTelnyx(ctx, f.tx, url, i, answered)
}

func (f *telnyxFake) postOnce(ctx context.Context, url, text string) bool {
	status, _, err := f.tx.Post(ctx, url, f.tx.Received(scenario.Friend, []string{scenario.AliceNumber}, text))
	return err == nil && status == http.StatusOK
}

func (f *telnyxFake) script(pick func() string) {
	f.tx.SetResponder(func(telnyxtest.CreateRequest) *telnyxtest.Failure {
		switch pick() {
		case "429":
			return &telnyxtest.Failure{Status: 429, Code: "10011"}
		case "500":
			return &telnyxtest.Failure{Status: 500, Code: "10007"}
		case lateAnswer:
			return &telnyxtest.Failure{Delay: time.Second, Accept: true}
		}
		return nil
	})
}

func acceptedOf[M any](msgs []M, f func(M) acceptedMessage) []acceptedMessage {
	out := make([]acceptedMessage, len(msgs))
	for i, m := range msgs {
		out[i] = f(m)
	}
	return out
}
