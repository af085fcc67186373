package numbers_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/numbers"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

func openKV(t *testing.T) (*bus.Bus, func(static map[string]string, pool ...string) *numbers.Registrar) {
	t.Helper()
	b := bustest.Open(t)
	kv, err := b.JetStream().KeyValue(context.Background(), bus.BucketRegistrations)
	if err != nil {
		t.Fatal(err)
	}
	return b, func(static map[string]string, pool ...string) *numbers.Registrar {
		return numbers.New(kv, "sms", static, pool)
	}
}

func condition(err error) string {
	var ge *gateways.Error
	if errors.As(err, &ge) {
		return string(ge.Condition)
	}
	return ""
}

func TestRegisterFromPool(t *testing.T) {
	ctx := context.Background()
	_, newReg := openKV(t)
	r := newReg(map[string]string{"+15550009999": "Alice@localhost"}, "+15550009999", "+15550001111")

	// Static assignments: case-insensitive JIDs, and never handed out.
	if n, err := r.Lookup(ctx, "alice@localhost"); err != nil || n != "+15550009999" {
		t.Fatalf("static lookup = %q, %v", n, err)
	}
	n, err := r.Register(ctx, "bob@localhost")
	if err != nil || n != "+15550001111" {
		t.Fatalf("Register(bob) = %q, %v; want the one pool number not statically assigned", n, err)
	}
	if again, err := r.Register(ctx, "bob@localhost"); err != nil || again != n {
		t.Errorf("registering twice = %q, %v; want %q again", again, err, n)
	}
	if u, err := r.UserFor(ctx, n); err != nil || u != "bob@localhost" {
		t.Errorf("UserFor(%s) = %q, %v", n, u, err)
	}
	if _, err := r.Register(ctx, "carol@localhost"); condition(err) != "resource-constraint" {
		t.Errorf("pool exhausted: %v, want resource-constraint", err)
	}
	if _, err := r.Unregister(ctx, "alice@localhost"); condition(err) != "not-allowed" {
		t.Errorf("unregistering a static number: %v, want not-allowed", err)
	}
	if released, err := r.Unregister(ctx, "bob@localhost"); err != nil || released != n {
		t.Errorf("Unregister = %q, %v", released, err)
	}
	if u, _ := r.UserFor(ctx, n); u != "" {
		t.Errorf("released number still routes to %q", u)
	}
	if got, err := r.Register(ctx, "carol@localhost"); err != nil || got != n {
		t.Errorf("the released number is free again: %q, %v", got, err)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 2 || list["alice@localhost"] != "+15550009999" || list["carol@localhost"] != n {
		t.Errorf("List = %v, %v", list, err)
	}
}

// Two processes racing for a pool of one: exactly one wins.
func TestRegisterRace(t *testing.T) {
	ctx := context.Background()
	_, newReg := openKV(t)
	a, b := newReg(nil, "+15550001111"), newReg(nil, "+15550001111")
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a
			if i%2 == 1 {
				r = b
			}
			_, results[i] = r.Register(ctx, "user"+string(rune('a'+i))+"@localhost")
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range results {
		switch {
		case err == nil:
			wins++
		case condition(err) != "resource-constraint":
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d users got the only number", wins)
	}
}

// A crash between the two writes leaves the number claimed without the user
// key; registering again completes the claim instead of losing the number.
func TestRegisterAdoptsHalfWrittenClaim(t *testing.T) {
	ctx := context.Background()
	b, newReg := openKV(t)
	kv, _ := b.JetStream().KeyValue(ctx, bus.BucketRegistrations)
	if _, err := kv.Create(ctx, "sms.n.15550001111", []byte("bob@localhost")); err != nil {
		t.Fatal(err)
	}
	r := newReg(nil, "+15550001111")
	if n, err := r.Register(ctx, "bob@localhost"); err != nil || n != "+15550001111" {
		t.Fatalf("Register = %q, %v", n, err)
	}
	if n, _ := r.Lookup(ctx, "bob@localhost"); n != "+15550001111" {
		t.Errorf("Lookup after adoption = %q", n)
	}
}

func TestAssign(t *testing.T) {
	ctx := context.Background()
	_, newReg := openKV(t)
	r := newReg(map[string]string{"+15550009999": "alice@localhost"})
	tests := []struct {
		name, user, number, cond string
	}{
		{"not E.164", "bob@localhost", "5551234", "jid-malformed"},
		{"static number", "bob@localhost", "+15550009999", "not-allowed"},
		{"user with a static number", "alice@localhost", "+15550002222", "not-allowed"},
		{"assign", "bob@localhost", "+15550002222", ""},
		{"taken", "carol@localhost", "+15550002222", "conflict"},
		{"same again", "bob@localhost", "+15550002222", ""},
		{"move bob", "bob@localhost", "+15550003333", ""},
	}
	for _, tt := range tests {
		err := r.Assign(ctx, tt.user, tt.number)
		if condition(err) != tt.cond || (tt.cond == "" && err != nil) {
			t.Errorf("%s: Assign(%s, %s) = %v, want %q", tt.name, tt.user, tt.number, err, tt.cond)
		}
	}
	// Moving bob released his old number.
	if u, _ := r.UserFor(ctx, "+15550002222"); u != "" {
		t.Errorf("old number still routes to %q", u)
	}
	if u, err := r.Unassign(ctx, "+15550003333"); err != nil || u != "bob@localhost" {
		t.Errorf("Unassign = %q, %v", u, err)
	}
	if _, err := r.Unassign(ctx, "+15550003333"); condition(err) != "item-not-found" {
		t.Errorf("unassigning a free number: %v", err)
	}
}
