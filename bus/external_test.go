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
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/xmppgw/xmppgw/bus"
)

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
