package matrix

import (
	"testing"
	"time"
)

// SetKeyWait shortens how long an event is held for its key, for this
// test; call it before starting adapters (it is restored after them).
func SetKeyWait(t *testing.T, d time.Duration) {
	old := keyWait
	keyWait = d
	t.Cleanup(func() { keyWait = old })
}
