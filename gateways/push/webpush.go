package push

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
	"strings"
)

// Message encryption for Web Push (RFC 8291) with the aes128gcm content
// coding (RFC 8188), as UnifiedPush uses it: when the app registered its
// public key (p256dh) and authentication secret (auth), the push body is
// readable by the app alone, not by the distributor's server.

// webPushKeys are an app's keys, decoded.
type webPushKeys struct {
	public *ecdh.PublicKey // the user agent's P-256 key
	auth   []byte          // 16 bytes
}

// parseWebPushKeys decodes base64url (padded or not) p256dh and auth.
func parseWebPushKeys(p256dh, auth string) (*webPushKeys, error) {
	dec := func(s string) ([]byte, error) {
		return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	pub, err := dec(p256dh)
	if err != nil {
		return nil, errors.New("p256dh is not base64url")
	}
	k, err := ecdh.P256().NewPublicKey(pub)
	if err != nil {
		return nil, errors.New("p256dh is not an uncompressed P-256 public key")
	}
	a, err := dec(auth)
	if err != nil || len(a) != 16 {
		return nil, errors.New("auth is not 16 bytes of base64url")
	}
	return &webPushKeys{public: k, auth: a}, nil
}

// encryptWebPush returns the aes128gcm body of plaintext for keys: one
// record, with the sender's ephemeral public key as the key id.
func encryptWebPush(keys *webPushKeys, plaintext []byte) ([]byte, error) {
	as, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	return encryptWebPushWith(keys, plaintext, as, salt)
}

// encryptWebPushWith encrypts with the given ephemeral key and salt (the
// RFC's test vector fixes both).
func encryptWebPushWith(keys *webPushKeys, plaintext []byte, as *ecdh.PrivateKey, salt []byte) ([]byte, error) {
	secret, err := as.ECDH(keys.public)
	if err != nil {
		return nil, err
	}
	uaPub, asPub := keys.public.Bytes(), as.PublicKey().Bytes()
	// RFC 8291 §3.4: the input keying material from the ECDH secret and
	// the auth secret, bound to both public keys.
	keyInfo := "WebPush: info\x00" + string(uaPub) + string(asPub)
	ikm, err := hkdf.Key(sha256.New, secret, keys.auth, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// RFC 8188 §2: salt, record size, key id length, key id; then the
	// one (last) record: the plaintext, the delimiter 0x02, sealed.
	header := make([]byte, 0, 16+4+1+len(asPub))
	header = append(header, salt...)
	header = binary.BigEndian.AppendUint32(header, 4096)
	header = append(header, byte(len(asPub)))
	header = append(header, asPub...)
	record := append(append([]byte{}, plaintext...), 0x02)
	return gcm.Seal(header, nonce, record, nil), nil
}
