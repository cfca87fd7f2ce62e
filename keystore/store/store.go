// Package store keeps access keys in Redis. A key is stored only as a digest of the plain key:
// the plain key is returned once, by Create, and never stored or logged.
//
// Every change gets a resourceVersion from one counter and is appended to an event stream, so
// that the management API can offer Kubernetes' list-then-watch, and every extauthz replica can
// drop a changed key from its cache at once.
//
// Layout. Every Redis key shares the hash tag {accesskeys}, so all of them live in one hash slot:
// changes are atomic Lua scripts on Redis Cluster too. Access keys are few (thousands), so one
// slot is no limit.
//
//	keygate:{accesskeys}:records   hash  digest -> JSON {"digest", "key": object without spec.key,
//	                                                     resourceVersion or status.lastActivity}
//	keygate:{accesskeys}:rvs       hash  digest -> resourceVersion of the object
//	keygate:{accesskeys}:names     hash  name   -> digest
//	keygate:{accesskeys}:activity  hash  digest -> status.lastActivity, RFC3339 UTC
//	keygate:{accesskeys}:rv        string       the last resourceVersion handed out
//	keygate:{accesskeys}:events    stream       one entry per change, ID "<resourceVersion>-0"
//	keygate:{accesskeys}:parents   hash  child name -> parent name (family.go)
//	keygate:{accesskeys}:children  zset  "<parent>/<child>": a parent's children
//
// status.lastActivity lives apart from the object, and writing it neither bumps the
// resourceVersion nor makes an event: it changes every few seconds for a key in use, and an
// edit of the key must not conflict with that.
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
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/keygate-dev/keygate/internal/redisack"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/apis/management/validation"
	"github.com/keygate-dev/keygate/keystore/changelog"
)

// KeyPrefix starts every generated key, so that secret scanners can recognise leaked keys.
const KeyPrefix = "kgk_"

// MinKeyLength is the shortest client-supplied key accepted: the API's rule, enforced here too
// for every other caller.
const MinKeyLength = validation.MinKeyLength

// Errors a caller can test for with errors.Is.
var (
	ErrNotFound      = errors.New("access key not found")
	ErrAlreadyExists = errors.New("access key already exists")
	ErrInvalid       = errors.New("invalid access key")
	// ErrConflict: the object changed since the resourceVersion the caller read.
	ErrConflict = errors.New("access key was modified")
)

// Redis keys; see the package comment.
const (
	prefix      = "keygate:{accesskeys}:"
	recordsKey  = prefix + "records"
	rvsKey      = prefix + "rvs"
	namesKey    = prefix + "names"
	activityKey = prefix + "activity"
	rvKey       = prefix + "rv"
	eventsKey   = prefix + "events"
)

// DefaultEventHistory is how many events the stream keeps (approximately): a watch can resume
// from a resourceVersion this many changes old.
const DefaultEventHistory = 10000

// Options configure a Store.
type Options struct {
	// EventHistory bounds the event stream; 0 means DefaultEventHistory.
	EventHistory int64
	// Acks is how many replicas acknowledge a change before it is reported done.
	Acks redisack.Acks
	// ReplicaWait bounds a create's wait for the extauthz replicas that hold a lease
	// (replicas.go); 0 means DefaultReplicaWait, a negative value does not wait (a replica that
	// refuses from memory may then refuse a key created a moment ago).
	ReplicaWait time.Duration
	// ObserveReplicaWait, when set, is told each create's wait: its outcome (WaitNone...) and
	// how long it took.
	ObserveReplicaWait func(outcome string, d time.Duration)
}

// Store is a Redis-backed store of access keys.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
	// book remembers the extauthz replicas' leases this Store read (replicas.go).
	book leaseBook
}

// New returns a store on rdb (standalone, Sentinel or Cluster).
func New(rdb redis.UniversalClient) *Store { return NewWithOptions(rdb, Options{}) }

