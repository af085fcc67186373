package push

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"time"
)

// Config is the gateways.<name>.push block.
type Config struct {
	// AllowPrivateEndpoints lets UnifiedPush endpoints resolve to
	// loopback, private and link-local addresses. Endpoints are fetched by
	// the gateway, so by default they may not reach its own network
	// (SSRF): for tests and private deployments only.
	AllowPrivateEndpoints bool `koanf:"allow_private_endpoints"`
	// TTL is how long a push service keeps a push for a device it cannot
	// reach (UnifiedPush TTL header, FCM android.ttl, APNs expiration).
	TTL time.Duration `koanf:"ttl"`
	// Urgency is RFC 8030's: very-low, low, normal or high. high wakes a
	// sleeping Android phone (FCM priority HIGH, APNs priority 10 for
	// alerts); the others may wait for the device's next wake-up.
	Urgency string `koanf:"urgency"`
	// DeviceBurst pushes may go to one device at once, then one per
	// DeviceInterval; the publishes beyond are answered but not pushed
	// (the device is awake by then, and its client fetches everything).
	DeviceBurst    int           `koanf:"device_burst"`
	DeviceInterval time.Duration `koanf:"device_interval"`
	// MaxDevicesPerUser bounds each user's registrations.
	MaxDevicesPerUser int `koanf:"max_devices_per_user"`
	// RequestTimeout bounds one request to a push service.
	RequestTimeout time.Duration `koanf:"request_timeout"`

	FCM  FCMConfig  `koanf:"fcm"`
	APNs APNsConfig `koanf:"apns"`

	fcmAccount *serviceAccount   // parsed by Validate
	apnsKey    *ecdsa.PrivateKey // parsed by Validate
}

// FCMConfig enables register-push-fcm: Firebase Cloud Messaging, HTTP v1
// API, authenticated with a service account.
type FCMConfig struct {
	// CredentialsFile is the service account's JSON key (Firebase console,
	// Project settings, Service accounts).
	CredentialsFile string `koanf:"credentials_file"`
	// ProjectID defaults to the credentials' project_id.
	ProjectID string `koanf:"project_id"`
	// APIURL is FCM's API; TokenURL, Google's OAuth2 token endpoint
	// (default: the credentials' token_uri). Other values reach a test
	// server or a proxy.
	APIURL   string `koanf:"api_url"`
	TokenURL string `koanf:"token_url"`
}

// APNsConfig enables register-push-apns: Apple Push Notification service
// over HTTP/2 with token-based authentication.
type APNsConfig struct {
	KeyFile string `koanf:"key_file"` // the .p8 signing key (PKCS#8, P-256)
	KeyID   string `koanf:"key_id"`   // its 10-character id
	TeamID  string `koanf:"team_id"`  // the developer team's 10-character id
	Topic   string `koanf:"topic"`    // the app's bundle id
	// APIURL is api.push.apple.com, or api.sandbox.push.apple.com for
	// development builds. An http:// URL speaks HTTP/2 without TLS (h2c),
	// for tests and local proxies.
	APIURL string `koanf:"api_url"`
}

// Defaults.
const (
	DefaultFCMURL  = "https://fcm.googleapis.com"
	DefaultAPNsURL = "https://api.push.apple.com"
)

func newConfig() any {
	return &Config{
		TTL: 24 * time.Hour, Urgency: "high",
		DeviceBurst: 3, DeviceInterval: 20 * time.Second,
		MaxDevicesPerUser: 16, RequestTimeout: 10 * time.Second,
		FCM:  FCMConfig{APIURL: DefaultFCMURL},
		APNs: APNsConfig{APIURL: DefaultAPNsURL},
	}
}

var appleID = regexp.MustCompile(`^[A-Z0-9]{10}$`)

