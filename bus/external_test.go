package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
)

// restartableNATS returns a function that starts a nats-server with
// JetStream on the same reserved port and store directory each time: a
// restart of one server, as an operator's would be.
func restartableNATS(t *testing.T) func() *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: freePort(t), JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	return func() *server.Server {
		t.Helper()
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		return srv
	}
}

// startNATS runs a real nats-server with JetStream on a loopback port, as an
// operator's external NATS would be.
func startNATS(t *testing.T, tlsConf *tls.Config) string {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1, // random
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	}
	if tlsConf != nil {
		opts.TLS = true
		opts.TLSConfig = tlsConf
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return srv.ClientURL()
}

func TestExternalNATS(t *testing.T) {
	url := startNATS(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Two processes' worth of connections to one external server: the
	// second Open finds the streams in place and updates them in place.
	a, err := bus.Open(ctx, bus.Options{URL: "nats://127.0.0.1:1," + url, Name: "a"})
	if err != nil {
		t.Fatalf("open a: %v", err)
	}
	defer a.Close(context.Background())
	b, err := bus.Open(ctx, bus.Options{URL: url, Name: "b"})
	if err != nil {
		t.Fatalf("open b: %v", err)
	}
	defer b.Close(context.Background())
	if a.Embedded() || b.Embedded() {
		t.Fatal("external connections report an embedded server")
	}

	env := &bus.Envelope{Kind: bus.KindMessage, ID: "e1", Gateway: "sms", User: "alice@localhost/r", Contact: "+15551234567", Message: &bus.Message{ID: "m1", Body: "hi"}}
	if _, err := a.Publish(ctx, bus.OutSubject("sms"), env, "out:m1"); err != nil {
		t.Fatal(err)
	}
	cons, err := b.Consumer(ctx, bus.ConsumerConfig{Stream: bus.StreamOut, Name: bus.AdapterConsumer("sms"), Subject: bus.OutSubject("sms")})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, err := bus.Decode(msg.Data())
	if err != nil || got.Message.Body != "hi" {
		t.Fatalf("consumed %+v, %v", got, err)
	}
	if err := msg.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
}

func TestExternalNATSUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := bus.Open(ctx, bus.Options{URL: "nats://user:hunter2@127.0.0.1:1"})
	if err == nil {
		t.Fatal("connected to nothing")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the password reached the error text: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error does not say where it tried: %v", err)
	}
}

func TestExternalNATSWithTLSCA(t *testing.T) {
	dir := t.TempDir()
	caFile, serverCert := makeCA(t, dir)
	url := startNATS(t, &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12})
	url = strings.Replace(url, "nats://", "tls://", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := bus.Open(ctx, bus.Options{URL: url}); err == nil {
		t.Fatal("connected over TLS without trusting the CA")
	}
	b, err := bus.Open(ctx, bus.Options{URL: url, TLSCAFile: caFile})
	if err != nil {
		t.Fatalf("open with tls_ca_file: %v", err)
	}
	defer b.Close(context.Background())
	if err := b.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

// makeCA writes a CA certificate to dir and returns its path and a server
// certificate for 127.0.0.1 signed by it.
func makeCA(t *testing.T, dir string) (string, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "xmppgw test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}

// A restart of an external nats-server while publishes are in flight: a
// request is not failed by a reconnect, so a publish whose answer left
// with the old connection used to wait out its caller's whole time (5 s in
// the component) and the publishes queued behind it in order ran out of
// theirs: the fault suite's "external NATS restart" told alice of up to 6
// messages "not queued" for a restart of 160 ms. The bus now publishes
// such a message again once the connection is back (its dedup id makes
// that safe). Every answer is checked against what the stream holds, and
// with restarts this short, every message is stored.
func TestExternalRestartAnswersInTime(t *testing.T) {
	start := restartableNATS(t)
	srv := start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	b := openExternal(t, srv.ClientURL())

	type answer struct {
		id  string
		err error
	}
	var (
		mu      sync.Mutex
		answers []answer
		stored  int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%05d", w, i)
				e := &bus.Envelope{Kind: bus.KindMessage, ID: id, Gateway: "g", User: "a@example.com", Contact: "+1555", Message: &bus.Message{Body: id}}
				// The component's bound on a publish.
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				_, err := b.Start(bus.OutSubject("g"), e, id).Wait(ctx)
				cancel()
				mu.Lock()
				answers = append(answers, answer{id, err})
				if err == nil {
					stored++
				}
				mu.Unlock()
			}
		}()
	}
	progress := func(n int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		mu.Lock()
		want := stored + n
		mu.Unlock()
		for {
			mu.Lock()
			got := stored
			mu.Unlock()
			if got >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no progress within 15s (%d stored, want %d)", got, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	const restarts = 3
	for range restarts {
		progress(100)
		srv.Shutdown()
		srv.WaitForShutdown()
		srv = start()
	}
	progress(100)
	close(stop)
	wg.Wait()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, bus.StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inStream := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		if m, err := s.GetMsg(ctx, seq); err == nil {
			inStream[m.Header.Get(jetstream.MsgIDHeader)] = true
		}
	}
	var failed int
	for _, a := range answers {
		switch {
		case a.err == nil:
			if !inStream[a.id] {
				t.Errorf("%s: acknowledged, not in the stream", a.id)
			}
		default:
			failed++
			t.Errorf("%s: %v (in the stream: %v)", a.id, a.err, inStream[a.id])
		}
	}
	t.Logf("%d restarts: %d answers, %d stored, %d failed", restarts, len(answers), stored, failed)
}