// NewWithOptions returns a store on rdb with opts.
func NewWithOptions(rdb redis.UniversalClient, opts Options) *Store {
	if opts.EventHistory <= 0 {
		opts.EventHistory = DefaultEventHistory
	}
	if opts.ReplicaWait == 0 {
		opts.ReplicaWait = DefaultReplicaWait
	}
	return &Store{rdb: rdb, opts: opts}
}

// write runs script as a change of keys: with s.opts.Acks, on one connection followed by WAIT,
// so that a delete or disable reported done survives a failover.
func (s *Store) write(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	var res any
	err := s.opts.Acks.Do(ctx, s.rdb, keys[0], func(c redis.Cmdable) error {
		var err error
		res, err = script.Run(ctx, c, keys, args...).Result()
		return err
	})
	return res, err
}

// record is what Redis holds for a key in the records hash.
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

// encode is the stored form of k: no plain key, no resourceVersion, no lastActivity (they are
// kept apart), always with its type.
func encode(digest string, k *v1.OwnedAccessKey) (string, error) {
	obj := *k
	obj.Spec.Key = ""
	obj.ResourceVersion = ""
	obj.Status.LastActivity = nil
	obj.TypeMeta = metav1.TypeMeta{APIVersion: v1.GroupName + "/" + v1.Version, Kind: "OwnedAccessKey"}
	data, err := json.Marshal(record{Digest: digest, Key: &obj})
	return string(data), err
}

// decode reads a stored record and completes its object with rv and activity.
func decode(data, rv, activity string) (*record, error) {
	var rec record
	if err := json.Unmarshal([]byte(data), &rec); err != nil {
		return nil, fmt.Errorf("corrupt access key record: %w", err)
	}
	if rec.Key == nil || rec.Digest == "" {
		return nil, errors.New("corrupt access key record: no object or digest")
	}
	rec.Key.ResourceVersion = rv
	if activity != "" {
		t, err := time.Parse(time.RFC3339, activity)
		if err != nil {
			return nil, fmt.Errorf("corrupt lastActivity %q of access key %s: %w", activity, rec.Key.Name, err)
		}
		rec.Key.Status.LastActivity = &metav1.Time{Time: t}
	}
	return &rec, nil
}

// ValidateForCreate checks what the store itself needs of a new key. The management API checks
// every field before (keystore/apis/management/validation); this is the floor for every caller.
func ValidateForCreate(k *v1.OwnedAccessKey) error {
	if k.Name == "" {
		return fmt.Errorf("%w: metadata.name is required", ErrInvalid)
	}
	if errs := k8svalidation.IsDNS1123Subdomain(k.Name); len(errs) > 0 {
		return fmt.Errorf("%w: metadata.name %q: %s", ErrInvalid, k.Name, errs[0])
	}
	if n := len(k.Spec.Key); n > 0 && n < MinKeyLength {
		return fmt.Errorf("%w: spec.key must be at least %d characters long (it has %d); leave it empty to have one generated", ErrInvalid, MinKeyLength, n)
	}
	return nil
}

// createScript adds a key unless its name or its key material is taken; with a snapshot
// resourceVersion, only if no key changed since (the quota was counted on it), after deleting
// the keys evicted to make room; with a parent, only if the parent is still as read, recording
// the new key as its child (family.go).
// KEYS: familyKeys. ARGV: name, digest, record JSON, event history, the snapshot's
// resourceVersion or "", the parent's name, digest and resourceVersion or "", "", "", then the
// names of the keys to delete first.
var createScript = redis.NewScript(luaFamily + `
if ARGV[5] ~= '' and (redis.call('GET', KEYS[4]) or '0') ~= ARGV[5] then return 'stale' end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 'name' end
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 'material' end
if ARGV[6] ~= '' then
  if not unchanged(ARGV[6], ARGV[7], ARGV[8]) then return 'parent' end
  for i = 9, #ARGV do
    if ARGV[i] == ARGV[6] then return 'parent' end
  end
end
for i = 9, #ARGV do delkey(ARGV[i], ARGV[4]) end
local rv = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], rv)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], rv .. '-0', 'at', ` + changelog.LuaAt + `, 'type', 'ADDED', 'digest', ARGV[2], 'record', ARGV[3])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[7], ARGV[1], ARGV[6])
  redis.call('ZADD', KEYS[8], 0, ARGV[6] .. '/' .. ARGV[1])
end
return rv
`)