// Validate reports every problem as "key: what is wrong" and reads the
// credentials files.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.TTL < 0 || c.TTL > 28*24*time.Hour {
		bad("ttl", "%v is out of range (0 to 672h, FCM's maximum)", c.TTL)
	}
	switch c.Urgency {
	case "very-low", "low", "normal", "high":
	default:
		bad("urgency", "%q is not an RFC 8030 urgency (very-low, low, normal, high)", c.Urgency)
	}
	if c.DeviceBurst < 1 {
		bad("device_burst", "must be at least 1")
	}
	if c.DeviceInterval <= 0 {
		bad("device_interval", "must be positive (e.g. 20s)")
	}
	if c.MaxDevicesPerUser < 1 {
		bad("max_devices_per_user", "must be at least 1")
	}
	if c.RequestTimeout <= 0 || c.RequestTimeout > 25*time.Second {
		bad("request_timeout", "%v is out of range (above 0, at most 25s: within the runner's send timeout)", c.RequestTimeout)
	}
	checkURL := func(key, u string) {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(key, "%q is not an absolute http(s) URL", u)
		}
	}
	checkURL("fcm.api_url", c.FCM.APIURL)
	if c.FCM.TokenURL != "" {
		checkURL("fcm.token_url", c.FCM.TokenURL)
	}
	if f := c.FCM.CredentialsFile; f != "" {
		sa, err := readServiceAccount(f)
		if err != nil {
			bad("fcm.credentials_file", "%v", err)
		} else {
			c.fcmAccount = sa
			if c.FCM.ProjectID == "" {
				c.FCM.ProjectID = sa.ProjectID
			}
			if c.FCM.TokenURL == "" {
				c.FCM.TokenURL = sa.TokenURI
			}
			if c.FCM.ProjectID == "" {
				bad("fcm.project_id", "required: the credentials name no project_id")
			}
			if c.FCM.TokenURL == "" {
				c.FCM.TokenURL = "https://oauth2.googleapis.com/token"
			}
		}
	} else if c.FCM.ProjectID != "" || c.FCM.TokenURL != "" {
		bad("fcm.credentials_file", "required to use FCM (a service account's JSON key)")
	}
	checkURL("apns.api_url", c.APNs.APIURL)
	if c.APNs.KeyFile != "" {
		key, err := readP8(c.APNs.KeyFile)
		if err != nil {
			bad("apns.key_file", "%v", err)
		}
		c.apnsKey = key
		if !appleID.MatchString(c.APNs.KeyID) {
			bad("apns.key_id", "%q is not a key id (10 letters and digits, from the key's name AuthKey_<id>.p8)", c.APNs.KeyID)
		}
		if !appleID.MatchString(c.APNs.TeamID) {
			bad("apns.team_id", "%q is not a team id (10 letters and digits, from the Apple developer account)", c.APNs.TeamID)
		}
		if c.APNs.Topic == "" {
			bad("apns.topic", "required: the app's bundle id (e.g. com.example.chat)")
		}
	} else if c.APNs.KeyID != "" || c.APNs.TeamID != "" || c.APNs.Topic != "" {
		bad("apns.key_file", "required to use APNs (the .p8 signing key)")
	}
	return errors.Join(errs...)
}

// serviceAccount is what FCM's authentication needs of a Google service
// account key file.
type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
	key          *rsa.PrivateKey
}

func readServiceAccount(file string) (*serviceAccount, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var sa serviceAccount
	if err := json.Unmarshal(data, &sa); err != nil {
		return nil, fmt.Errorf("%s is not a service account key (JSON): %v", file, err)
	}
	if sa.Type != "service_account" || sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, fmt.Errorf("%s is not a service account key (type service_account with client_email and private_key)", file)
	}
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	if block == nil {
		return nil, fmt.Errorf("%s: private_key is not PEM", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if k, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("%s: private_key: %v", file, err)
		}
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: private_key is not an RSA key", file)
	}
	sa.key = rk
	return &sa, nil
}

func readP8(file string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s is not a .p8 key (PEM)", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("%s is not a P-256 (ES256) key", file)
	}
	return ek, nil
}
