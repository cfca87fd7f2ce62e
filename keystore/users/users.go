// Package users keeps the platform's users in Redis: who may log in with a password (for
// bootstrap and for /auth/password/login), their groups and their teams. Passwords are stored
// only as bcrypt hashes, and no function of this package returns or prints a hash.
//
// Layout (one Redis key per user, with its own hash tag, so it works on Redis Cluster):
//
//	keygate:user:{<name>}    -> JSON record: the user and the bcrypt hash of its password
//	keygate:{users}:rv       string  the last change's version
//	keygate:{users}:events   stream  one entry per change: type, name (keystore/changelog)
//
// Every write appends an entry to the change stream right after it succeeds, so that every
// extauthz replica drops what it cached of that user at once. A user's record and the stream
// live in different hash slots, so the two are not one atomic step: should the writer die
// between them, the edge sees the change only when its cache entry ages out (extauthz's
// --key-cache-ttl). Entries are appended after the write, never before, so a replica that drops
// the user on the entry reads the new record. They are two writes, each to its own slot's
// master (and, with Options.Acks, each waited for on that master's connection), since on Redis
// Cluster the two slots may live on different masters.
package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/keygate-dev/keygate/internal/redisack"
)

// Errors a caller can test for with errors.Is.
var (
	ErrNotFound      = errors.New("user not found")
	ErrAlreadyExists = errors.New("user already exists")
	ErrInvalid       = errors.New("invalid user")
	// ErrConflict: the user changed since the caller read it (an update or delete conditional
	// on its Revision).
	ErrConflict = errors.New("user changed meanwhile")
	// ErrInvalidCredentials is all Authenticate tells about a refused login, whether the user
	// is unknown, disabled or the password wrong, so that a caller cannot learn which names exist.
	ErrInvalidCredentials = errors.New("invalid username or password")
)

// Field limits, generous for people yet small enough that one record stays small.
const (
	maxDisplayNameLength = 256
	maxEmailLength       = 254 // RFC 5321's limit on a forward path
	maxGroupLength       = 256
)

// reservedGroupPrefixes are groups that the edge itself, or Kubernetes, gives meaning to: the
// edge impersonates users with their groups, so a user holding "system:masters" would be a
// cluster admin everywhere, and one holding "loft:team:x" would pass for a member of team x.
var reservedGroupPrefixes = []string{"system:", "loft:"}

// User is a person (or robot) who can log in. It carries no password: the hash stays inside the
// store, so printing or encoding a User can never leak it.
type User struct {
	// UID is set by Create, unique across time: a user deleted and created again under the
	// same name gets a new one, so that access keys made for the first (which record its UID)
	// do not pass for the second's. Users created before UIDs existed have none.
	UID string `json:"uid,omitempty"`
	// Name is the login name: a DNS-1123 label (lowercase letters, digits and '-', at most 63
	// characters), so that it fits in Redis keys, object names and loft:user:<name>.
	Name        string `json:"name"`
	DisplayName string `json:"displayName,omitempty"`
	Email       string `json:"email,omitempty"`
	// Groups are extra groups the user's requests carry upstream.
	Groups []string `json:"groups,omitempty"`
	// Teams are the teams the user belongs to; team access keys are usable by team members.
	Teams []string `json:"teams,omitempty"`
	// Disabled users cannot log in.
	Disabled bool `json:"disabled,omitempty"`
	// CreationTimestamp is set by Create unless given, in UTC to the second.
	CreationTimestamp time.Time `json:"creationTimestamp"`
	// Revision counts the writes to the record (1 after Create), whatever changed: the
	// management API serves it as the object's resourceVersion, so that an update made from a
	// stale read is refused (ErrConflict). The store sets it; a caller's value is ignored.
	Revision uint64 `json:"revision,omitempty"`
	// Generation counts the changes of what the management API serves as the user's spec; the
	// API sets it.
	Generation int64 `json:"generation,omitempty"`
	// Labels, Annotations and ManagedFields are the object metadata the management API keeps
	// for kubectl (labels, `kubectl apply`'s annotation, server-side apply's field owners). The
	// store keeps them as given.
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	ManagedFields json.RawMessage   `json:"managedFields,omitempty"`
}