// Create stores k and returns its plain key: spec.key if set (at least MinKeyLength
// characters), else a generated one. It sets metadata.uid, and metadata.creationTimestamp
// unless already set. k is not modified; the stored object never holds the plain key.
func (s *Store) Create(ctx context.Context, k *v1.OwnedAccessKey) (string, error) {
	plain, _, err := s.CreateObject(ctx, k)
	return plain, err
}

// CreateObject is Create that also returns the stored object (without the plain key), with its
// resourceVersion.
func (s *Store) CreateObject(ctx context.Context, k *v1.OwnedAccessKey) (string, *v1.OwnedAccessKey, error) {
	plain, obj, _, err := s.CreateWithinQuota(ctx, k, Quota{})
	return plain, obj, err
}

// creation is a key about to be created: its plain key, its object and their stored form.
type creation struct {
	plain, digest, data string
	obj                 *v1.OwnedAccessKey
	// made is obj as made, before it followed a parent: a retry follows the parent anew.
	made *v1.OwnedAccessKey
}

// follow makes the new key, a child, act as parent (accesskey.FollowParent).
func (n *creation) follow(parent *v1.OwnedAccessKey) error {
	n.obj = n.made.DeepCopy()
	accesskey.FollowParent(n.obj, parent)
	var err error
	n.data, err = encode(n.digest, n.obj)
	return err
}

// newKey validates k and makes what creating it stores: the plain key (spec.key, else a new
// one), a new uid and, unless given, the creation time.
func newKey(k *v1.OwnedAccessKey) (*creation, error) {
	if err := ValidateForCreate(k); err != nil {
		return nil, err
	}
	plain := k.Spec.Key
	if plain == "" {
		var err error
		if plain, err = GenerateKey(); err != nil {
			return nil, err
		}
	}
	obj := k.DeepCopy()
	obj.UID = uuid.NewUUID()
	if obj.CreationTimestamp.IsZero() {
		obj.CreationTimestamp = metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	}
	digest := Digest(plain)
	data, err := encode(digest, obj)
	if err != nil {
		return nil, err
	}
	return &creation{plain: plain, digest: digest, data: data, obj: obj, made: obj.DeepCopy()}, nil
}

// stored reads the reply of a create script: the object as a read would return it, or why it
// was not stored.
func (n *creation) stored(res any) (*v1.OwnedAccessKey, error) {
	switch res {
	case "name":
		return nil, fmt.Errorf("%w: the name %q is taken", ErrAlreadyExists, n.obj.Name)
	case "material":
		return nil, fmt.Errorf("%w: another key has the same key material", ErrAlreadyExists)
	}
	rv, ok := res.(int64)
	if !ok {
		return nil, fmt.Errorf("create access key %s: unexpected reply %v", n.obj.Name, res)
	}
	obj := n.obj.DeepCopy()
	obj.Spec.Key = ""
	obj.TypeMeta = metav1.TypeMeta{APIVersion: v1.GroupName + "/" + v1.Version, Kind: "OwnedAccessKey"}
	obj.ResourceVersion = strconv.FormatInt(rv, 10)
	obj.Status.LastActivity = nil
	return obj, nil
}

// Lookup returns the key whose plain key is plain, or ErrNotFound. One round trip: it is on
// every request's path.
func (s *Store) Lookup(ctx context.Context, plain string) (*v1.OwnedAccessKey, error) {
	return s.LookupDigest(ctx, Digest(plain))
}

// LookupDigest is Lookup for a caller that already has the digest of the plain key (extauthz
// needs it again to record the key's use, and hashes once).
func (s *Store) LookupDigest(ctx context.Context, digest string) (*v1.OwnedAccessKey, error) {
	rec, err := s.byDigest(ctx, digest)
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

func (s *Store) byDigest(ctx context.Context, digest string) (*record, error) {
	var data, rv, act *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		data = p.HGet(ctx, recordsKey, digest)
		rv = p.HGet(ctx, rvsKey, digest)
		act = p.HGet(ctx, activityKey, digest)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("get access key: %w", err)
	}
	if errors.Is(data.Err(), redis.Nil) {
		return nil, ErrNotFound
	}
	return decode(data.Val(), rv.Val(), act.Val())
}

