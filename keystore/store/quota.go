package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// ErrQuota: the new key would take its owner past their quota.
var ErrQuota = errors.New("access key quota reached")

// Quota bounds how many keys of one kind (say, the live keys of one user that are not login
// keys) may exist at once.
type Quota struct {
	// Max is how many keys Counts selects may exist, the new one included; 0 means no bound.
	Max int
	// Counts selects the keys Max is about. It is given every stored key.
	Counts func(k *v1.OwnedAccessKey) bool
	// EvictOldest makes room by deleting the oldest counted keys (by creation time) in the same
	// step as the create, instead of refusing with ErrQuota.
	EvictOldest bool
	// keep is never evicted: the parent of the key created.
	keep string
}

// PerOwner is the quota of max live keys of k's owner (its user, or its team) and of k's kind:
// login keys (type Login), OIDC refresh tokens (type OIDCRefreshToken) and the others are
// counted apart, since logins and the OIDC provider make keys of their own accord. A key
// expired at now (by its ttl; the edge's --max-ttl is not known here) is of no use to anyone
// and does not count.
func PerOwner(k *v1.OwnedAccessKey, max int, now time.Time) Quota {
	owner, class := accesskey.User(k), quotaClass(k)
	return Quota{Max: max, Counts: func(o *v1.OwnedAccessKey) bool {
		return accesskey.User(o) == owner && quotaClass(o) == class && !accesskey.Expired(o, now, 0)
	}}
}

// quotaClass is which count a key is in: its type for the kinds made of their own accord
// (logins, OIDC refresh tokens), "" for every other key.
func quotaClass(k *v1.OwnedAccessKey) v1.AccessKeyType {
	switch k.Spec.Type {
	case v1.AccessKeyTypeLogin, v1.AccessKeyTypeOIDCRefreshToken:
		return k.Spec.Type
	}
	return ""
}

// maxQuotaAttempts bounds how often CreateWithinQuota counts again because keys changed meanwhile.
const maxQuotaAttempts = 10

// CreateWithinQuota is CreateObject within q: it refuses with ErrQuota when the keys q counts
// number q.Max already, or with q.EvictOldest deletes the oldest of them to make room, and
// returns the names it deleted. It returns once every extauthz replica that refuses unknown
// keys from memory would let the new key in (replicas.go).
//
// The count is exact under concurrent creates: it is taken on a snapshot of every key, and the
// create (with its evictions) is stored only if no key changed since, in one script; else the
// count is taken again. So of two creates at the bound, one is refused. The price is a read of
// every key per create, and a retry when any key changes meanwhile: keys number in thousands
// and change seldom (recording activity is not a change).
func (s *Store) CreateWithinQuota(ctx context.Context, k *v1.OwnedAccessKey, q Quota) (string, *v1.OwnedAccessKey, []string, error) {
	n, err := newKey(k)
	if err != nil {
		return "", nil, nil, err
	}
	for range maxQuotaAttempts {
		f := family{}
		if f.parent, err = s.parentOf(ctx, n.obj); err != nil {
			return "", nil, nil, err
		}
		if f.parent != nil {
			if err := n.follow(f.parent.key); err != nil {
				return "", nil, nil, err
			}
			q.keep = f.parent.key.Name // a login never evicts the session it is made from
		}
		version, evict, err := s.room(ctx, q)
		if err != nil {
			return "", nil, nil, err
		}
		args := append([]any{n.obj.Name, n.digest, n.data, s.opts.EventHistory, version}, f.parentArgs()...)
		res, err := s.write(ctx, createScript, familyKeys, append(args, toAny(evict)...)...)
		if err != nil {
			return "", nil, nil, fmt.Errorf("create access key %s: %w", n.obj.Name, err)
		}
		if res == "stale" || res == "parent" {
			continue // a key (or the parent) changed since it was read: read again
		}
		obj, err := n.stored(res)
		if err != nil {
			return "", nil, nil, err
		}
		s.awaitReplicas(ctx, obj.ResourceVersion)
		return n.plain, obj, evict, nil
	}
	return "", nil, nil, fmt.Errorf("%w: create access key %s: keys kept changing while their quota was counted; try again", ErrConflict, n.obj.Name)
}

// room is the snapshot's resourceVersion and the keys to evict so that one more fits within q;
// none without a bound.
func (s *Store) room(ctx context.Context, q Quota) (string, []string, error) {
	if q.Max <= 0 {
		return "", nil, nil
	}
	all, version, err := s.ListWithVersion(ctx)
	if err != nil {
		return "", nil, err
	}
	evict, err := q.makeRoom(all)
	return version, evict, err
}

// makeRoom returns the keys to delete so that one more fits within q (none when it fits), or
// ErrQuota.
func (q Quota) makeRoom(all []*v1.OwnedAccessKey) ([]string, error) {
	var counted []*v1.OwnedAccessKey
	kept := 0
	for _, k := range all {
		switch {
		case !q.Counts(k):
		case k.Name == q.keep:
			kept++
		default:
			counted = append(counted, k)
		}
	}
	over := len(counted) + kept - q.Max + 1
	if over <= 0 {
		return nil, nil
	}
	if !q.EvictOldest || over > len(counted) {
		return nil, fmt.Errorf("%w: %d keys of at most %d exist", ErrQuota, len(counted)+kept, q.Max)
	}
	sort.Slice(counted, func(i, j int) bool {
		a, b := counted[i], counted[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		// Creation times are in whole seconds; within one, the resourceVersion tells which was
		// written first (exactly, unless one was changed since).
		ra, _ := strconv.ParseInt(a.ResourceVersion, 10, 64)
		rb, _ := strconv.ParseInt(b.ResourceVersion, 10, 64)
		return ra < rb
	})
	evict := make([]string, over)
	for i := range evict {
		evict[i] = counted[i].Name
	}
	return evict, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
