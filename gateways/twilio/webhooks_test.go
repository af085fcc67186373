package twilio_test

import (
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

// TestStatusBeforeRecord: Twilio's status callback can arrive before the
// adapter has written the message's SID record (the create call's answer
// is still on its way). The report must not be dropped: it is kept and
// applied once the record is written.
func TestStatusBeforeRecord(t *testing.T) {
	e := start(t, 2*time.Second)
	tests := []struct {
		status string
		code   int
		want   gateways.Status
	}{
		{"delivered", 0, gateways.Status{Ref: "k-delivered", Key: "k-delivered", User: user, Contact: contact, State: bus.StateDelivered}},
		{"undelivered", 30003, gateways.Status{Ref: "k-undelivered", Key: "k-undelivered", User: user, Contact: contact, State: bus.StateFailed,
			Code: "30003", Reason: "the message was not delivered: the destination phone is unreachable (switched off or out of coverage)"}},
	}
	for i, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			// Accepted at once, answered late: the callback comes first.
			e.tw.FailNext(twiliotest.Failure{Accept: true, Delay: 500 * time.Millisecond})
			sent := make(chan error, 1)
			go func() {
				_, err := e.a.Send(t.Context(), outbound("k-"+tt.status, "hello "+tt.status))
				sent <- err
			}()
			msgs := e.tw.WaitMessages(t, i+1, 5*time.Second)
			code, body := e.tw.PostWebhook(t, e.url+"/twilio/sms/status", e.tw.StatusCallback(msgs[i], tt.status, tt.code))
			if code/100 != 2 {
				t.Errorf("status callback answered %d %s", code, body)
			}
			if err := <-sent; err != nil {
				t.Fatalf("Send: %v", err)
			}
			var got []gateways.Status
			proctest.Poll(5*time.Second, 10*time.Millisecond, func() bool { got = e.host.Reports(); return len(got) > i })
			if len(got) != i+1 || got[i] != tt.want {
				t.Fatalf("reports after a %s callback that came before the SID record: %+v, want …%+v", tt.status, got, tt.want)
			}
		})
	}
}
