package sms

import (
	"errors"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

func TestSegments(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int
		enc  string
	}{
		{"empty", "", 1, "GSM-7"},
		{"160 GSM", strings.Repeat("a", 160), 1, "GSM-7"},
		{"161 GSM", strings.Repeat("a", 161), 2, "GSM-7"},
		{"306 GSM", strings.Repeat("a", 306), 2, "GSM-7"},
		{"307 GSM", strings.Repeat("a", 307), 3, "GSM-7"},
		{"extension chars count twice", strings.Repeat("€", 80), 1, "GSM-7"},
		{"81 euro signs", strings.Repeat("€", 81), 2, "GSM-7"},
		{"umlauts are GSM", strings.Repeat("ü", 160), 1, "GSM-7"},
		{"70 UCS-2", strings.Repeat("ж", 70), 1, "UCS-2"},
		{"71 UCS-2", strings.Repeat("ж", 71), 2, "UCS-2"},
		{"200 UCS-2", strings.Repeat("ж", 200), 3, "UCS-2"},
		{"200 UCS-2 mixed", strings.Repeat("ж", 199) + "a", 3, "UCS-2"},
		{"emoji are two UTF-16 units", strings.Repeat("😀", 35), 1, "UCS-2"},
		{"36 emoji", strings.Repeat("😀", 36), 2, "UCS-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, enc := Segments(tt.body)
			if n != tt.want || enc != tt.enc {
				t.Errorf("Segments = %d %s, want %d %s", n, enc, tt.want, tt.enc)
			}
		})
	}
	// 200 UCS-2 characters of the BMP are 200 units: ceil(200/67) = 3
	// segments (table above). Four segments start past 201 units, e.g. 199
	// characters and two emoji (203 units).
	if n, _ := Segments(strings.Repeat("ж", 199) + "😀😀"); n != 4 {
		t.Errorf("203 UCS-2 units: %d segments, want 4", n)
	}
}

func TestTranslateAddress(t *testing.T) {
	a := &Gateway{cfg: Settings{DefaultRegion: "US"}}
	tests := []struct {
		in, want, cond string
	}{
		{"(555) 123-4567", "+15551234567", ""},
		{"555.123.4567", "+15551234567", ""},
		{"+44 20 7946 0958", "+442079460958", ""},
		{"+1 555 123 4567", "+15551234567", ""},
		{"011 44 20 7946 0958", "+442079460958", ""},
		{"+86 12345678901234567", "", "jid-malformed"}, // the parser would drop digits
		{"12", "", "jid-malformed"},
		{"call me", "", "jid-malformed"},
		{"", "", "jid-malformed"},
	}
	for _, tt := range tests {
		got, err := a.TranslateAddress(tt.in)
		if tt.cond == "" {
			if err != nil || got != tt.want {
				t.Errorf("TranslateAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		var ge *gateways.Error
		if !errors.As(err, &ge) || string(ge.Condition) != tt.cond || ge.Text == "" {
			t.Errorf("TranslateAddress(%q) error = %v, want %s with a text", tt.in, err, tt.cond)
		}
	}
	uk := &Gateway{cfg: Settings{DefaultRegion: "GB"}}
	if got, err := uk.TranslateAddress("020 7946 0958"); err != nil || got != "+442079460958" {
		t.Errorf("GB trunk prefix: %q, %v", got, err)
	}
	noRegion := &Gateway{}
	if _, err := noRegion.TranslateAddress("555 123 4567"); err == nil || !strings.Contains(err.Error(), "country code") {
		t.Errorf("without default_region: %v", err)
	}
}

func TestCheckRecipient(t *testing.T) {
	tests := []struct {
		to, cond, text string
	}{
		{"+15551234567", "", ""},
		{"ACME Bank", "not-acceptable", "cannot receive replies"},
		{"acme", "not-acceptable", "cannot receive replies"},
		{"12345", "not-acceptable", "short code"},
		{"+12", "jid-malformed", "E.164"},
		{"555-1234-567-890-1234", "jid-malformed", "E.164"},
	}
	for _, tt := range tests {
		err := checkRecipient(tt.to)
		if tt.cond == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.to, err)
			}
			continue
		}
		var ge *gateways.Error
		if !errors.As(err, &ge) || string(ge.Condition) != tt.cond || !strings.Contains(ge.Text, tt.text) || !errors.Is(err, gateways.ErrPermanent) {
			t.Errorf("%q: %v, want permanent %s containing %q", tt.to, err, tt.cond, tt.text)
		}
	}
}