// DigestBatch is how many digests ListDigests asks Redis for at a time (HSCAN's COUNT): each
// call takes Redis well under a millisecond, so that listing a million keys never stalls it.
const DigestBatch = 1000

// ListDigests calls batch with the digests of the stored keys, a batch at a time, until every
// key was listed or batch returns an error (returned). It scans the rvs hash (HSCAN, whose
// values are short, never KEYS or one HGETALL of everything), so it is not a snapshot: a key
// stored for the whole listing is listed (perhaps twice), one created or deleted meanwhile
// may or may not be. A caller that reads CurrentVersion first and then applies every change
// after it (Watch) ends up exact; keycache does.
func (s *Store) ListDigests(ctx context.Context, batch func(digests []string) error) error {
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, rvsKey, cursor, "", DigestBatch).Result()
		if err != nil {
			return fmt.Errorf("list access key digests: %w", err)
		}
		digests := make([]string, 0, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			digests = append(digests, kv[i])
		}
		if err := batch(digests); err != nil {
			return err
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// Get returns the key named name, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*v1.OwnedAccessKey, error) {
	digest, err := s.digestOf(ctx, name)
	if err != nil {
		return nil, err
	}
	rec, err := s.byDigest(ctx, digest)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	if rec.Key.Name != name { // deleted and another key created under a reused digest: cannot happen, but never answer for another name
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return rec.Key, nil
}

// List returns every key, sorted by name.
func (s *Store) List(ctx context.Context) ([]*v1.OwnedAccessKey, error) {
	keys, _, err := s.ListWithVersion(ctx)
	return keys, err
}

// ListWithVersion returns every key, sorted by name, and the resourceVersion of that snapshot:
// a Watch from it sees every later change and none before.
func (s *Store) ListWithVersion(ctx context.Context) ([]*v1.OwnedAccessKey, string, error) {
	var rv *redis.StringCmd
	var records, rvs, act *redis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rv = p.Get(ctx, rvKey)
		records = p.HGetAll(ctx, recordsKey)
		rvs = p.HGetAll(ctx, rvsKey)
		act = p.HGetAll(ctx, activityKey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", fmt.Errorf("list access keys: %w", err)
	}
	version := rv.Val()
	if version == "" {
		version = "0"
	}
	keys := make([]*v1.OwnedAccessKey, 0, len(records.Val()))
	rvm, actm := rvs.Val(), act.Val()
	for digest, data := range records.Val() {
		rec, err := decode(data, rvm[digest], actm[digest])
		if err != nil {
			return nil, "", fmt.Errorf("list access keys: %w", err)
		}
		keys = append(keys, rec.Key)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys, version, nil
}

// updateScript replaces a key's object if it still has the digest and resourceVersion read,
// its parent (if it is a child) is still as read, and its children are still the ones read,
// each as read; it stores the children's new records in the same step (family.go).
// KEYS: familyKeys. ARGV: name, digest, expected rv, record JSON, event history, the parent's
// name, digest and rv (or "", "", ""), the number of children, then per child its name,
// digest, rv and new record ("" when it does not change).
var updateScript = redis.NewScript(luaFamily + `
local d = redis.call('HGET', KEYS[3], ARGV[1])
if not d then return 'notfound' end
if d ~= ARGV[2] then return 'conflict' end
local cur = redis.call('HGET', KEYS[2], d)
if cur ~= ARGV[3] then return 'conflict' end
if ARGV[6] ~= '' and not unchanged(ARGV[6], ARGV[7], ARGV[8]) then return 'family' end
local members = kids(ARGV[1])
local n = tonumber(ARGV[9])
if #members ~= n then return 'family' end
for i = 1, n do
  local j = 10 + (i - 1) * 4
  if members[i] ~= ARGV[1] .. '/' .. ARGV[j] or not unchanged(ARGV[j], ARGV[j + 1], ARGV[j + 2]) then return 'family' end
end
local function put(dg, rec)
  local rv = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[1], dg, rec)
  redis.call('HSET', KEYS[2], dg, rv)
  local act = redis.call('HGET', KEYS[6], dg) or ''
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], rv .. '-0', 'at', ` + changelog.LuaAt + `, 'type', 'MODIFIED', 'digest', dg, 'record', rec, 'activity', act)
  return rv
end
local rv = put(d, ARGV[4])
for i = 1, n do
  local j = 10 + (i - 1) * 4
  if ARGV[j + 3] ~= '' then put(ARGV[j + 1], ARGV[j + 3]) end
end
return rv
`)

// maxFamilyAttempts bounds how often an update is tried again because its parent or children
// changed meanwhile (the caller's resourceVersion still holding).
const maxFamilyAttempts = 10

// Update replaces the key named k.Name with k, if it is still at k.ResourceVersion (else
// ErrConflict). The key material, uid and creation time cannot change: they are taken from the
// stored object; nor can a child's parent. A child follows its parent again, and a parent's
// children follow it, in the same step (family.go). status.lastActivity is kept apart and not
// written. It returns the stored object with its new resourceVersion.
func (s *Store) Update(ctx context.Context, k *v1.OwnedAccessKey) (*v1.OwnedAccessKey, error) {
	if k.ResourceVersion == "" {
		return nil, fmt.Errorf("%w: metadata.resourceVersion is required to update access key %s", ErrInvalid, k.Name)
	}
	if k.Spec.Key != "" {
		return nil, fmt.Errorf("%w: spec.key of an existing access key cannot be changed; create a new key", ErrInvalid)
	}
	for range maxFamilyAttempts {
		obj, res, err := s.update(ctx, k)
		if err != nil {
			return nil, err
		}
		switch res {
		case "family":
			continue // a parent or child changed since it was read: read them again
		case "notfound":
			return nil, fmt.Errorf("%w: %s", ErrNotFound, k.Name)
		case "conflict":
			return nil, fmt.Errorf("%w: %s changed since resourceVersion %s; read it again", ErrConflict, k.Name, k.ResourceVersion)
		}
		rv, ok := res.(int64)
		if !ok {
			return nil, fmt.Errorf("update access key %s: unexpected reply %v", k.Name, res)
		}
		obj.ResourceVersion = strconv.FormatInt(rv, 10)
		return obj, nil
	}
	return nil, fmt.Errorf("%w: update access key %s: its parent or children kept changing; try again", ErrConflict, k.Name)
}

// update reads what updating k to the stored key involves and runs the script: the object as
// stored (without its new resourceVersion) and the script's reply.
func (s *Store) update(ctx context.Context, k *v1.OwnedAccessKey) (*v1.OwnedAccessKey, any, error) {
	digest, err := s.digestOf(ctx, k.Name)
	if err != nil {
		return nil, nil, err
	}
	cur, err := s.byDigest(ctx, digest)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, k.Name)
	}
	if err != nil {
		return nil, nil, err
	}
	obj := k.DeepCopy()
	obj.UID = cur.Key.UID
	obj.CreationTimestamp = cur.Key.CreationTimestamp
	if err := keepsFamily(obj, cur.Key); err != nil {
		return nil, nil, err
	}
	f, args, err := s.familyArgs(ctx, obj)
	if err != nil {
		return nil, nil, err
	}
	data, err := encode(digest, obj)
	if err != nil {
		return nil, nil, err
	}
	args = append([]any{k.Name, digest, k.ResourceVersion, data, s.opts.EventHistory}, append(f.parentArgs(), args...)...)
	res, err := s.write(ctx, updateScript, familyKeys, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("update access key %s: %w", k.Name, err)
	}
	// What was stored, as a read would return it; lastActivity is kept apart and unchanged.
	obj.TypeMeta = metav1.TypeMeta{APIVersion: v1.GroupName + "/" + v1.Version, Kind: "OwnedAccessKey"}
	obj.Status.LastActivity = cur.Key.Status.LastActivity
	return obj, res, nil
}

