package component

import "testing"

func TestWithoutFallback(t *testing.T) {
	at := func(i int) *int { return &i }
	tests := []struct {
		name string
		body string
		fbs  []fallbackIn
		want string
	}{
		{"none", "hello", nil, "hello"},
		{"whole body", "fallback text", []fallbackIn{{For: nsRetract}}, ""},
		{"reply quote", "> quoted\nmine", []fallbackIn{{For: nsReply, Bodies: []fallbackRange{{at(0), at(9)}}}}, "mine"},
		// Ranges count code points, not bytes: 🐢 is one.
		{"code points", "🐢🐢 mine", []fallbackIn{{For: nsReact, Bodies: []fallbackRange{{at(0), at(3)}}}}, "mine"},
		{"two ranges", "a-b-c", []fallbackIn{{For: nsReply, Bodies: []fallbackRange{{at(0), at(1)}, {at(2), at(3)}}}}, "--c"},
		{"open start", "xxmine", []fallbackIn{{For: nsReply, Bodies: []fallbackRange{{nil, at(2)}}}}, "mine"},
		{"open end", "minexx", []fallbackIn{{For: nsReply, Bodies: []fallbackRange{{at(4), nil}}}}, "mine"},
		{"out of bounds", "mine", []fallbackIn{{For: nsReply, Bodies: []fallbackRange{{at(10), at(99)}, {at(-5), at(0)}}}}, "mine"},
	}
	for _, tt := range tests {
		if got := withoutFallback(tt.body, tt.fbs); got != tt.want {
			t.Errorf("%s: withoutFallback(%q) = %q, want %q", tt.name, tt.body, got, tt.want)
		}
	}
}
