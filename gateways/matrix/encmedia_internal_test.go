package matrix

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"maunium.net/go/mautrix/crypto/attachment"
)

// TestServeDecrypted: a linked encrypted attachment is served decrypted;
// when the homeserver's bytes are not those that were hashed, the client
// never gets a whole file: a wrong length is refused before anything is
// sent, a changed byte cuts the response short.
func TestServeDecrypted(t *testing.T) {
	plain := make([]byte, 100_000)
	_, _ = rand.Read(plain)
	f := attachment.NewEncryptedFile()
	ct := bytes.Clone(plain)
	f.EncryptInPlace(ct)
	// As the record is stored and read back.
	b, _ := json.Marshal(mediaRecord{Type: "image/png", File: f, Size: int64(len(ct))})
	tests := []struct {
		name     string
		served   func() []byte // what the homeserver serves
		want     int           // status
		wantBody bool          // the plaintext, whole
	}{
		{"intact", func() []byte { return ct }, http.StatusOK, true},
		{"a byte changed", func() []byte { c := bytes.Clone(ct); c[len(c)/2] ^= 1; return c }, http.StatusOK, false},
		{"the last byte changed", func() []byte { c := bytes.Clone(ct); c[len(c)-1] ^= 1; return c }, http.StatusOK, false},
		{"shorter", func() []byte { return ct[:len(ct)-1] }, http.StatusBadGateway, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec mediaRecord
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			served := tt.served()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				resp := &http.Response{StatusCode: http.StatusOK, ContentLength: int64(len(served)), Body: io.NopCloser(bytes.NewReader(served))}
				serveDecrypted(w, resp, rec)
			}))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %s, want %d", resp.Status, tt.want)
			}
			whole := err == nil && bytes.Equal(body, plain)
			if whole != tt.wantBody {
				t.Errorf("got %d bytes (read error %v); want the whole plaintext: %v", len(body), err, tt.wantBody)
			}
			if !tt.wantBody && err == nil && tt.want == http.StatusOK {
				t.Errorf("a tampered attachment was served as a complete response of %d bytes", len(body))
			}
			if tt.wantBody && resp.Header.Get("Content-Type") != "image/png" {
				t.Errorf("Content-Type %q, want image/png", resp.Header.Get("Content-Type"))
			}
		})
	}
}
