package users

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
)

// Password limits.
const (
	// MinPasswordLength is the fewest characters (Unicode code points) a password may have.
	MinPasswordLength = 8
	// MaxPasswordBytes is bcrypt's limit: it ignores every byte after the 72nd, so a longer
	// password would be silently weaker than it looks.
	MaxPasswordBytes = 72
)

// DefaultCost is the bcrypt cost when Options.Cost is 0: about a quarter of a second per hash on
// a current server core, above bcrypt.DefaultCost (10), which dates from 2010 hardware.
const DefaultCost = 12

// ValidatePassword returns an error wrapping ErrInvalid when password is too short or too long
// for bcrypt.
func ValidatePassword(password string) error {
	if n := utf8.RuneCountInString(password); n < MinPasswordLength {
		return fmt.Errorf("%w: password: must have at least %d characters (it has %d)", ErrInvalid, MinPasswordLength, n)
	}
	if len(password) > MaxPasswordBytes {
		return fmt.Errorf("%w: password: must have at most %d bytes (it has %d); bcrypt ignores everything after them", ErrInvalid, MaxPasswordBytes, len(password))
	}
	return nil
}

func checkCost(cost int) error {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return fmt.Errorf("users store: bcrypt cost %d is outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return nil
}

// hash validates password and returns its bcrypt hash at the store's cost.
func (s *Store) hash(password string) (string, error) {
	if s.costErr != nil {
		return "", s.costErr
	}
	if err := ValidatePassword(password); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// dummyHash is what Authenticate compares a password against when there is no user (or no
// usable name), so that a miss costs as much time as a hit. It is made at the store's own cost,
// since bcrypt's running time is set by the cost stored in the hash; and only on first use, so
// that commands that never authenticate do not pay for it.
func (s *Store) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		// The password is random and thrown away: nothing can ever match the dummy hash.
		h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), s.cost)
		if err != nil {
			// Unreachable with a checked cost; an empty hash still fails every comparison.
			return
		}
		s.dummy = h
	})
	return s.dummy
}

// Cost is the bcrypt cost of the store's new hashes and of its dummy hash.
func (s *Store) Cost() int { return s.cost }

// rehashIfStale stores a new hash of password, at the store's cost, when the hash it was just
// checked against has another cost: raising --bcrypt-cost then reaches every user at their next
// login, the only time the password is known. Best effort: the login has succeeded already, and
// a hash left as it was is tried again next time, so errors are dropped.
//
// The hash is not part of the User the API shows, so the write neither counts a Revision nor
// appends an event: a rehash never makes a concurrent kubectl edit conflict. It replaces only
// the hash that was checked; a set-password meanwhile wins.
func (s *Store) rehashIfStale(ctx context.Context, name, checked, password string) {
	if cost, err := bcrypt.Cost([]byte(checked)); err != nil || cost == s.cost {
		return
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return
	}
	key := userKey(name)
	_ = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		rec, err := txRecord(ctx, tx, name)
		if err != nil || rec.NoPassword || rec.PasswordHash != checked {
			return err
		}
		rec.PasswordHash = string(h)
		out, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SetXX(ctx, key, out, redis.KeepTTL)
			return nil
		})
		return err
	}, key)
}
