package discover

// Mode is how a Discoverer follows its connected cluster.
type Mode int

const (
	// Polled: no connection is held; the cluster's vcluster Services are listed every poll
	// interval (Poller). The mode of a cluster without virtual clusters, the common case at
	// scale: a watch would hold a TLS connection to each such cluster for nothing.
	Polled Mode = iota
	// Watched: informers follow the cluster's vcluster Services, their namespaces and their
	// Secrets, so that a change is served within a second.
	Watched
)

// String is the mode's name, the value of the mode label of the discovery metrics.
func (m Mode) String() string {
	if m == Watched {
		return "watched"
	}
	return "polled"
}

// pollResult is what the last successful poll of a cluster found.
type pollResult int32

const (
	// pollNone: no poll has succeeded yet; nothing is known of the cluster.
	pollNone pollResult = iota
	// pollEmpty: no vcluster Service.
	pollEmpty
	// pollFound: at least one vcluster Service.
	pollFound
)

// observation is what a Discoverer knows of its cluster when a build asks for its virtual
// clusters.
type observation struct {
	mode Mode
	// poll is what the last successful poll found (Polled). A failed poll leaves it as it was.
	poll pollResult
	// synced is whether the Service cache has filled (Watched).
	synced bool
	// vclusters is the number of vcluster Services in that cache (Watched, once synced).
	vclusters int
}

// nextMode is the mode a Discoverer should be in after o. A cluster is watched from the poll
// that finds its first vcluster Service, and polled again once its synced cache holds none. A
// cache that has not filled (the first list in flight, or the cluster unreachable since the
// watch started) says nothing, and a failed poll changes nothing: bad input loses nothing.
func nextMode(o observation) Mode {
	switch o.mode {
	case Polled:
		if o.poll == pollFound {
			return Watched
		}
	case Watched:
		if o.synced && o.vclusters == 0 {
			return Polled
		}
	}
	return o.mode
}
