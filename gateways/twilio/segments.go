package twilio

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
func Segments(body string) (segments int, encoding string) {
	septets, gsm := 0, true
	units := 0
	for _, r := range body {
		switch {
		case gsmBasicSet[r]:
			septets++
		case gsmExtSet[r]:
			septets += 2
		default:
			gsm = false
		}
		if r >= 0x10000 {
			units += 2
		} else {
			units++
		}
	}
	if gsm {
		return count(septets, 160, 153), "GSM-7"
	}
	return count(units, 70, 67), "UCS-2"
}

func count(n, single, multi int) int {
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}
