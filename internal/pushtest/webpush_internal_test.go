package pushtest

import (
	"crypto/ecdh"
	"encoding/base64"
	"testing"
)

// The app side opens RFC 8291 Appendix A's message.
func TestDecryptRFC8291Vector(t *testing.T) {
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	k, err := ecdh.P256().NewPrivateKey(dec("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
	if err != nil {
		t.Fatal(err)
	}
	app := &WebPushApp{key: k, auth: dec("BTBZMqHH6r4Tts7J_aSIgg")}
	if app.P256DH() != "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4" {
		t.Fatalf("public key %s", app.P256DH())
	}
	pt, err := app.Decrypt(dec("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"))
	if err != nil || string(pt) != "When I grow up, I want to be a watermelon" {
		t.Fatalf("%q, %v", pt, err)
	}
}
