package faultload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// appliedMetric is extauthz's gauge of the newest access-key change a replica applied.
const appliedMetric = "keygate_extauthz_keycache_applied_resource_version"

// WaitApplied waits until every extauthz replica has applied the access-key store's changes up
// to its current version (read now, so at or after any write acknowledged before the call),
// and returns when they all had: from then on a revocation acknowledged before the call is in
// force at the whole edge (extauthz/README.md, "Key cache and revocation"), and a revoked key
// passing is a false allow. Before then one replica may refuse the key while another still
// passes it: that is the revocation's lag, not a false allow. within bounds the wait.
func WaitApplied(ctx context.Context, within time.Duration) (time.Time, error) {
	v, err := Keys.CurrentVersion(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the store's version: %w", err)
	}
	want, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("the store's version %q: %w", v, err)
	}
	deadline := time.Now().Add(within)
	for i := 0; i < Platform.ExtAuthzReplicas(); {
		got, err := appliedVersion(ctx, i)
		switch {
		case err == nil && got >= want, errors.Is(err, syscall.ECONNREFUSED):
			// Applied; or down (a fault killed it), when it answers nothing, and lists the store
			// afresh, revocation included, when it starts again.
			i++
			continue
		case time.Now().After(deadline):
			return time.Time{}, fmt.Errorf("extauthz replica %d applied version %.0f (%v) after %s, not yet %s", i, got, err, within, v)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return time.Now(), nil
}

// appliedVersion is extauthz replica i's keygate_extauthz_keycache_applied_resource_version.
func appliedVersion(ctx context.Context, i int) (float64, error) {
	return replicaMetric(ctx, i, appliedMetric)
}

// resyncSeries counts the times a replica noticed the store went back in time (Redis lost
// data) and emptied its cache.
const resyncSeries = `keygate_extauthz_keycache_stream_restarts_total{reason="resync"}`

// Resyncs is every extauthz replica's count of resyncs now (-1 for one that does not answer):
// WaitResynced's starting point.
func Resyncs(ctx context.Context) []float64 {
	n := make([]float64, Platform.ExtAuthzReplicas())
	for i := range n {
		v, err := replicaMetric(ctx, i, resyncSeries)
		if err != nil {
			v = -1
		}
		n[i] = v
	}
	return n
}

// WaitResynced waits until every extauthz replica resynced since before (Resyncs), i.e. noticed
// that Redis lost data and dropped everything it had cached, and returns when they all had: a
// key Redis lost is refused by the whole edge from then on. within bounds the wait.
func WaitResynced(ctx context.Context, before []float64, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	for i := 0; i < len(before); {
		got, err := replicaMetric(ctx, i, resyncSeries)
		switch {
		case err == nil && got > before[i]:
			i++
			continue
		case time.Now().After(deadline):
			return time.Time{}, fmt.Errorf("extauthz replica %d: %.0f resyncs (%v) after %s, as before the loss", i, got, err, within)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return time.Now(), nil
}

// replicaMetric is the value of series (a metric's name with its labels, as /metrics writes
// it) in extauthz replica i's /metrics.
func replicaMetric(ctx context.Context, i int, series string) (float64, error) {
	body, err := scrapeReplica(ctx, i)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("no %s in replica %d's /metrics", series, i)
}

// scrapeReplica is extauthz replica i's /metrics.
func scrapeReplica(ctx context.Context, i int) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+Platform.ExtAuthzHTTPAddress(i)+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
