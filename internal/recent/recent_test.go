package recent_test

import (
	"fmt"
	"testing"

	"github.com/xmppgw/xmppgw/internal/recent"
)

func TestIDsForgetsOldestFirst(t *testing.T) {
	r := recent.New(3)
	for i := range 3 {
		r.Add(fmt.Sprint(i))
	}
	r.Add("1") // already there: changes nothing
	r.Add("3") // forgets 0
	for id, want := range map[string]bool{"0": false, "1": true, "2": true, "3": true, "4": false} {
		if got := r.Has(id); got != want {
			t.Errorf("Has(%s) = %v, want %v", id, got, want)
		}
	}
}
