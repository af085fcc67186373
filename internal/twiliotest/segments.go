package twiliotest

import "unicode/utf16"

// GSM 03.38 default alphabet (basic table). Each of these costs one septet.
// Note that é, ü, ñ, Ä, Ö, Å, Ø, Æ, ß, Ç… are in it, so they do not force
// UCS-2; accented letters outside this list (á, í, ó, ú, ê, ç…) do.
const gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// GSM 03.38 extension table: sent as ESC + char, so each costs two septets.
const gsm7Extension = "\f^{}\\[~]|€"

var gsm7Cost = func() map[rune]int {
	m := make(map[rune]int, len(gsm7Basic)+len(gsm7Extension))
	for _, r := range gsm7Basic {
		m[r] = 1
	}
	for _, r := range gsm7Extension {
		m[r] = 2
	}
	return m
}()

// Per-segment capacity. A concatenated message spends 6 bytes of every
// segment on the UDH, which leaves 153 septets or 67 UCS-2 code units.
const (
	gsm7Single = 160
	gsm7Multi  = 153
	ucs2Single = 70
	ucs2Multi  = 67
)

// CountSegments returns the number of SMS segments Twilio bills for body
// when it is sent without media (Smart Encoding off, Twilio's default).
//
// A body made only of GSM-7 characters is sent as GSM-7: 160 septets fit in
// one segment, 153 per segment otherwise, and extension-table characters
// (\f ^ { } \ [ ~ ] | €) cost two septets. Any other character switches the
// whole body to UCS-2: 70 UTF-16 code units in one segment, 67 otherwise,
// with characters outside the BMP (most emoji) costing two. As in Twilio's
// segment calculator, an escape sequence or surrogate pair is never split
// across two segments. An empty body counts as one segment.
func CountSegments(body string) int {
	single, multi := gsm7Single, gsm7Multi
	cost := func(r rune) int { return gsm7Cost[r] }
	for _, r := range body {
		if gsm7Cost[r] == 0 {
			single, multi = ucs2Single, ucs2Multi
			cost = func(r rune) int { return len(utf16.Encode([]rune{r})) }
			break
		}
	}
	total := 0
	for _, r := range body {
		total += cost(r)
	}
	if total <= single {
		return 1
	}
	segments, used := 1, 0
	for _, r := range body {
		c := cost(r)
		if used+c > multi {
			segments++
			used = 0
		}
		used += c
	}
	return segments
}
