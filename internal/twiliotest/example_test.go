package twiliotest_test

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

// twilio-go has no base-URL setting: give it an *http.Client whose
// transport rewrites scheme and host. Once ClientParams.Client is set,
// twilio-go ignores Username/Password, so credentials and the account SID
// go on the client.Client.
func Example_twilioGo() {
	tw, err := twiliotest.Listen("127.0.0.1:0", accountSID, authToken)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tw.Close()

	target, _ := url.Parse(tw.URL)
	c := &client.Client{
		Credentials: client.NewCredentials(accountSID, authToken),
		HTTPClient:  &http.Client{Transport: rewrite{target}},
	}
	c.SetAccountSid(accountSID)
	rc := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})

	tw.FailNext(twiliotest.Failure{Status: 429, Code: 20429})
	p := &api.CreateMessageParams{}
	p.SetFrom("+15005550006").SetTo("+15551234567").SetBody("hi")
	_, err = rc.Api.CreateMessage(p)
	fmt.Println(err)
	m, _ := rc.Api.CreateMessage(p)
	fmt.Println(*m.Status, *m.NumSegments, len(tw.Messages()))
	// Output:
	// Status: 429 - ApiError 20429: Too Many Requests (null) More info: https://www.twilio.com/docs/errors/20429
	// queued 1 1
}
