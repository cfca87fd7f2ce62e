package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/keystore/sealed"
)

// Signing keys. Every replica signs with the key Redis names current, and publishes every key
// that may have signed a token still alive. Private keys are stored only sealed (keystore/sealed,
// bound to "oidc-signing-key/<kid>"), so whoever reads Redis or a backup cannot forge a token.
const (
	signingKeysKey = prefix + "signing-keys" // hash kid -> JSON storedKey
	currentKeyKey  = prefix + "signing-key"  // string: the kid that signs
	rsaBits        = 2048
)

// storedKey is a signing key as Redis holds it. Times are Unix seconds, so the rotation script
// compares them without parsing.
type storedKey struct {
	Kid     string `json:"kid"`
	Sealed  string `json:"sealed"` // PKCS #8 DER of the private key, sealed
	Created int64  `json:"created"`
	Retired int64  `json:"retired,omitempty"` // when it stopped signing; 0 while it signs
}

// rotateScript makes ARGV[2] the current key unless the current one is younger than
// ARGV[4] seconds (another replica rotated meanwhile: its key is kept), retires the old one,
// and drops retired keys whose tokens have all expired (retired more than ARGV[5] seconds ago).
// One script, so replicas rotating at once agree on one key. Returns the current kid.
// KEYS: signing-keys, signing-key. ARGV: now, kid, JSON, rotate-every, publish-for.
var rotateScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local cur = redis.call('GET', KEYS[2])
if cur then
  local rec = redis.call('HGET', KEYS[1], cur)
  if rec then
    local r = cjson.decode(rec)
    if now - tonumber(r.created) < tonumber(ARGV[4]) then return cur end
    r.retired = now
    redis.call('HSET', KEYS[1], cur, cjson.encode(r))
  end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local r = cjson.decode(all[i+1])
  if r.retired and tonumber(r.retired) > 0 and tonumber(r.retired) + tonumber(ARGV[5]) < now then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return ARGV[2]
`)

// signingKey is an opened key; it is both op.SigningKey and op.Key.
type signingKey struct {
	kid     string
	priv    *rsa.PrivateKey
	created time.Time
	retired time.Time
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k *signingKey) Use() string                                 { return "sig" }
func (k *signingKey) ID() string                                  { return k.kid }

// Key is the private key for signing: op calls it on SigningKey, and the public one on Key
// (keySet wraps it), so a JWKS never holds a private part.
func (k *signingKey) Key() any { return k.priv }

// publicKey is a key as the JWKS publishes it.
type publicKey struct{ *signingKey }

func (k publicKey) Key() any { return &k.priv.PublicKey }

// keyRing reads, rotates and caches the signing keys.
type keyRing struct {
	rdb        redis.UniversalClient
	box        *sealed.Box
	every      time.Duration // rotate the current key when it is this old
	publishFor time.Duration // keep a retired key published this long
	reload     time.Duration // read Redis again after this long
	now        func() time.Time
	onRotate   func()

	mu       sync.Mutex
	opened   map[string]*signingKey // by kid: parsing RSA keys again on every reload would waste time
	current  *signingKey
	all      []*signingKey
	loadedAt time.Time
}

// keys returns the current key and every published one, reading Redis when the cache is old
// and rotating when the current key is due.
func (r *keyRing) keys(ctx context.Context) (*signingKey, []*signingKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.current != nil && now.Sub(r.loadedAt) < r.reload && now.Sub(r.current.created) < r.every {
		return r.current, r.all, nil
	}
	if err := r.load(ctx); err != nil {
		return nil, nil, err
	}
	if r.current == nil || now.Sub(r.current.created) >= r.every {
		if err := r.rotate(ctx, r.every); err != nil {
			return nil, nil, err
		}
	}
	return r.current, r.all, nil
}

// rotateNow makes a new current key whatever the age of the current one.
func (r *keyRing) rotateNow(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rotate(ctx, 0)
}

// rotate stores a new key unless the current one is younger than minAge, then reloads. Called
// with mu held.
func (r *keyRing) rotate(ctx context.Context, minAge time.Duration) error {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	now := r.now()
	kid := newKid()
	data, err := json.Marshal(storedKey{Kid: kid, Sealed: r.box.Seal(der, keyPlace(kid)), Created: now.Unix()})
	if err != nil {
		return err
	}
	got, err := rotateScript.Run(ctx, r.rdb, []string{signingKeysKey, currentKeyKey},
		now.Unix(), kid, data, int64(minAge/time.Second), int64(r.publishFor/time.Second)).Text()
	if err != nil {
		return fmt.Errorf("rotate the OIDC signing key: %w", err)
	}
	if got == kid && r.onRotate != nil {
		r.onRotate()
	}
	return r.load(ctx)
}

// load reads every key from Redis. Called with mu held.
func (r *keyRing) load(ctx context.Context) error {
	var all *redis.MapStringStringCmd
	var cur *redis.StringCmd
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, signingKeysKey)
		cur = p.Get(ctx, currentKeyKey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read the OIDC signing keys: %w", err)
	}
	now := r.now()
	r.current, r.all = nil, nil
	for kid, data := range all.Val() {
		k, err := r.open(kid, data)
		if err != nil {
			return err
		}
		if !k.retired.IsZero() && now.Sub(k.retired) > r.publishFor {
			continue // every token it signed has expired
		}
		r.all = append(r.all, k)
		if kid == cur.Val() {
			r.current = k
		}
	}
	sort.Slice(r.all, func(i, j int) bool { return r.all[i].created.After(r.all[j].created) })
	r.loadedAt = now
	return nil
}

// open decodes and unseals a stored key, from the cache when it was opened before.
func (r *keyRing) open(kid, data string) (*signingKey, error) {
	var s storedKey
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		return nil, fmt.Errorf("OIDC signing key %s: %w", kid, err)
	}
	if k, ok := r.opened[kid]; ok {
		k.retired = unixOrZero(s.Retired)
		return k, nil
	}
	der, err := r.box.Open(s.Sealed, keyPlace(kid))
	if err != nil {
		// Never the value: it is the sealed private key.
		return nil, fmt.Errorf("OIDC signing key %s: %w (is --encryption-key-file the one it was sealed with?)", kid, err)
	}
	p, err := x509.ParsePKCS8PrivateKey(der)
	priv, ok := p.(*rsa.PrivateKey)
	if err != nil || !ok {
		return nil, fmt.Errorf("OIDC signing key %s: not an RSA private key", kid)
	}
	k := &signingKey{kid: kid, priv: priv, created: time.Unix(s.Created, 0), retired: unixOrZero(s.Retired)}
	if r.opened == nil {
		r.opened = map[string]*signingKey{}
	}
	r.opened[kid] = k
	return k, nil
}

func unixOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// keyPlace binds a sealed key to its kid: a sealed key copied to another kid does not open.
func keyPlace(kid string) string { return "oidc-signing-key/" + kid }

func newKid() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
