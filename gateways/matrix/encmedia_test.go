//go:build goolm

package matrix_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"image"
	"image/color"
	imgpng "image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/dendritetest"
	"github.com/xmppgw/xmppgw/internal/proctest"
)

// noisePNG is a PNG of random pixels, side×side: big enough (~4·side²
// bytes) that serving it decrypted takes many writes.
func noisePNG(t *testing.T, side int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	px := make([]byte, 4*side*side)
	_, _ = rand.Read(px)
	for i := 0; i < side*side; i++ {
		img.Set(i%side, i/side, color.NRGBA{px[4*i], px[4*i+1], px[4*i+2], 255})
	}
	var b bytes.Buffer
	if err := imgpng.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sendEncryptedFile is what Element does for an attachment in an
// encrypted room: encrypt it with a fresh key, upload the ciphertext,
// send (encrypted) an event whose `file` holds the key. tamper changes the
// file's hash first. It returns the event and the file's key material.
func sendEncryptedFile(t *testing.T, u *dendritetest.User, room id.RoomID, msgtype event.MessageType, name, typ string, plain []byte, tamper func(*event.EncryptedFileInfo)) (id.EventID, *event.EncryptedFileInfo) {
	t.Helper()
	ctx := ctxT(t)
	f := attachment.NewEncryptedFile()
	ct := bytes.Clone(plain)
	f.EncryptInPlace(ct)
	up, err := u.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: ct, ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	file := &event.EncryptedFileInfo{EncryptedFile: *f, URL: up.ContentURI.CUString()}
	if tamper != nil {
		tamper(file)
	}
	resp, err := u.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{
		MsgType: msgtype, Body: name, File: file, Info: &event.FileInfo{MimeType: typ, Size: len(plain)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := wireType(t, u, room, resp.EventID); got != event.EventEncrypted {
		t.Fatalf("the attachment's event is %s on the homeserver, want m.room.encrypted", got.Type)
	}
	return resp.EventID, file
}

// TestEncryptedMedia: attachments in an encrypted direct chat. From
// Matrix: bob (with Olm, as Element) sends an encrypted image; the user
// gets a link of the gateway's that serves the plaintext, byte for byte,
// and holds no key. From XMPP: the attachment is encrypted before its
// upload; the event carries `file`, no `url`; the homeserver holds only
// ciphertext, which bob decrypts to the bytes sent. A file whose hash
// does not match, and one the homeserver does not have, are told to the
// user in the chat. No key ever reaches the adapter's log.
func TestEncryptedMedia(t *testing.T) {
	w := newWorld(t)
	logs := &proctest.SyncBuffer{}
	w.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.bob.EnableCrypto(t)
	var handler http.Handler = http.NotFoundHandler()
	public := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { handler.ServeHTTP(rw, r) }))
	defer public.Close()
	a := w.adapterAt(t, public.URL)
	handler = a.HTTPHandler()
	h, room := w.startEncrypted(t, a)
	ctx := ctxT(t)
	var keys []string // every key and IV of the test's files

	// From Matrix.
	plain := noisePNG(t, 160)
	start := time.Now()
	ev, file := sendEncryptedFile(t, w.bob, room, event.MsgImage, "noise.png", "image/png", plain, nil)
	keys = append(keys, file.Key.Key, file.InitVector)
	in := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.ProviderID == string(ev) })
	t.Logf("bob's encrypted image (%d bytes) reached the user as a link %v after it was sent", len(plain), time.Since(start).Round(time.Millisecond))
	if len(in.Media) != 1 || in.Body != "" || in.From != "bob%localhost" {
		t.Fatalf("the encrypted image was delivered as %+v, want one medium and no text", in)
	}
	md := in.Media[0]
	if md.Type != "image/png" || md.Size != int64(len(plain)) {
		t.Errorf("the medium: %+v, want image/png of %d bytes", md, len(plain))
	}
	uri, _ := file.URL.Parse()
	for _, secret := range []string{file.Key.Key, file.InitVector, uri.FileID} {
		if strings.Contains(md.URL, secret) || strings.Contains(md.URL, url64(secret)) {
			t.Errorf("the link %s holds the file's key, IV or media id", md.URL)
		}
	}
	if !strings.HasPrefix(md.URL, public.URL+"/matrix/matrix/media/") {
		t.Errorf("the link %s is not one of the gateway's", md.URL)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	start = time.Now()
	resp, err := c.Get(md.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, plain) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("GET the link: %s %s, %d bytes (%v); want the %d bytes of the image, decrypted", resp.Status, resp.Header.Get("Content-Type"), len(body), err, len(plain))
	}
	t.Logf("the link served the image decrypted in %v", time.Since(start).Round(time.Millisecond))

	// From XMPP.
	plain2 := noisePNG(t, 120)
	upload := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "image/png")
		_, _ = rw.Write(plain2)
	}))
	defer upload.Close()
	link := upload.URL + "/upload/cat.png"
	sent, err := a.Send(ctx, gateways.Outbound{ID: "i1", Key: "ki1", From: aliceFull, To: "bob%localhost", Body: link,
		Media: []gateways.Media{{URL: link, Type: "image/png"}}})
	if err != nil {
		t.Fatal(err)
	}
	img := w.bob.Wait(t, wait, "the user's image", func(e *event.Event) bool {
		m, ok := e.Content.Parsed.(*event.MessageEventContent)
		return ok && e.Sender == "@gtalice:localhost" && m.MsgType == event.MsgImage
	})
	if len(sent.IDs) != 1 || sent.IDs[0] != string(img.ID) {
		t.Errorf("Send returned %v, want the image's event %s alone", sent.IDs, img.ID)
	}
	if !img.Mautrix.WasEncrypted || wireType(t, w.bob, room, img.ID) != event.EventEncrypted {
		t.Errorf("the user's image event was not encrypted on the wire")
	}
	m := img.Content.AsMessage()
	if _, hasURL := img.Content.Raw["url"]; hasURL || m.URL != "" || m.File == nil {
		t.Fatalf("the user's image event: url %q, file %v; want `file` and no `url` in an encrypted room", m.URL, m.File != nil)
	}
	if m.Body != "cat.png" || m.Info == nil || m.Info.MimeType != "image/png" || m.Info.Size != len(plain2) {
		t.Errorf("the user's image event: %q %+v", m.Body, m.Info)
	}
	keys = append(keys, m.File.Key.Key, m.File.InitVector)
	fileURI, err := m.File.URL.Parse()
	if err != nil {
		t.Fatal(err)
	}
	ct, err := w.bob.DownloadBytes(ctx, fileURI)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != len(plain2) || bytes.Equal(ct, plain2) || bytes.Contains(ct, []byte("PNG")) {
		t.Errorf("the homeserver holds %d bytes that are not the image's ciphertext", len(ct))
	}
	if err := m.File.DecryptInPlace(ct); err != nil || !bytes.Equal(ct, plain2) {
		t.Errorf("bob decrypted the upload to %d bytes (%v), want the %d bytes sent", len(ct), err, len(plain2))
	}

	// A tampered hash, and a file the homeserver does not have: told.
	bad, f := sendEncryptedFile(t, w.bob, room, event.MsgFile, "report.pdf", "application/pdf", []byte("%PDF-1.4 secret"), func(f *event.EncryptedFileInfo) {
		sum := sha256.Sum256([]byte("something else"))
		f.Hashes.SHA256 = base64.RawStdEncoding.EncodeToString(sum[:])
	})
	keys = append(keys, f.Key.Key, f.InitVector)
	told := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.ProviderID == string(bad) })
	if len(told.Media) != 0 || !strings.Contains(told.Body, `"report.pdf" could not be delivered`) || !strings.Contains(told.Body, "does not match the hash") {
		t.Errorf("the tampered file reached the user as %+v, want a notice that its hash does not match", told)
	}
	gone, f := sendEncryptedFile(t, w.bob, room, event.MsgFile, "gone.txt", "text/plain", []byte("gone"), func(f *event.EncryptedFileInfo) {
		f.URL = "mxc://localhost/NoSuchMediaAtAll"
	})
	keys = append(keys, f.Key.Key, f.InitVector)
	told = h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.ProviderID == string(gone) })
	if len(told.Media) != 0 || !strings.Contains(told.Body, `"gone.txt" could not be delivered`) || !strings.Contains(told.Body, "no such media") {
		t.Errorf("the missing file reached the user as %+v, want a notice that the homeserver does not have it", told)
	}

	for _, ev := range []id.EventID{ev, bad, gone} {
		n := 0
		for _, m := range h.Delivered() {
			if m.ProviderID == string(ev) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s was delivered %d times", ev, n)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "could not be delivered") {
		t.Errorf("the adapter's log does not tell the files that could not be delivered")
	}
	for _, k := range keys {
		if strings.Contains(out, k) || strings.Contains(out, url64(k)) {
			t.Errorf("a file's key or IV is in the adapter's log")
		}
	}
}