// TestShorten: a reply's quote is cut to its limit without splitting a
// character a reader sees as one (an emoji sequence, a letter and its
// accent), after a word when one ends near the cut.
func TestShorten(t *testing.T) {
	a57 := strings.Repeat("a", 57)
	tests := []struct {
		name, in, ellipsis, want string
	}{
		{"short enough", "See you at 7", "…", "See you at 7"},
		{"exactly the limit", strings.Repeat("b", 60), "…", strings.Repeat("b", 60)},
		{"hard cut", strings.Repeat("b", 61), "…", strings.Repeat("b", 59) + "…"},
		{"hard cut, three dots", strings.Repeat("b", 61), "...", strings.Repeat("b", 57) + "..."},
		{"after a word", strings.Repeat("b", 50) + " cdefghijklmnop", "…", strings.Repeat("b", 50) + "…"},
		{"a space right at the cut", strings.Repeat("b", 59) + " c", "…", strings.Repeat("b", 59) + "…"},
		{"zero-width joiner sequence", a57 + "👩\u200d👩\u200d👧bbbb", "…", a57 + "…"},
		{"skin tone", strings.Repeat("a", 58) + "👍🏽bbb", "…", strings.Repeat("a", 58) + "…"},
		{"combining accent", strings.Repeat("a", 58) + "e\u0301bbb", "…", strings.Repeat("a", 58) + "…"},
		{"keycap", strings.Repeat("a", 57) + "1\ufe0f\u20e3bb", "…", strings.Repeat("a", 57) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shorten(tt.in, 60, tt.ellipsis)
			if got != tt.want {
				t.Errorf("shorten(%q) =\n%q, want\n%q", tt.in, got, tt.want)
			}
			if n := len([]rune(got)); n > 60 {
				t.Errorf("shorten(%q) has %d characters", tt.in, n)
			}
		})
	}
}

// FuzzTranslateAddress: whatever a user types into jabber:iq:gateway, the
// answer is an E.164 number or a jid-malformed error saying why.
func FuzzTranslateAddress(f *testing.F) {
	for _, s := range []string{
		"(555) 123-4567", "555.123.4567", "+44 20 7946 0958", "+1 555 123 4567", "12", "call me", "",
		"+", "++1", "+0 123", "+800 1234 5678", "+1 (555) 123-4567 ext. 89", "tel:+15551234567",
		"+1555123456789012345", "００１ ５５５ １２３ ４５６７", "+49 (0) 30 1234567", "\x00\xff", "+1-555-CALL-NOW",
		"+882 3456789012", "  +33 1 23 45 67 89  ",
	} {
		f.Add(s)
	}
	adapters := []*Gateway{{cfg: Settings{DefaultRegion: "US"}}, {}}
	f.Fuzz(func(t *testing.T, in string) {
		for _, a := range adapters {
			got, err := a.TranslateAddress(in)
			if err == nil {
				if !E164.MatchString(got) {
					t.Fatalf("region %q: TranslateAddress(%q) = %q, not E.164", a.cfg.DefaultRegion, in, got)
				}
				continue
			}
			var ge *gateways.Error
			if !errors.As(err, &ge) || ge.Condition != gateways.JIDMalformed || ge.Text == "" {
				t.Fatalf("region %q: TranslateAddress(%q) error %#v, want jid-malformed with a text", a.cfg.DefaultRegion, in, err)
			}
		}
	})
}

// FuzzSegments: every body costs at least one segment in a known encoding,
// a longer body never costs less, and the count is what the fake Twilio
// (which follows Twilio's segment calculator) bills.
func FuzzSegments(f *testing.F) {
	for _, s := range []struct {
		body string
		r    rune
	}{
		{"", 'a'}, {strings.Repeat("a", 160), 'a'}, {strings.Repeat("a", 160), 'ж'}, {strings.Repeat("€", 80), '€'},
		{strings.Repeat("€", 76), 'ж'}, {strings.Repeat("ж", 70), '😀'}, {strings.Repeat("😀", 35), 'a'},
		{"\xe2\x82", 0xac}, {"a\xff", -1}, {strings.Repeat("a", 152), '€'}, {strings.Repeat("ж", 66), '😀'},
		{strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), 'a'}, {strings.Repeat("ж", 66) + "😀" + strings.Repeat("ж", 66), 'a'},
	} {
		f.Add(s.body, s.r)
	}
	f.Fuzz(func(t *testing.T, body string, r rune) {
		n, enc := Segments(body)
		if n < 1 || (enc != "GSM-7" && enc != "UCS-2") {
			t.Fatalf("Segments(%q) = %d %q", body, n, enc)
		}
		if m, enc2 := Segments(body + string(r)); m < n {
			t.Fatalf("Segments(%q) = %d %s but with %q appended %d %s", body, n, enc, r, m, enc2)
		}
		if billed := twiliotest.CountSegments(body); n != billed {
			t.Fatalf("Segments(%q) = %d %s; Twilio bills %d", body, n, enc, billed)
		}
	})
}

// TestSegmentsNoSplit: an extension character or a surrogate pair is never
// cut between two segments, so it can cost a segment more than the units
// divided by 153 or 67 suggest.
func TestSegmentsNoSplit(t *testing.T) {
	tests := []struct {
		name, body string
		want       int
	}{
		{"escape at a GSM boundary", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), 3},
		{"escape inside a GSM segment", strings.Repeat("a", 151) + "€" + strings.Repeat("a", 152), 2},
		{"surrogate pair at a UCS-2 boundary", strings.Repeat("ж", 66) + "😀" + strings.Repeat("ж", 66), 3},
		{"surrogate pair inside a UCS-2 segment", strings.Repeat("ж", 65) + "😀" + strings.Repeat("ж", 67), 2},
	}
	for _, tt := range tests {
		if n, _ := Segments(tt.body); n != tt.want {
			t.Errorf("%s: %d segments, want %d", tt.name, n, tt.want)
		}
	}
}
