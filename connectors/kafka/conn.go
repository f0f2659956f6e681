package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/sluicedev/sluice/registry"
)

// TLS configures encryption to the brokers. CA, Cert and Key are PEM files.
type TLS struct {
	Enabled bool
	// CA holds the certificates to trust; empty trusts the system roots.
	CA string
	// Cert and Key are a client certificate for mutual TLS (both or neither).
	Cert, Key string
	// InsecureSkipVerify accepts any broker certificate. Testing only.
	InsecureSkipVerify bool
}

// SASL configures authentication. Mechanism is "" (none),
// MechanismPlain, MechanismSCRAMSHA256 or MechanismSCRAMSHA512.
type SASL struct {
	Mechanism string
	User      string
	Password  string
}

// SASL mechanism names accepted in config.
const (
	MechanismPlain       = "plain"
	MechanismSCRAMSHA256 = "scram-sha-256"
	MechanismSCRAMSHA512 = "scram-sha-512"
)

// security is what both connectors need to reach a cluster, resolved once.
type security struct {
	tls  *tls.Config
	sasl sasl.Mechanism
	// describe names the listener settings in error messages.
	describe string
}

const dialTimeout = 10 * time.Second

func newSecurity(t TLS, s SASL) (security, error) {
	var sec security
	var err error
	if sec.tls, err = t.config(); err != nil {
		return sec, err
	}
	if sec.sasl, err = s.mechanism(); err != nil {
		return sec, err
	}
	var parts []string
	if t.Enabled {
		parts = append(parts, "tls")
	} else {
		parts = append(parts, "plaintext")
	}
	if s.Mechanism != "" {
		parts = append(parts, fmt.Sprintf("sasl %s user %q", s.Mechanism, s.User))
	}
	sec.describe = strings.Join(parts, ", ")
	return sec, nil
}

func (t TLS) config() (*tls.Config, error) {
	if !t.Enabled {
		if t.CA != "" || t.Cert != "" || t.Key != "" || t.InsecureSkipVerify {
			return nil, registry.FieldErr("tls.enabled", errors.New("tls settings are given but tls.enabled is false; set it to true"))
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as testing only
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, registry.FieldErr("tls.ca", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, registry.FieldErr("tls.ca", fmt.Errorf("%s holds no PEM certificate", t.CA))
		}
		c.RootCAs = pool
	}
	switch {
	case t.Cert != "" && t.Key != "":
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, registry.FieldErr("tls.cert", err)
		}
		c.Certificates = []tls.Certificate{pair}
	case t.Cert != "":
		return nil, registry.FieldErr("tls.key", errors.New("tls.cert is set but tls.key is not"))
	case t.Key != "":
		return nil, registry.FieldErr("tls.cert", errors.New("tls.key is set but tls.cert is not"))
	}
	return c, nil
}

func (s SASL) mechanism() (sasl.Mechanism, error) {
	if s.Mechanism == "" {
		if s.User != "" || s.Password != "" {
			return nil, registry.FieldErr("sasl.mechanism", errors.New("sasl.user or sasl.password is set without a mechanism (plain, scram-sha-256, scram-sha-512)"))
		}
		return nil, nil
	}
	if s.User == "" {
		return nil, registry.FieldErr("sasl.user", errors.New("required with sasl.mechanism"))
	}
	switch s.Mechanism {
	case MechanismPlain:
		return plain.Mechanism{Username: s.User, Password: s.Password}, nil
	case MechanismSCRAMSHA256:
		return scramMechanism(scram.SHA256, s)
	default: // MechanismSCRAMSHA512: validate refused any other
		return scramMechanism(scram.SHA512, s)
	}
}

func scramMechanism(algo scram.Algorithm, s SASL) (sasl.Mechanism, error) {
	m, err := scram.Mechanism(algo, s.User, s.Password)
	if err != nil {
		return nil, registry.FieldErr("sasl", err)
	}
	return m, nil
}

// dialer opens the coordinator and partition-leader connections of the
// source.
func (sec security) dialer(clientID string) *kafka.Dialer {
	return &kafka.Dialer{
		ClientID:      clientID,
		Timeout:       dialTimeout,
		DualStack:     true,
		KeepAlive:     30 * time.Second,
		TLS:           sec.tls,
		SASLMechanism: sec.sasl,
	}
}