// url64 is s (unpadded standard base64) in unpadded URL-safe base64.
func url64(s string) string {
	return strings.NewReplacer("+", "-", "/", "_").Replace(s)
}

// TestEncryptedMediaWithoutLinks: without http.public_url the gateway
// cannot hand over a decrypted attachment (the homeserver's URL would
// serve ciphertext): the user is told so, with the caption.
func TestEncryptedMediaWithoutLinks(t *testing.T) {
	w := newWorld(t)
	w.bob.EnableCrypto(t)
	a := w.adapter(t)
	h, room := w.startEncrypted(t, a)
	f := attachment.NewEncryptedFile()
	ct := bytes.Clone(png)
	f.EncryptInPlace(ct)
	ctx := ctxT(t)
	up, err := w.bob.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: ct, ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := w.bob.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgImage,
		Body: "look at this", FileName: "dot.png", File: &event.EncryptedFileInfo{EncryptedFile: *f, URL: up.ContentURI.CUString()}})
	if err != nil {
		t.Fatal(err)
	}
	in := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return m.ProviderID == string(ev.EventID) })
	if len(in.Media) != 0 || !strings.HasPrefix(in.Body, "look at this\n") || !strings.Contains(in.Body, `"dot.png" could not be delivered`) ||
		!strings.Contains(in.Body, "http.public_url") {
		t.Errorf("delivered %+v, want the caption and a notice that the gateway has no public URL", in)
	}
}
