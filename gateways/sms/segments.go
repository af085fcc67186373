package sms

// GSM 03.38: the basic character set costs one septet, the extension table
// two (escape + char). Anything else forces UCS-2 for the whole message.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

const gsmExtension = "\f^{}\\[~]|€"

var gsmBasicSet, gsmExtSet = runeSet(gsmBasic), runeSet(gsmExtension)

func runeSet(s string) map[rune]bool {
	m := map[rune]bool{}
	for _, r := range s {
		m[r] = true
	}
	return m
}

// Segments counts the SMS segments a body needs, as carriers bill them:
// GSM-7 160 characters in one segment or 153 per segment when split; UCS-2
// 70, or 67 per segment (counted in UTF-16 code units, so an emoji is two).
// A split never cuts an extension character (escape + char) or a surrogate
// pair in two, so a segment may carry one unit less.
func Segments(body string) (segments int, encoding string) {
	gsm := true
	for _, r := range body {
		if !gsmBasicSet[r] && !gsmExtSet[r] {
			gsm = false
			break
		}
	}
	single, multi, encoding := 160, 153, "GSM-7"
	cost := func(r rune) int {
		if gsmExtSet[r] {
			return 2
		}
		return 1
	}
	if !gsm {
		single, multi, encoding = 70, 67, "UCS-2"
		cost = func(r rune) int {
			if r >= 0x10000 {
				return 2
			}
			return 1
		}
	}
	total := 0
	for _, r := range body {
		total += cost(r)
	}
	if total <= single {
		return 1, encoding
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
	return segments, encoding
}