// transport carries the sink's produce and metadata requests. Metadata is
// refreshed at least every second: kafka-go does not refresh on
// NOT_LEADER, so the TTL bounds how long writes fail after a leader moves.
func (sec security) transport(clientID string, topics []string) *kafka.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &kafka.Transport{
		Dial:           d.DialContext,
		DialTimeout:    dialTimeout,
		MetadataTTL:    time.Second,
		MetadataTopics: topics,
		ClientID:       clientID,
		TLS:            sec.tls,
		SASL:           sec.sasl,
	}
}

// isAuthError reports errors that retrying will not fix: rejected
// credentials, TLS handshake and certificate failures.
func isAuthError(err error) bool {
	if err == nil {
		return false
	}
	for _, code := range []kafka.Error{kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState,
		kafka.TopicAuthorizationFailed, kafka.GroupAuthorizationFailed, kafka.ClusterAuthorizationFailed} {
		if errors.Is(err, code) {
			return true
		}
	}
	var (
		unknownCA   x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
		recordHdr   tls.RecordHeaderError
		alert       tls.AlertError
		echRejected *tls.ECHRejectionError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &recordHdr) || errors.As(err, &alert) || errors.As(err, &echRejected)
}

// authHint explains an authentication failure in terms of config keys.
func authHint(err error, brokers []string, sec security) error {
	return fmt.Errorf("cannot authenticate to brokers %s (%s): %w; check the brokers' listener and the tls/sasl settings",
		strings.Join(brokers, ","), sec.describe, err)
}

// resolvePath makes a config path relative to the pipeline file absolute.
func resolvePath(base, p string) string {
	if p == "" || base == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// connFields declares the keys every Kafka node has, around own: brokers
// first, tls and sasl last.
func connFields(brokers *[]string, t *TLS, s *SASL, own ...registry.Field) []registry.Field {
	fields := []registry.Field{
		registry.Bind(brokers, "brokers", "bootstrap brokers host:port; empty uses the dev broker of `sluice run --dev`",
			registry.Example([]string{"127.0.0.1:9092"})),
	}
	fields = append(fields, own...)
	return append(fields,
		registry.Section("tls", "TLS to the brokers",
			registry.Bind(&t.Enabled, "enabled", "connect with TLS", registry.Default(false)),
			registry.Bind(&t.CA, "ca", "PEM file of CA certificates to trust; empty trusts the system roots", registry.Example("certs/ca.pem")),
			registry.Bind(&t.Cert, "cert", "PEM client certificate, for mutual TLS"),
			registry.Bind(&t.Key, "key", "PEM private key of cert"),
			registry.Bind(&t.InsecureSkipVerify, "insecure_skip_verify", "accept any broker certificate (testing only)", registry.Default(false)),
		),
		registry.Section("sasl", "SASL authentication",
			registry.Bind(&s.Mechanism, "mechanism", "SASL mechanism; unset means no SASL",
				registry.OneOf(MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512)),
			registry.Bind(&s.User, "user", "SASL user name"),
			registry.Bind(&s.Password, "password", "SASL password"),
		),
	)
}

// fromEnv completes what a node's environment decides: no brokers means
// the dev broker of `sluice run --dev`, and TLS files are relative to the
// pipeline file.
func fromEnv(n *registry.Conf, brokers *[]string, t *TLS) error {
	if len(*brokers) == 0 && n.Env != nil {
		*brokers = n.Env.DevBrokers
	}
	if len(*brokers) == 0 {
		return registry.FieldErr("brokers", errors.New("no brokers: list at least one host:port (or run with --dev)"))
	}
	if n.Env != nil {
		t.CA = resolvePath(n.Env.BaseDir, t.CA)
		t.Cert = resolvePath(n.Env.BaseDir, t.Cert)
		t.Key = resolvePath(n.Env.BaseDir, t.Key)
	}
	return nil
}

// checkBrokers rejects addresses kafka-go would only fail on at dial time.
func checkBrokers(brokers []string) error {
	if len(brokers) == 0 {
		return registry.FieldErr("brokers", errors.New("no brokers: list at least one host:port"))
	}
	for i, b := range brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return registry.FieldErr(fmt.Sprintf("brokers[%d]", i), fmt.Errorf("%q is not host:port", b))
		}
	}
	return nil
}
