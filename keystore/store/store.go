// Package store keeps access keys in Redis. A key is stored only as a digest of the plain key:
// the plain key is returned once, by Create, and never stored or logged.
//
// Layout (every Redis key has its own hash tag, so it works on Redis Cluster):
//
//	keygate:accesskey:{<sha256 hex of the plain key>}  -> JSON record: the object (spec.key empty) and its digest
//	keygate:accesskey-name:{<name>}                     -> the digest of the key with that name
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// KeyPrefix starts every generated key, so that secret scanners can recognise leaked keys.
const KeyPrefix = "kgk_"

// MinKeyLength is the shortest client-supplied key accepted.
const MinKeyLength = 32

// Errors a caller can test for with errors.Is.
var (
	ErrNotFound      = errors.New("access key not found")
	ErrAlreadyExists = errors.New("access key already exists")
	ErrInvalid       = errors.New("invalid access key")
)

const (
	recordPrefix = "keygate:accesskey:"
	namePrefix   = "keygate:accesskey-name:"
)

// Store is a Redis-backed store of access keys.
type Store struct {
	rdb redis.UniversalClient
}

// New returns a store on rdb (standalone, Sentinel or Cluster).
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// record is what Redis holds for a key.
type record struct {
	Digest string             `json:"digest"`
	Key    *v1.OwnedAccessKey `json:"key"`
}

// Digest is the hex SHA-256 of a plain key: how a key is stored and looked up. Keys carry 256
// bits of entropy, so a plain (unsalted) hash is enough to make them useless at rest.
func Digest(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// GenerateKey returns a new key: the prefix and 256 bits from crypto/rand, base64url.
func GenerateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate access key: %w", err)
	}
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func recordKey(digest string) string { return recordPrefix + "{" + digest + "}" }
func nameKey(name string) string     { return namePrefix + "{" + name + "}" }

// Create stores k and returns its plain key: spec.key if set (at least MinKeyLength
// characters), else a generated one. It sets metadata.uid, and metadata.creationTimestamp
// unless already set. k is not modified; the stored object never holds the plain key.
func (s *Store) Create(ctx context.Context, k *v1.OwnedAccessKey) (string, error) {
	if k.Name == "" {
		return "", fmt.Errorf("%w: metadata.name is required", ErrInvalid)
	}
	if errs := validation.IsDNS1123Subdomain(k.Name); len(errs) > 0 {
		return "", fmt.Errorf("%w: metadata.name %q: %s", ErrInvalid, k.Name, strings.Join(errs, "; "))
	}
	plain := k.Spec.Key
	if plain == "" {
		var err error
		if plain, err = GenerateKey(); err != nil {
			return "", err
		}
	} else if len(plain) < MinKeyLength {
		return "", fmt.Errorf("%w: spec.key must be at least %d characters long (it has %d); leave it empty to have one generated", ErrInvalid, MinKeyLength, len(plain))
	}
	obj := *k
	obj.Spec.Key = ""
	obj.TypeMeta = metav1.TypeMeta{APIVersion: v1.GroupName + "/" + v1.Version, Kind: "OwnedAccessKey"}
	obj.UID = uuid.NewUUID()
	if obj.CreationTimestamp.IsZero() {
		obj.CreationTimestamp = metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	}
	digest := Digest(plain)
	data, err := json.Marshal(record{Digest: digest, Key: &obj})
	if err != nil {
		return "", err
	}
	// The name index is claimed first: whoever claims it owns the name, so two creates of one
	// name cannot both succeed. The record is written after, so a lookup never sees a key whose
	// name is not taken. The two Redis keys live in different hash slots, so no transaction can
	// span them on Redis Cluster; a failed step undoes the earlier ones instead.
	name := nameKey(obj.Name)
	ok, err := s.rdb.SetNX(ctx, name, digest, 0).Result()
	if err != nil {
		// The claim may have been written before the error: undo it, or the name stays taken.
		s.undo(ctx, name, digest)
		return "", fmt.Errorf("create access key %s: %w", obj.Name, err)
	}
	if !ok {
		return "", fmt.Errorf("%w: the name %q is taken", ErrAlreadyExists, obj.Name)
	}
	ok, err = s.rdb.SetNX(ctx, recordKey(digest), data, 0).Result()
	if err != nil || !ok {
		if err != nil {
			// The record may have been written before the error. Left behind, it would be a
			// working key that no name reaches, so nobody could delete it.
			s.undo(ctx, recordKey(digest), string(data))
		}
		s.undo(ctx, name, digest)
		if err != nil {
			return "", fmt.Errorf("create access key %s: %w", obj.Name, err)
		}
		return "", fmt.Errorf("%w: another key has the same key material", ErrAlreadyExists)
	}
	return plain, nil
}

