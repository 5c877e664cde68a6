package identity

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/mr-tron/base58"
)

func TestEnsureCreatesAMatchingPairOnce(t *testing.T) {
	dir := t.TempDir()
	pub, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Ensure(dir)
	if err != nil || again != pub {
		t.Fatalf("second Ensure made a new key: %v", err)
	}
	raw, err := os.ReadFile(PrivateKeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(PrivateKeyPath(dir)); info.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", info.Mode().Perm())
	}
	block, _ := pem.Decode(raw)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := base58.Decode(pub[len("publickeyv1_"):])
	if err != nil {
		t.Fatal(err)
	}
	if !key.(ed25519.PrivateKey).Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(decoded)) {
		t.Error("public key string does not match the private key")
	}
	os.WriteFile(filepath.Join(dir, PublicFile), []byte("garbage"), 0o644)
	if _, err := Load(dir); err == nil {
		t.Error("a bad public key file was accepted")
	}
}
