package matrix

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"

	"github.com/xmppgw/xmppgw/gateways"
)

// Attachments of encrypted rooms. In an encrypted room a client uploads
// the attachment encrypted (AES-256-CTR, a fresh key per file) and puts
// the key, IV and the ciphertext's SHA-256 in the encrypted event's
// `file` instead of a `url`; the homeserver only ever holds ciphertext.
//
// Inbound, the gateway downloads the ciphertext when the event arrives
// and checks its hash, so that a missing or tampered file is told to the
// user in the conversation rather than found out later by a broken link.
// The user then gets a media link of the gateway's, like any Matrix media
// (mediaLink): the link is an unguessable token; the key stays in the
// link's record in the messages bucket (7 days, like the link), and the
// medium is decrypted as it is served. The key is never in the link, so
// it reaches no XMPP server, archive, client cache or HTTP log, and the
// link's expiry really ends access. Without http.public_url there is no
// way to hand over the plaintext: the user is told so.
//
// Outbound, an attachment sent to an encrypted room is encrypted before
// its upload, and the event (itself encrypted) carries `file`.

// encryptAttachment encrypts data in place when the target's room is
// encrypted and returns what decrypts it; nil (data untouched) when the
// room is not encrypted.
func (t target) encryptAttachment(ctx context.Context, data []byte) (*attachment.EncryptedFile, error) {
	encrypted, err := t.s.encryptedRoom(ctx, t.room)
	if err != nil || !encrypted {
		return nil, err
	}
	// The event will have to be encrypted too: no upload when it cannot.
	if _, err := t.s.waitCrypto(ctx); err != nil {
		return nil, err
	}
	f := attachment.NewEncryptedFile()
	f.EncryptInPlace(data)
	return f, nil
}

// encryptedMedia is the attachment of an encrypted room's media message
// (m.File set): checked now, decrypted when served. A file that cannot be
// delivered is not an error: the notice says why, for the user.
func (s *session) encryptedMedia(ctx context.Context, m *event.MessageEventContent) (md *gateways.Media, notice string, err error) {
	a := s.r.a
	f := m.File
	told := func(why string) (*gateways.Media, string, error) {
		// The reason never holds the key (attachment's errors do not).
		a.log.Warn("an encrypted Matrix attachment could not be delivered", "user", s.user, "reason", why)
		return nil, fmt.Sprintf("[the encrypted attachment %q could not be delivered: %s]", cmp.Or(m.FileName, m.Body, "attachment"), why), nil
	}
	uri, err := f.URL.Parse()
	if err != nil {
		return told("its address is not an mxc:// URI")
	}
	if f.Version != attachment.VersionAES256CTR {
		return told(fmt.Sprintf("its encryption (version %q) is not supported", f.Version))
	}
	if err := f.PrepareForDecryption(); err != nil {
		return told("its key is unusable: " + err.Error())
	}
	if a.publicURL == "" || a.msgs == nil {
		return told("the gateway has no public URL (http.public_url) to serve it decrypted")
	}
	size, err := a.checkCiphertext(s.ctx, s.acc, f)
	if err != nil {
		if s.ctx.Err() != nil {
			return nil, "", errStopped // the batch is handed over again
		}
		return told(err.Error())
	}
	md = &gateways.Media{Size: size}
	if m.Info != nil {
		md.Type = m.Info.MimeType
	}
	if md.URL, err = a.mediaLink(ctx, s.user, uri, md.Type, &f.EncryptedFile, size); err != nil {
		return nil, "", err
	}
	return md, "", nil
}

// errHashMismatch: the ciphertext is not what its sender hashed.
var errHashMismatch = errors.New("its content does not match the hash its sender gave (corrupted or tampered with)")

// checkCiphertext downloads an encrypted attachment with acc's login and
// checks it against its SHA-256 (streamed: nothing is kept); it returns
// its length.
func (a *Adapter) checkCiphertext(ctx context.Context, acc account, f *event.EncryptedFileInfo) (int64, error) {
	want, err := base64.RawStdEncoding.DecodeString(f.Hashes.SHA256)
	if err != nil {
		return 0, attachment.ErrInvalidHash
	}
	uri, err := f.URL.Parse()
	if err != nil {
		return 0, err
	}
	resp, err := a.fetchMedia(ctx, acc, uri.Homeserver, uri.FileID)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return 0, fmt.Errorf("its download from the homeserver broke off: %w", err)
	}
	if !hmac.Equal(h.Sum(nil), want) {
		return 0, errHashMismatch
	}
	return n, nil
}

// serveDecrypted serves the ciphertext in resp decrypted with rec's key.
// The hash is checked again (the homeserver could serve other bytes than
// when the attachment arrived); since it is known only at the end, the
// last byte is held back until then, and a mismatch cuts the response
// short: the client sees a failed download, never a whole wrong file.
func serveDecrypted(w http.ResponseWriter, resp *http.Response, rec mediaRecord) {
	f := rec.File
	if err := f.PrepareForDecryption(); err != nil || (rec.Size > 0 && resp.ContentLength >= 0 && resp.ContentLength != rec.Size) {
		http.Error(w, "the homeserver's copy of the attachment is not the one its sender sent", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", cmp.Or(rec.Type, "application/octet-stream"))
	if rec.Size > 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(rec.Size, 10)) // AES-CTR: as long as the ciphertext
	}
	w.Header().Set("Cache-Control", "private, max-age=3600")
	dec := f.DecryptStream(resp.Body)
	hw := &heldWriter{w: w}
	_, err := io.Copy(hw, dec)
	if cerr := dec.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = hw.release()
	}
	if err != nil {
		if !hw.started {
			w.Header().Del("Content-Length")
			http.Error(w, "the attachment could not be decrypted: "+err.Error(), http.StatusBadGateway)
			return
		}
		panic(http.ErrAbortHandler) // the response is cut short
	}
}

// heldWriter passes on all it is given but the last byte, which release
// writes.
type heldWriter struct {
	w       io.Writer
	last    []byte
	started bool // something was written
}

func (h *heldWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := h.pass(h.last); err != nil {
		return 0, err
	}
	if err := h.pass(p[:len(p)-1]); err != nil {
		return 0, err
	}
	h.last = append(h.last[:0], p[len(p)-1])
	return len(p), nil
}

func (h *heldWriter) pass(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	h.started = true
	_, err := h.w.Write(p)
	return err
}

func (h *heldWriter) release() error {
	err := h.pass(h.last)
	h.last = nil
	return err
}