// delIfEqual deletes KEYS[1] only if it still holds ARGV[1], so that undoing a step of a failed
// Create never removes what another client wrote meanwhile. One key, so it runs on Cluster too.
var delIfEqual = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// undo removes key if it holds value, even when ctx has ended (a timeout is a common reason to
// undo). A failure to undo is not reported: the caller already returns the error that caused it.
func (s *Store) undo(ctx context.Context, key, value string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = delIfEqual.Run(ctx, s.rdb, []string{key}, value).Err()
}

// Lookup returns the key whose plain key is plain, or ErrNotFound.
func (s *Store) Lookup(ctx context.Context, plain string) (*v1.OwnedAccessKey, error) {
	digest := Digest(plain)
	rec, err := s.getRecord(ctx, digest)
	if err != nil {
		return nil, err
	}
	// Redis found the record by digest; compare again in constant time so that the answer
	// never depends on how much of a stored digest matched.
	if subtle.ConstantTimeCompare([]byte(rec.Digest), []byte(digest)) != 1 {
		return nil, ErrNotFound
	}
	return rec.Key, nil
}

// Get returns the key named name, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*v1.OwnedAccessKey, error) {
	digest, err := s.digestOf(ctx, name)
	if err != nil {
		return nil, err
	}
	rec, err := s.getRecord(ctx, digest)
	if err != nil {
		return nil, err
	}
	return rec.Key, nil
}

// List returns every key, sorted by name.
func (s *Store) List(ctx context.Context) ([]*v1.OwnedAccessKey, error) {
	var names []string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, namePrefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(k, namePrefix+"{"), "}"))
		}
		return iter.Err()
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, scan)
	} else if c, ok := s.rdb.(*redis.Client); ok {
		err = scan(ctx, c)
	} else {
		return nil, fmt.Errorf("list access keys: unsupported Redis client %T", s.rdb)
	}
	if err != nil {
		return nil, fmt.Errorf("list access keys: %w", err)
	}
	sort.Strings(names)
	keys := make([]*v1.OwnedAccessKey, 0, len(names))
	for _, n := range names {
		k, err := s.Get(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted while listing
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Delete removes the key named name.
func (s *Store) Delete(ctx context.Context, name string) error {
	digest, err := s.digestOf(ctx, name)
	if err != nil {
		return err
	}
	// The record goes first: once it is gone the key no longer works, whatever happens next.
	if err := s.rdb.Del(ctx, recordKey(digest)).Err(); err != nil {
		return fmt.Errorf("delete access key %s: %w", name, err)
	}
	if err := s.rdb.Del(ctx, nameKey(name)).Err(); err != nil {
		return fmt.Errorf("delete access key %s: %w", name, err)
	}
	return nil
}

// SetDisabled disables or enables the key named name.
func (s *Store) SetDisabled(ctx context.Context, name string, disabled bool) error {
	digest, err := s.digestOf(ctx, name)
	if err != nil {
		return err
	}
	key := recordKey(digest)
	// Optimistic transaction on the one record, so a concurrent change is not overwritten.
	return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		data, err := tx.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		if err != nil {
			return err
		}
		var rec record
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("access key %s: corrupt record: %w", name, err)
		}
		rec.Key.Spec.Disabled = disabled
		out, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, out, redis.KeepTTL)
			return nil
		})
		return err
	}, key)
}

func (s *Store) digestOf(ctx context.Context, name string) (string, error) {
	digest, err := s.rdb.Get(ctx, nameKey(name)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return "", fmt.Errorf("get access key %s: %w", name, err)
	}
	return digest, nil
}

func (s *Store) getRecord(ctx context.Context, digest string) (*record, error) {
	data, err := s.rdb.Get(ctx, recordKey(digest)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get access key: %w", err)
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("get access key: corrupt record %s: %w", recordKey(digest), err)
	}
	if rec.Key == nil {
		return nil, fmt.Errorf("get access key: corrupt record %s: no object", recordKey(digest))
	}
	return &rec, nil
}
