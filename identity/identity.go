// Package identity makes and reads the ed25519 request-identity keys with
// which restate-server signs every request to our service: the private key
// goes to the server (a PEM file), the public key to the service (the
// "publickeyv1_…" string the Restate SDK takes), and the service refuses
// requests without a valid signature.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mr-tron/base58"
)

// Files of a key pair in dir.
const (
	PrivateFile = "private.pem"
	PublicFile  = "public.key"
)

// Ensure creates a key pair in dir unless one is there, and returns the
// public key string.
func Ensure(dir string) (string, error) {
	if pub, err := Load(dir); err == nil {
		return pub, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate identity key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encode identity key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, PrivateFile), pemBytes, 0o600); err != nil {
		return "", err
	}
	public := PublicKeyString(pub)
	if err := os.WriteFile(filepath.Join(dir, PublicFile), []byte(public+"\n"), 0o600); err != nil {
		return "", err
	}
	return public, nil
}

// Load reads the public key string from dir.
func Load(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, PublicFile))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, PrivateFile)); err != nil {
		return "", err
	}
	key := strings.TrimSpace(string(b))
	if !strings.HasPrefix(key, "publickeyv1_") {
		return "", fmt.Errorf("%s: not a publickeyv1_ key", filepath.Join(dir, PublicFile))
	}
	return key, nil
}

// PublicKeyString encodes pub as Restate's v1 public key string.
func PublicKeyString(pub ed25519.PublicKey) string {
	return "publickeyv1_" + base58.Encode(pub)
}

// PrivateKeyPath is where the server's key lives in dir.
func PrivateKeyPath(dir string) string { return filepath.Join(dir, PrivateFile) }