// familyArgs reads obj's parent (obj, a child, then follows it) and children, and returns them
// with the children's arguments of updateScript.
func (s *Store) familyArgs(ctx context.Context, obj *v1.OwnedAccessKey) (*family, []any, error) {
	f := &family{}
	var err error
	if f.parent, err = s.parentOf(ctx, obj); err != nil {
		return nil, nil, err
	}
	if f.parent != nil {
		accesskey.FollowParent(obj, f.parent.key)
	}
	if f.children, err = s.childrenOf(ctx, obj.Name); err != nil {
		return nil, nil, err
	}
	args, err := f.childArgs(obj)
	return f, args, err
}

// Modify applies mutate to the current key named name and stores the result, retrying on
// conflicts with concurrent writers. mutate may be called more than once.
func (s *Store) Modify(ctx context.Context, name string, mutate func(*v1.OwnedAccessKey) error) (*v1.OwnedAccessKey, error) {
	for {
		k, err := s.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := mutate(k); err != nil {
			return nil, err
		}
		out, err := s.Update(ctx, k)
		if !errors.Is(err, ErrConflict) {
			return out, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// deleteScript removes a key if it is still the one read (digest, and resourceVersion when
// given), and its children (family.go). KEYS: familyKeys. ARGV: name, digest, expected rv or
// "", event history. It returns {rv, record JSON, activity} of the key's deletion.
var deleteScript = redis.NewScript(luaFamily + `
local d = redis.call('HGET', KEYS[3], ARGV[1])
if not d then return 'notfound' end
if d ~= ARGV[2] then return 'conflict' end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], d) ~= ARGV[3] then return 'conflict' end
return delkey(ARGV[1], ARGV[4])
`)

// Delete removes the key named name.
func (s *Store) Delete(ctx context.Context, name string) error {
	_, err := s.DeleteObject(ctx, name, "")
	return err
}

// DeleteObject removes the key named name, if it is at resourceVersion (any when empty; else
// ErrConflict), with its children, and returns its last state, with the resourceVersion of the
// deletion.
func (s *Store) DeleteObject(ctx context.Context, name, resourceVersion string) (*v1.OwnedAccessKey, error) {
	for {
		digest, err := s.digestOf(ctx, name)
		if err != nil {
			return nil, err
		}
		res, err := s.write(ctx, deleteScript, familyKeys, name, digest, resourceVersion, s.opts.EventHistory)
		if err != nil {
			return nil, fmt.Errorf("delete access key %s: %w", name, err)
		}
		switch res {
		case "notfound":
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		case "conflict":
			if resourceVersion != "" {
				return nil, fmt.Errorf("%w: %s changed since resourceVersion %s", ErrConflict, name, resourceVersion)
			}
			continue // the name moved to another key between our two reads: delete that one
		}
		vals, ok := res.([]any)
		if !ok || len(vals) != 3 {
			return nil, fmt.Errorf("delete access key %s: unexpected reply %v", name, res)
		}
		rv, _ := vals[0].(int64)
		data, _ := vals[1].(string)
		act, _ := vals[2].(string)
		rec, err := decode(data, strconv.FormatInt(rv, 10), act)
		if err != nil {
			return nil, fmt.Errorf("delete access key %s: %w", name, err)
		}
		return rec.Key, nil
	}
}

// SetDisabled disables or enables the key named name.
func (s *Store) SetDisabled(ctx context.Context, name string, disabled bool) error {
	_, err := s.Modify(ctx, name, func(k *v1.OwnedAccessKey) error {
		k.Spec.Disabled = disabled
		return nil
	})
	return err
}

func (s *Store) digestOf(ctx context.Context, name string) (string, error) {
	digest, err := s.rdb.HGet(ctx, namesKey, name).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return "", fmt.Errorf("get access key %s: %w", name, err)
	}
	return digest, nil
}