// record is what Redis holds for a user. It is the only type that has the hash.
type record struct {
	User         User   `json:"user"`
	PasswordHash string `json:"passwordHash"`
	// NoPassword marks a user created without a password (through the management API): they
	// cannot log in with one until set-password gives them one.
	NoPassword bool `json:"noPassword,omitempty"`
}

// Validate returns an error wrapping ErrInvalid that names every bad field, or nil.
func (u *User) Validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if u.Name == "" {
		bad("name: required")
	} else if errs := validation.IsDNS1123Label(u.Name); len(errs) > 0 {
		bad("name %q: %s", u.Name, strings.Join(errs, "; "))
	}
	if len(u.DisplayName) > maxDisplayNameLength {
		bad("displayName: must have at most %d bytes", maxDisplayNameLength)
	} else if hasControl(u.DisplayName) {
		bad("displayName %q: must not contain control characters", u.DisplayName)
	}
	if u.Email != "" {
		if len(u.Email) > maxEmailLength {
			bad("email: must have at most %d bytes", maxEmailLength)
		} else if a, err := mail.ParseAddress(u.Email); err != nil || a.Name != "" || a.Address != u.Email {
			// A bare address only: "Alice <alice@example.com>" would not round-trip.
			bad("email %q: not a plain email address such as alice@example.com", u.Email)
		}
	}
	seen := map[string]bool{}
	for i, g := range u.Groups {
		switch {
		case g == "" || strings.TrimSpace(g) != g || hasControl(g):
			bad("groups[%d] %q: must be non-empty, without surrounding spaces or control characters", i, g)
		case len(g) > maxGroupLength:
			bad("groups[%d]: must have at most %d bytes", i, maxGroupLength)
		case hasReservedPrefix(g):
			bad("groups[%d] %q: the prefixes %s are reserved for groups the edge and Kubernetes set themselves", i, g, strings.Join(reservedGroupPrefixes, ", "))
		case seen[g]:
			bad("groups[%d] %q: listed twice", i, g)
		}
		seen[g] = true
	}
	seen = map[string]bool{}
	for i, t := range u.Teams {
		if errs := validation.IsDNS1123Subdomain(t); len(errs) > 0 {
			bad("teams[%d] %q: %s", i, t, strings.Join(errs, "; "))
		} else if seen[t] {
			bad("teams[%d] %q: listed twice", i, t)
		}
		seen[t] = true
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

func hasControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }

func hasReservedPrefix(g string) bool {
	for _, p := range reservedGroupPrefixes {
		if strings.HasPrefix(strings.ToLower(g), p) {
			return true
		}
	}
	return false
}

// Options configure a Store.
type Options struct {
	// Cost is the bcrypt cost of new password hashes: 0 means DefaultCost; else 4 to 31
	// (bcrypt.MinCost keeps tests fast). Hashes made earlier keep their own cost.
	Cost int
	// EventHistory bounds the change stream; 0 means DefaultEventHistory.
	EventHistory int64
	// Acks is how many replicas acknowledge a change before it is reported done (not a
	// login's rehash, which a failover may lose without harm: the next login rehashes).
	Acks redisack.Acks
}

// DefaultEventHistory is how many change entries the stream keeps (approximately): a follower
// that falls further behind than that reads everything again.
const DefaultEventHistory = 10000

const keyPrefix = "keygate:user:"

func userKey(name string) string { return keyPrefix + "{" + name + "}" }

// Store is a Redis-backed store of users.
type Store struct {
	rdb     redis.UniversalClient
	acks    redisack.Acks
	history int64
	cost    int
	// costErr is set when Options.Cost is out of range: every operation that hashes, and
	// Authenticate, fails with it, rather than silently using another cost.
	costErr error
	// compare is bcrypt.CompareHashAndPassword; tests replace it to watch Authenticate.
	compare   func(hash, password []byte) error
	dummyOnce sync.Once
	dummy     []byte
}

