package matrix_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/xmppgw/xmppgw/gateways"
)

// png is a 1×1 image.
var png = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")

// TestMedia: an image both ways. From XMPP (a XEP-0066 URL) it is fetched
// and uploaded to the content repository as m.image; from Matrix it
// arrives as a URL that serves it.
func TestMedia(t *testing.T) {
	w := newWorld(t)
	a := w.adapter(t)
	h := w.start(t, a)
	ctx := ctxT(t)
	upload := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "image/png")
		_, _ = rw.Write(png)
	}))
	defer upload.Close()
	url := upload.URL + "/upload/cat.png"
	sent, err := a.Send(ctx, gateways.Outbound{ID: "i1", Key: "ki1", From: aliceFull, To: "bob%localhost", Body: url,
		Media: []gateways.Media{{URL: url, Type: "image/png"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sent.IDs) != 1 {
		t.Errorf("Send returned %v, want the image's event alone (the body was its URL)", sent.IDs)
	}
	img := w.bob.Wait(t, wait, "the image", func(e *event.Event) bool {
		m, ok := e.Content.Parsed.(*event.MessageEventContent)
		return ok && m.MsgType == event.MsgImage
	})
	m := img.Content.AsMessage()
	if m.Body != "cat.png" || m.Info == nil || m.Info.MimeType != "image/png" || m.Info.Size != len(png) {
		t.Errorf("image event %+v %+v", m, m.Info)
	}
	uri, err := m.URL.Parse()
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.bob.DownloadBytes(ctx, uri)
	if err != nil || !bytes.Equal(got, png) {
		t.Errorf("the uploaded image = %d bytes, %v; want the %d sent", len(got), err, len(png))
	}

	// From Matrix.
	up, err := w.bob.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: png, ContentType: "image/png", FileName: "dog.png"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.bob.SendMessageEvent(ctx, img.RoomID, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "dog.png", URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "image/png", Size: len(png)},
	}); err != nil {
		t.Fatal(err)
	}
	in := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return len(m.Media) == 1 })
	if in.Media[0].Type != "image/png" || in.Media[0].Size != int64(len(png)) {
		t.Errorf("media delivered as %+v", in.Media[0])
	}
	resp, err := http.Get(in.Media[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, png) {
		t.Errorf("GET %s: %s, %d bytes; want the image", in.Media[0].URL, resp.Status, len(body))
	}
}

// TestMediaLinks: with http.public_url, media from Matrix reaches the
// user as an expiring link of the gateway's, which fetches it from the
// homeserver with the user's login; an unknown link is 404.
func TestMediaLinks(t *testing.T) {
	w := newWorld(t)
	var handler http.Handler = http.NotFoundHandler()
	public := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { handler.ServeHTTP(rw, r) }))
	defer public.Close()
	a := w.adapterAt(t, public.URL)
	if handler = a.HTTPHandler(); handler == nil {
		t.Fatal("HTTPHandler is nil with a public URL")
	}
	if w.adapter(t).HTTPHandler() != nil {
		t.Error("HTTPHandler is not nil without a public URL")
	}
	h := w.start(t, a)
	ctx := ctxT(t)
	if _, err := a.Send(ctx, gateways.Outbound{ID: "x1", Key: "k1", From: aliceFull, To: "bob%localhost", Body: "hello"}); err != nil {
		t.Fatal(err)
	}
	first := w.bob.Wait(t, wait, "the first message", func(e *event.Event) bool { return e.Type == event.EventMessage })
	up, err := w.bob.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: png, ContentType: "image/png", FileName: "dog.png"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.bob.SendMessageEvent(ctx, first.RoomID, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "dog.png", URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "image/png", Size: len(png)},
	}); err != nil {
		t.Fatal(err)
	}
	in := h.WaitDelivered(t, wait, func(m gateways.Inbound) bool { return len(m.Media) == 1 })
	link := in.Media[0].URL
	if !strings.HasPrefix(link, public.URL+"/matrix/matrix/media/") || !strings.HasSuffix(link, ".png") || strings.Contains(link, up.ContentURI.FileID) {
		t.Errorf("media link %s: want an opaque link of the gateway's ending in .png", link)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, png) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("GET the link: %s %s, %d bytes; want the image", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
	resp, err = c.Get(public.URL + "/matrix/matrix/media/AAAAAAAAAAAAAAAAAAAAAA.png")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET an unknown link: %s, want 404", resp.Status)
	}
}
