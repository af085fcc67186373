package component

import "testing"

func TestEscapeLocal(t *testing.T) {
	tests := []struct{ network, local string }{
		{"+15551234567", "+15551234567"},
		{"ACME Bank", `ACME\20Bank`},
		{"d'artagnan", `d\27artagnan`},
		{"a@b/c:d", `a\40b\2fc\3ad`},
		{`back\slash`, `back\5cslash`},
		{`<&">`, `\3c\26\22\3e`},
	}
	for _, tt := range tests {
		if got := escapeLocal(tt.network); got != tt.local {
			t.Errorf("escapeLocal(%q) = %q, want %q", tt.network, got, tt.local)
		}
		if got := unescapeLocal(tt.local); got != tt.network {
			t.Errorf("unescapeLocal(%q) = %q, want %q", tt.local, got, tt.network)
		}
	}
	// Not an escape sequence: left alone.
	if got := unescapeLocal(`a\zzb`); got != `a\zzb` {
		t.Errorf("unescapeLocal kept %q", got)
	}
}