// New returns a store on rdb (standalone, Sentinel or Cluster). An out-of-range opts.Cost is
// reported by the first call that needs to hash or compare a password.
func New(rdb redis.UniversalClient, opts Options) *Store {
	cost := opts.Cost
	if cost == 0 {
		cost = DefaultCost
	}
	history := opts.EventHistory
	if history <= 0 {
		history = DefaultEventHistory
	}
	return &Store{rdb: rdb, acks: opts.Acks, history: history, cost: cost, costErr: checkCost(cost), compare: bcrypt.CompareHashAndPassword}
}

// Create stores u with the given password. It gives u a new UID (whatever u had) and sets its
// CreationTimestamp unless given. It returns ErrAlreadyExists when the name is taken,
// ErrInvalid when u or the password is bad.
func (s *Store) Create(ctx context.Context, u User, password string) error {
	if err := u.Validate(); err != nil {
		return err
	}
	h, err := s.hash(password)
	if err != nil {
		return err
	}
	_, err = s.create(ctx, u, record{PasswordHash: h})
	return err
}

// CreateWithoutPassword stores u without a password, as the management API creates users: they
// cannot log in with a password until SetPassword, but their access keys work. It returns the
// stored user (with its UID, Revision and CreationTimestamp).
func (s *Store) CreateWithoutPassword(ctx context.Context, u User) (*User, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	return s.create(ctx, u, record{NoPassword: true})
}

// create stores u in rec, claiming the name.
func (s *Store) create(ctx context.Context, u User, rec record) (*User, error) {
	if u.CreationTimestamp.IsZero() {
		u.CreationTimestamp = time.Now()
	}
	u.CreationTimestamp = u.CreationTimestamp.UTC().Truncate(time.Second)
	u.UID = string(uuid.NewUUID())
	u.Revision = 1
	u.Groups, u.Teams = slices.Clone(u.Groups), slices.Clone(u.Teams)
	rec.User = u
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	// SET NX makes the name the claim: of two creates of one name exactly one wins.
	created := false
	err = s.acks.Do(ctx, s.rdb, userKey(u.Name), func(c redis.Cmdable) error {
		ok, err := c.SetNX(ctx, userKey(u.Name), data, 0).Result()
		if err != nil {
			return fmt.Errorf("create user %s: %w", u.Name, err)
		}
		if !ok {
			return fmt.Errorf("%w: the name %q is taken", ErrAlreadyExists, u.Name)
		}
		created = true
		return nil
	})
	if !created {
		return nil, err
	}
	err = errors.Join(err, s.changed(ctx, EventAdded, u.Name))
	// Created, even when the edge was not told or the replicas did not answer: the error
	// says so, and the user is returned as a successful create would.
	return &u, err
}

// Get returns the user named name, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*User, error) {
	rec, err := s.getRecord(ctx, name)
	if err != nil {
		return nil, err
	}
	return &rec.User, nil
}

// List returns every user, sorted by name.
func (s *Store) List(ctx context.Context) ([]*User, error) {
	names, err := s.names(ctx)
	if err != nil {
		return nil, err
	}
	// One round trip per batch rather than per user.
	users := make([]*User, 0, len(names))
	for batch := range slices.Chunk(names, 500) {
		found, err := s.getMany(ctx, batch)
		if err != nil {
			return nil, err
		}
		users = append(users, found...)
	}
	return users, nil
}

// ListWithVersion returns every user and the change stream's version read before them: Watch
// from it misses no change made after the list (a change made during the list may come twice,
// which a watcher, reading the user again, takes in its stride).
func (s *Store) ListWithVersion(ctx context.Context) ([]*User, string, error) {
	rv, err := s.CurrentVersion(ctx)
	if err != nil {
		return nil, "", err
	}
	list, err := s.List(ctx)
	return list, rv, err
}

