package twiliotest_test

import (
	"errors"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

func TestSetUnreachable(t *testing.T) {
	s := twiliotest.Start(t, accountSID, authToken)
	tc := newClient(t, s, accountSID, authToken, 10*time.Second)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := send(tc, "+15551234567", "before"); err != nil {
		t.Fatalf("send before the outage: %v", err)
	}

	// A request in progress when the outage starts gets no answer.
	s.SetLatency(10 * time.Second)
	inFlight := make(chan error, 1)
	go func() {
		_, err := send(tc, "+15551234567", "cut off")
		inFlight <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Requests() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the fake")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 2 { // idempotent
		if err := s.SetUnreachable(true); err != nil {
			t.Fatalf("SetUnreachable(true): %v", err)
		}
	}
	select {
	case err := <-inFlight:
		var re *client.TwilioRestError
		if err == nil || errors.As(err, &re) {
			t.Errorf("request in progress at the outage = %v, want a connection error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a request in progress was not cut off by the outage")
	}
	s.SetLatency(0)

	// New connections are refused.
	if c, err := net.DialTimeout("tcp", u.Host, 2*time.Second); err == nil {
		c.Close()
		t.Error("dial during the outage succeeded")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial during the outage = %v, want connection refused", err)
	}
	if _, err := send(tc, "+15551234567", "during"); err == nil {
		t.Error("send during the outage succeeded")
	}

	for range 2 {
		if err := s.SetUnreachable(false); err != nil {
			t.Fatalf("SetUnreachable(false): %v", err)
		}
	}
	if _, err := send(tc, "+15551234567", "after"); err != nil {
		t.Fatalf("send after the outage: %v", err)
	}
	var bodies []string
	for _, m := range s.Messages() {
		bodies = append(bodies, m.Body)
	}
	if len(bodies) != 2 || bodies[0] != "before" || bodies[1] != "after" {
		t.Errorf("the fake accepted %q, want [before after]", bodies)
	}

	// Close works while unreachable.
	if err := s.SetUnreachable(true); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung while the fake was unreachable")
	}
	if err := s.SetUnreachable(false); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetUnreachable(false) after Close = %v, want net.ErrClosed", err)
	}
}
