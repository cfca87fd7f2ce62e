package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/changelog"
)

// Parents and children (accesskey.BoundToParent): a single sign-on identity's CLI key is a
// child of its browser session key. The store keeps them in step in the same scripts that
// change keys, so that no writer, whatever it is (the management API, the identity refresh,
// `keystore disable-key`, a login's eviction, a logout), can change a parent without its
// children:
//   - creating a child checks that its parent is still as read, and starts it in step;
//   - every update of a parent stores its children as accesskey.FollowParent makes them, in
//     the same script, which checks that the children are still the ones read;
//   - every update of a child makes it follow its parent again, which must be as read;
//   - deleting a parent (by any path, evictions too) deletes its children.
//
//	keygate:{accesskeys}:parents   hash  child name -> parent name
//	keygate:{accesskeys}:children  zset  "<parent>/<child>", all of score 0: a parent's children
//	                                     are one ZRANGEBYLEX (names never hold '/')

// ErrParent: the parent named by a new child cannot have it (gone, or itself a child).
var ErrParent = errors.New("parent access key unusable")

const (
	parentsKey  = prefix + "parents"
	childrenKey = prefix + "children"
)

// familyKeys are the KEYS of every script that creates, changes or deletes keys.
var familyKeys = []string{recordsKey, rvsKey, namesKey, rvKey, eventsKey, activityKey, parentsKey, childrenKey}

// luaFamily are the helpers of those scripts. KEYS: records, rvs, names, rv, events,
// activity, parents, children. delkey deletes a key, its event and its place in the index,
// then its children; it returns the deletion's rv, record and activity, or nil if absent.
const luaFamily = `
local function kids(name)
  return redis.call('ZRANGEBYLEX', KEYS[8], '[' .. name .. '/', '(' .. name .. '0')
end
local function delkey(name, hist)
  local d = redis.call('HGET', KEYS[3], name)
  if not d then return nil end
  local data = redis.call('HGET', KEYS[1], d) or ''
  local act = redis.call('HGET', KEYS[6], d) or ''
  local rv = redis.call('INCR', KEYS[4])
  redis.call('HDEL', KEYS[1], d)
  redis.call('HDEL', KEYS[2], d)
  redis.call('HDEL', KEYS[3], name)
  redis.call('HDEL', KEYS[6], d)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', hist, rv .. '-0', 'at', ` + changelog.LuaAt + `, 'type', 'DELETED', 'digest', d, 'record', data, 'activity', act)
  local p = redis.call('HGET', KEYS[7], name)
  if p then
    redis.call('ZREM', KEYS[8], p .. '/' .. name)
    redis.call('HDEL', KEYS[7], name)
  end
  for _, m in ipairs(kids(name)) do
    local c = string.sub(m, #name + 2)
    redis.call('ZREM', KEYS[8], m)
    redis.call('HDEL', KEYS[7], c)
    delkey(c, hist)
  end
  return {rv, data, act}
end
local function unchanged(name, digest, rv)
  local d = redis.call('HGET', KEYS[3], name)
  return d == digest and redis.call('HGET', KEYS[2], d) == rv
end
`

// member is the children index's member for child of parent.
func member(parent, child string) string { return parent + "/" + child }

// family is what a write of a key must keep in step: its parent (if it is a child) and its
// children, as read, with their digests and resourceVersions.
type family struct {
	parent   *kin
	children []*kin
}

type kin struct {
	digest string
	key    *v1.OwnedAccessKey
}

// parentOf reads the parent k names, if k is a child: ErrParent if it is gone or a child itself.
func (s *Store) parentOf(ctx context.Context, k *v1.OwnedAccessKey) (*kin, error) {
	if !accesskey.BoundToParent(k) {
		return nil, nil
	}
	digest, err := s.digestOf(ctx, k.Spec.Parent)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %s no longer exists", ErrParent, k.Spec.Parent)
	}
	if err != nil {
		return nil, err
	}
	rec, err := s.byDigest(ctx, digest)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %s no longer exists", ErrParent, k.Spec.Parent)
	}
	if err != nil {
		return nil, err
	}
	if accesskey.BoundToParent(rec.Key) {
		return nil, fmt.Errorf("%w: %s is itself the child of %s", ErrParent, k.Spec.Parent, rec.Key.Spec.Parent)
	}
	return &kin{digest: digest, key: rec.Key}, nil
}

// childrenOf reads the children of the key named name, in the index's order.
func (s *Store) childrenOf(ctx context.Context, name string) ([]*kin, error) {
	members, err := s.rdb.ZRangeByLex(ctx, childrenKey, &redis.ZRangeBy{Min: "[" + name + "/", Max: "(" + name + "0"}).Result()
	if err != nil {
		return nil, fmt.Errorf("read the children of access key %s: %w", name, err)
	}
	out := make([]*kin, 0, len(members))
	for _, m := range members {
		child := m[len(name)+1:]
		digest, err := s.digestOf(ctx, child)
		if err != nil {
			return nil, err
		}
		rec, err := s.byDigest(ctx, digest)
		if err != nil {
			return nil, err
		}
		out = append(out, &kin{digest: digest, key: rec.Key})
	}
	return out, nil
}

// parentArgs are a script's parent arguments: name, digest and resourceVersion as read, or
// empty strings.
func (f *family) parentArgs() []any {
	if f.parent == nil {
		return []any{"", "", ""}
	}
	return []any{f.parent.key.Name, f.parent.digest, f.parent.key.ResourceVersion}
}

// childArgs are the children as an update script takes them: their count, then for each its
// name, digest and resourceVersion as read, and its new record ("" when unchanged), made by
// following parent.
func (f *family) childArgs(parent *v1.OwnedAccessKey) ([]any, error) {
	args := []any{len(f.children)}
	for _, c := range f.children {
		next := c.key.DeepCopy()
		data := ""
		if accesskey.FollowParent(next, parent) {
			var err error
			if data, err = encode(c.digest, next); err != nil {
				return nil, err
			}
		}
		args = append(args, c.key.Name, c.digest, c.key.ResourceVersion, data)
	}
	return args, nil
}

// keepsFamily refuses an update that would make a key a child, or another key's child, or no
// longer a child: the index says who follows whom, and only a create sets it.
func keepsFamily(k, cur *v1.OwnedAccessKey) error {
	if accesskey.BoundToParent(k) != accesskey.BoundToParent(cur) || (accesskey.BoundToParent(cur) && k.Spec.Parent != cur.Spec.Parent) {
		return fmt.Errorf("%w: the parent and type of a login key bound to its session (spec.parent %q) cannot change", ErrInvalid, cur.Spec.Parent)
	}
	return nil
}