// names returns the name of every user, sorted, from a SCAN of every master.
func (s *Store) names(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	scan := func(ctx context.Context, c *redis.Client) error {
		// SCAN, not KEYS: KEYS blocks Redis for as long as it walks the whole keyspace.
		iter := c.Scan(ctx, 0, keyPrefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			if name, ok := nameOf(iter.Val()); ok {
				seen[name] = true // SCAN may return a key more than once
			}
		}
		return iter.Err()
	}
	var err error
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		err = c.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			// ForEachMaster runs the masters concurrently.
			mu.Lock()
			defer mu.Unlock()
			return scan(ctx, c)
		})
	case *redis.Client:
		err = scan(ctx, c)
	default:
		return nil, fmt.Errorf("list users: unsupported Redis client %T", s.rdb)
	}
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// getMany returns the users named, in order, in one round trip: a pipeline, not MGET, because
// on Cluster the users live in different slots. A user deleted meanwhile is left out.
func (s *Store) getMany(ctx context.Context, names []string) ([]*User, error) {
	cmds := make([]*redis.StringCmd, len(names))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.Get(ctx, userKey(n))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users := make([]*User, 0, len(names))
	for i, cmd := range cmds {
		data, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue // deleted while listing
		}
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		rec, err := decode(names[i], data)
		if err != nil {
			return nil, err
		}
		users = append(users, &rec.User)
	}
	return users, nil
}

// nameOf returns the user name in a Redis key of this package, and false for any other key
// that the SCAN pattern also matches.
func nameOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix+"{")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, "}")
	if !ok || strings.ContainsAny(name, "{}") {
		return "", false
	}
	return name, true
}

