// Package sealed encrypts the secrets keystore must keep in Redis and read back: the OIDC
// provider's private signing keys, and the refresh tokens SSO connectors get from identity
// providers (an OwnedAccessKey's spec.identity.connectorData). Hashes will not do for these:
// keystore has to use them again. Anyone who reads Redis (a backup, a replica, a MONITOR) sees
// only ciphertext; the key that opens it lives in a file (a Kubernetes Secret), not in Redis.
//
// AES-256-GCM with a random 96-bit nonce per value. Every value is sealed together with the
// place it belongs to (the additional data, such as "oidc-signing-key/<kid>"), so a value copied
// to another place, or another key's record, does not open there.
//
// A key file holds one or more keys, one per line (32 bytes, base64), blank lines and lines
// starting with # ignored. The first key seals; every key opens. To rotate: put a new key first,
// keep the old ones below it until everything sealed with them has been sealed again or has
// expired.
package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// prefix marks the format of a sealed value, so that another one can follow.
const prefix = "sealed.v1."

// ErrOpen is returned for a value no key opens: tampered with, sealed for another place, or
// sealed with a key the file no longer holds.
var ErrOpen = errors.New("sealed value cannot be opened with any key of the key file")

// Box seals with its first key and opens with any of them.
type Box struct {
	keys []key
}

type key struct {
	id   string // the first 8 hex digits of the key's SHA-256: says which key sealed a value
	aead cipher.AEAD
}

// New is a Box of raw keys, each KeySize bytes; the first seals.
func New(keys ...[]byte) (*Box, error) {
	if len(keys) == 0 {
		return nil, errors.New("no encryption key")
	}
	b := &Box{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("encryption key %d has %d bytes, want %d (32 random bytes, base64: openssl rand -base64 32)", i+1, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(k)
		b.keys = append(b.keys, key{id: hex.EncodeToString(sum[:4]), aead: aead})
	}
	return b, nil
}

// Load reads a key file (see the package comment).
func Load(path string) (*Box, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Parse reads the contents of a key file.
func Parse(data string) (*Box, error) {
	var keys [][]byte
	for n, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			// The line is a secret: say where, never what.
			return nil, fmt.Errorf("line %d: not base64 (want 32 random bytes, base64: openssl rand -base64 32)", n+1)
		}
		keys = append(keys, k)
	}
	return New(keys...)
}

// Generate returns a new random key, base64, one line of a key file.
func Generate() string {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.StdEncoding.EncodeToString(k)
}

// Seal encrypts plaintext for place (the additional data it is bound to).
func (b *Box) Seal(plaintext []byte, place string) string {
	k := b.keys[0]
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	ct := k.aead.Seal(nonce, nonce, plaintext, []byte(place))
	return prefix + k.id + "." + base64.RawURLEncoding.EncodeToString(ct)
}

// Open decrypts a value Seal made for the same place.
func (b *Box) Open(value, place string) ([]byte, error) {
	rest, ok := strings.CutPrefix(value, prefix)
	if !ok {
		return nil, fmt.Errorf("%w: not a sealed value", ErrOpen)
	}
	id, enc, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, fmt.Errorf("%w: malformed", ErrOpen)
	}
	ct, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrOpen)
	}
	for _, k := range b.keys {
		if k.id != id || len(ct) < k.aead.NonceSize() {
			continue
		}
		n := k.aead.NonceSize()
		if pt, err := k.aead.Open(nil, ct[:n], ct[n:], []byte(place)); err == nil {
			return pt, nil
		}
	}
	return nil, ErrOpen
}

// Current says whether value was sealed with the first key (a value sealed with an older one
// should be sealed again when next written).
func (b *Box) Current(value string) bool {
	return strings.HasPrefix(value, prefix+b.keys[0].id+".")
}
