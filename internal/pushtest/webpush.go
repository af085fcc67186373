package pushtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"
)

// WebPushApp is an app's side of RFC 8291 message encryption: its keys,
// and the decryption of what reaches it.
type WebPushApp struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// NewWebPushApp makes an app's keys.
func NewWebPushApp(t testing.TB) *WebPushApp {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &WebPushApp{key: k, auth: randomBytes(16)}
}

// P256DH and Auth are what the app registers, base64url.
func (a *WebPushApp) P256DH() string {
	return base64.RawURLEncoding.EncodeToString(a.key.PublicKey().Bytes())
}
func (a *WebPushApp) Auth() string { return base64.RawURLEncoding.EncodeToString(a.auth) }

// Decrypt opens an aes128gcm body (RFC 8188) encrypted for the app (RFC
// 8291), as the app does.
func (a *WebPushApp) Decrypt(body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("too short for an aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen || rs < 18 {
		return nil, errors.New("bad aes128gcm header")
	}
	asPub, ct := body[21:21+idlen], body[21+idlen:]
	if uint32(len(ct)) > rs {
		return nil, errors.New("more than one record")
	}
	as, err := ecdh.P256().NewPublicKey(asPub)
	if err != nil {
		return nil, err
	}
	secret, err := a.key.ECDH(as)
	if err != nil {
		return nil, err
	}
	info := "WebPush: info\x00" + string(a.key.PublicKey().Bytes()) + string(asPub)
	ikm, err := hkdf.Key(sha256.New, secret, a.auth, info, 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	pt, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, err
	}
	// Strip the padding delimiter: 0x02 ends the last record.
	for i := len(pt) - 1; i >= 0; i-- {
		switch pt[i] {
		case 0:
			continue
		case 2:
			return pt[:i], nil
		}
		break
	}
	return nil, errors.New("no last-record delimiter")
}
