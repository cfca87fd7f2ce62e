package faultload

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
		case err == nil && got >= want:
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
	body, err := scrapeReplica(ctx, i)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, appliedMetric+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("no %s in replica %d's /metrics", appliedMetric, i)
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