// Delete removes the user named name, or returns ErrNotFound.
func (s *Store) Delete(ctx context.Context, name string) error {
	if validation.IsDNS1123Label(name) != nil {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	deleted := false
	err := s.acks.Do(ctx, s.rdb, userKey(name), func(c redis.Cmdable) error {
		n, err := c.Del(ctx, userKey(name)).Result()
		if err != nil {
			return fmt.Errorf("delete user %s: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		deleted = true
		return nil
	})
	if !deleted {
		return err
	}
	return errors.Join(err, s.changed(ctx, EventDeleted, name))
}

// Update applies mutate to the user named name and stores the result if it is valid. The name,
// UID and creation timestamp cannot change. mutate may run more than once, when another client
// changes the user meanwhile, so it should only set fields. It returns the stored user.
func (s *Store) Update(ctx context.Context, name string, mutate func(u *User) error) (*User, error) {
	stored, err := s.modify(ctx, name, func(rec *record) error {
		u := rec.User
		u.Groups, u.Teams = slices.Clone(u.Groups), slices.Clone(u.Teams)
		if err := mutate(&u); err != nil {
			return err
		}
		if u.Name != rec.User.Name {
			return fmt.Errorf("%w: name: cannot be changed (from %q to %q)", ErrInvalid, rec.User.Name, u.Name)
		}
		if !u.CreationTimestamp.Equal(rec.User.CreationTimestamp) {
			return fmt.Errorf("%w: creationTimestamp: cannot be changed", ErrInvalid)
		}
		if u.UID != rec.User.UID {
			return fmt.Errorf("%w: uid: cannot be changed", ErrInvalid)
		}
		if err := u.Validate(); err != nil {
			return err
		}
		u.Revision = rec.User.Revision
		rec.User = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &stored.User, nil
}

// SetPassword replaces the password of the user named name.
func (s *Store) SetPassword(ctx context.Context, name, password string) error {
	// Hashed once, outside the transaction: a retry must not spend another quarter second.
	h, err := s.hash(password)
	if err != nil {
		return err
	}
	_, err = s.modify(ctx, name, func(rec *record) error {
		rec.PasswordHash, rec.NoPassword = h, false
		return nil
	})
	return err
}

// Authenticate returns the user named name if password is theirs and they are not disabled.
// Every refusal is ErrInvalidCredentials, and costs one bcrypt comparison whether or not the
// user exists, so neither the answer nor its timing tells which names exist. Other errors
// (Redis unreachable, a corrupt record) are returned as such: a caller should answer them
// with 503, not 401. A success against a hash of another cost than the store's rehashes the
// password at the store's cost (rehashIfStale).
func (s *Store) Authenticate(ctx context.Context, name, password string) (*User, error) {
	if s.costErr != nil {
		return nil, s.costErr
	}
	var rec *record
	if validation.IsDNS1123Label(name) == nil {
		var err error
		rec, err = s.getRecord(ctx, name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	hash := s.dummyHash()
	if rec != nil && !rec.NoPassword {
		hash = []byte(rec.PasswordHash)
	}
	// Compared in every case, even for a disabled user or an over-long password, so that all
	// refusals take the same time.
	err := s.compare(hash, []byte(password))
	if rec == nil || rec.NoPassword || err != nil || rec.User.Disabled || len(password) > MaxPasswordBytes {
		// The length check matters: bcrypt reads only 72 bytes, so without it any string
		// starting with a 72-byte password would pass for it.
		return nil, ErrInvalidCredentials
	}
	s.rehashIfStale(ctx, name, rec.PasswordHash, password)
	return &rec.User, nil
}

// maxTxAttempts bounds the retries of an optimistic transaction that keeps losing to other
// writers.
const maxTxAttempts = 10

// modify applies change to the record of name in an optimistic transaction (WATCH on the one
// key, so it runs on Cluster too), retrying when another client wrote the key meanwhile. Every
// write counts one more Revision. It returns the stored record.
func (s *Store) modify(ctx context.Context, name string, change func(rec *record) error) (*record, error) {
	if validation.IsDNS1123Label(name) != nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	key := userKey(name)
	var stored *record
	txf := func(tx *redis.Tx) error {
		rec, err := txRecord(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := change(rec); err != nil {
			return err
		}
		rec.User.Revision++
		out, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			// XX: a user deleted between GET and EXEC fails the WATCH anyway; XX says the
			// intent, never to recreate.
			p.SetXX(ctx, key, out, redis.KeepTTL)
			return nil
		})
		if err != nil {
			return err
		}
		stored = rec
		return s.acks.Wait(ctx, tx)
	}
	err := s.watched(ctx, name, key, txf)
	if stored == nil {
		return nil, err
	}
	return stored, errors.Join(err, s.changed(ctx, EventModified, name))
}

// watched runs txf in a WATCH of key, again while other writers win the race.
func (s *Store) watched(ctx context.Context, name, key string, txf func(tx *redis.Tx) error) error {
	for range maxTxAttempts {
		err := s.rdb.Watch(ctx, txf, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("update user %s: too many concurrent changes, try again", name)
}

// txRecord reads the record of name inside a transaction.
func txRecord(ctx context.Context, tx *redis.Tx, name string) (*record, error) {
	data, err := tx.Get(ctx, userKey(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("update user %s: %w", name, err)
	}
	return decode(name, data)
}

// DeleteIf removes the user named name if check, given the stored user, returns nil (else its
// error, such as ErrConflict for a precondition the user no longer meets). It returns the
// deleted user.
func (s *Store) DeleteIf(ctx context.Context, name string, check func(u *User) error) (*User, error) {
	if validation.IsDNS1123Label(name) != nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	key := userKey(name)
	var deleted *User
	txf := func(tx *redis.Tx) error {
		rec, err := txRecord(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := check(&rec.User); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			return nil
		})
		if err != nil {
			return err
		}
		deleted = &rec.User
		return s.acks.Wait(ctx, tx)
	}
	err := s.watched(ctx, name, key, txf)
	if deleted == nil {
		return nil, err
	}
	return deleted, errors.Join(err, s.changed(ctx, EventDeleted, name))
}

func (s *Store) getRecord(ctx context.Context, name string) (*record, error) {
	// A name that fails validation cannot have been stored; asking Redis would only let odd
	// characters (braces move the hash tag) into a key.
	if validation.IsDNS1123Label(name) != nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	data, err := s.rdb.Get(ctx, userKey(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get user %s: %w", name, err)
	}
	return decode(name, data)
}

func decode(name string, data []byte) (*record, error) {
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("user %s: corrupt record %s: %w", name, userKey(name), err)
	}
	if rec.User.Name != name || (rec.PasswordHash == "") != rec.NoPassword {
		return nil, fmt.Errorf("user %s: corrupt record %s: wrong name or no password hash", name, userKey(name))
	}
	return &rec, nil
}
