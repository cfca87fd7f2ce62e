package keycache

import "github.com/keygate-dev/keygate/keystore/store"

// A version read proves a digest absent only if the store is at the very change the follower
// applied, not merely at the same number: after Redis loses its data (restarted empty, or a
// failover to a replica that lagged) it hands out the same versions again, for other changes,
// and a replica that has not noticed yet would refuse a key of the new history from the set of
// the old one. So the follower remembers the fingerprints of the last entries it applied
// (history), and a read is judged by the store's newest entry (judge).

// historySize is how many of the last applied entries are remembered: a read is judged against
// the entry of its version, which the follower may have passed meanwhile (more changes than
// this during one read only sends its lookups to Redis).
const historySize = 1024

// history is a ring of the last entries the follower applied, by version.
type history struct {
	ring [historySize]appliedEntry
}

type appliedEntry struct {
	version uint64
	entry   string // the change log entry's fingerprint; "" when not known
}

// reset forgets every entry but version's, where the follower starts; entry is "" when the
// store did not say which it is.
func (h *history) reset(version uint64, entry string) {
	h.ring = [historySize]appliedEntry{}
	h.add(version, entry)
}

// add notes that the follower applied the entry of version.
func (h *history) add(version uint64, entry string) {
	h.ring[version%historySize] = appliedEntry{version, entry}
}

// entry is the fingerprint of the entry of version, if the follower applied it recently and
// knows it.
func (h *history) entry(version uint64) (string, bool) {
	e := h.ring[version%historySize]
	return e.entry, e.version == version && e.entry != ""
}

// verdict is what a version read proves about the digest set.
type verdict int

const (
	// ahead: the store has changes the follower has not applied; wait for it.
	ahead verdict = iota
	// current: the follower applied the store's newest entry: the set holds every key the
	// store did when the read returned.
	current
	// diverged: the store holds another entry, or none, under a version the follower applied:
	// Redis lost data.
	diverged
	// unknown: the follower applied that version but cannot tell which entry it was (passed it
	// by more than historySize, or started there without its entry): read Redis.
	unknown
)

// judge compares head, the store's newest entry, with the follower's history: applied is the
// last version it applied, and at least the version it had applied when the read began.
func judge(head store.Head, applied uint64, h *history) verdict {
	switch {
	case head.Version > applied:
		return ahead
	case head.Version == 0:
		if applied == 0 {
			return current // no change was ever made: there is nothing to differ
		}
		return diverged
	}
	e, ok := h.entry(head.Version)
	switch {
	case !ok:
		return unknown
	case e != head.Entry: // another entry, or none ("") where the follower applied one
		return diverged
	}
	return current
}
