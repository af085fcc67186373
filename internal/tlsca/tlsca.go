// Package tlsca loads a PEM file of CA certificates for adapters that
// trust a private CA (irc and matrix tls_ca_file).
package tlsca

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// Load reads a PEM file of CA certificates. Blocks other than
// certificates are skipped; a certificate that does not parse is an
// error, and so is a file without one.
func Load(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // names the path
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		n++
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, n, err)
		}
		pool.AddCert(cert)
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}
