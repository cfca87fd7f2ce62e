package main

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// TestMain lets the test binary be the load generator, as the bench binary is.
func TestMain(m *testing.M) {
	if runRole() {
		return
	}
	os.Exit(m.Run())
}

// TestHarnessAnswersCorrectly runs a tiny configuration against real extauthz processes and
// Redis: every load Check is allowed and every revoked key ends refused by every replica, or
// run fails. No timings are checked.
func TestHarnessAnswersCorrectly(t *testing.T) {
	s := settings{cells: []cellSpec{{replicas: 2, loaded: true}, {replicas: 1}, {replicas: 2, loaded: true, rate: 50}}, revocations: 4, rounds: 2, conns: 2, loadKeys: 5, gomaxprocs: 1,
		warmup: 200 * time.Millisecond}
	res, err := run(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.cells {
		if len(c.samples) != s.revocations {
			t.Errorf("%s: %d revocations measured, want %d", c.spec, len(c.samples), s.revocations)
		}
		for _, x := range c.samples {
			if len(x.lags) != c.spec.replicas || len(x.applied) != c.spec.replicas {
				t.Errorf("%s: a revocation measured at %d replicas", c.spec, len(x.lags))
			}
			for i := range x.lags {
				// A replica may refuse before the store's call has returned (the lag is then
				// negative); the lower bound counts from the acknowledgement, so it is 0 then.
				if x.lows[i] > max(x.lags[i], 0) {
					t.Errorf("%s: lower bound %s above the lag %s", c.spec, x.lows[i], x.lags[i])
				}
			}
		}
		if c.applied.all() < int64(2*s.revocations*c.spec.replicas) {
			t.Errorf("%s: replicas applied %d changes, want at least %d", c.spec, c.applied.all(), 2*s.revocations*c.spec.replicas)
		}
	}
	if loaded := res.cells[0]; loaded.checks == 0 {
		t.Error("the loaded configuration answered no load Checks")
	}
	// The paced load sends no more than its rate (the window's snapshots may each catch a
	// caller's Check in flight).
	paced := res.cells[2]
	if most := int64(float64(paced.spec.rate*paced.spec.replicas)*paced.elapsed.Seconds()) + int64(2*s.conns*paced.spec.replicas); paced.checks == 0 || paced.checks > most {
		t.Errorf("the configuration at %d/s per replica answered %d load Checks in %v: want some, at most %d", paced.spec.rate, paced.checks, paced.elapsed, most)
	}
	var out strings.Builder
	printTables(&out, s, res)
	if !strings.Contains(out.String(), "| 2 under load | 4 |") {
		t.Errorf("tables lack the loaded configuration's row:\n%s", out.String())
	}
}

// Without polls every revocation is still measured at every replica, by extauthz's own
// histogram, and the first table says why it is missing.
func TestHarnessWithoutPolls(t *testing.T) {
	s := settings{cells: []cellSpec{{replicas: 2, loaded: true, rate: 50}}, revocations: 4, rounds: 1, conns: 2, loadKeys: 5, gomaxprocs: 1,
		warmup: 200 * time.Millisecond, noPolls: true}
	res, err := run(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := res.cells[0]
	if len(c.samples) != s.revocations {
		t.Fatalf("%d revocations measured, want %d", len(c.samples), s.revocations)
	}
	for _, x := range c.samples {
		if len(x.lags) != 0 || len(x.applied) != 2 || x.all() <= 0 {
			t.Errorf("a revocation: %d polled lags, %d replicas' own lags, all %v; want none polled, 2, a positive time", len(x.lags), len(x.applied), x.all())
		}
	}
	var out strings.Builder
	printTables(&out, s, res)
	if !strings.Contains(out.String(), "No polls") || !strings.Contains(out.String(), "| 2 at 50/s each | ") {
		t.Errorf("tables:\n%s", out.String())
	}
}

func okResponse() *authv3.CheckResponse {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}
}

func deniedResponse(status int) *authv3.CheckResponse {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(status)}}}}
}

// A fast wrong answer must fail the run, not count as a refusal or an allow.
func TestClassify(t *testing.T) {
	tests := map[string]struct {
		resp    *authv3.CheckResponse
		err     error
		want    answer
		wantErr bool
	}{
		"allowed":                 {resp: okResponse(), want: allowed},
		"401 is a refusal":        {resp: deniedResponse(http.StatusUnauthorized), want: refused},
		"403 is wrong":            {resp: deniedResponse(http.StatusForbidden), wantErr: true},
		"503 is wrong":            {resp: deniedResponse(http.StatusServiceUnavailable), wantErr: true},
		"gRPC error":              {err: errors.New("unavailable"), wantErr: true},
		"OK without OK response":  {resp: &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}}, wantErr: true},
		"denied without a status": {resp: &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)}}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := classify(tc.resp, tc.err)
			if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
				t.Errorf("classify = %v, %v; want %v, error %t", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// scripted answers Checks from a list, then repeats the last answer.
type scripted struct {
	answers []*authv3.CheckResponse
	n       atomic.Int64
}

func (s *scripted) Check(context.Context, *authv3.CheckRequest, ...grpc.CallOption) (*authv3.CheckResponse, error) {
	i := int(s.n.Add(1)) - 1
	return s.answers[min(i, len(s.answers)-1)], nil
}

func closed() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// An allowed answer after a refusal is a false allow: the poll fails.
func TestPollFailsOnAFalseAllow(t *testing.T) {
	c := &scripted{answers: []*authv3.CheckResponse{okResponse(), deniedResponse(401), okResponse()}}
	ack := time.Now()
	p := poll(context.Background(), c, checkRequest("k"), func() {}, closed(), &ack)
	if p.err == nil || !strings.Contains(p.err.Error(), "false allow") {
		t.Errorf("poll error = %v; want a false allow", p.err)
	}
}

// Allowed answers to polls sent after the acknowledgement are late allows, which is what the
// bench measures, not errors; the poll ends after the refusals it asks for.
func TestPollCountsLateAllows(t *testing.T) {
	c := &scripted{answers: []*authv3.CheckResponse{okResponse(), okResponse(), deniedResponse(401)}}
	ack := time.Now().Add(-time.Second)
	p := poll(context.Background(), c, checkRequest("k"), func() {}, closed(), &ack)
	if p.err != nil || p.late != 2 || p.firstRefused.IsZero() || p.lastAllowedSent.IsZero() {
		t.Errorf("poll = %+v; want 2 late allows, a refusal, no error", p)
	}
	if got := c.n.Load(); got != 3+refusalsAfterFirst {
		t.Errorf("%d polls; want %d", got, 3+refusalsAfterFirst)
	}
}

// The load generator stops at the first refused load Check.
func TestLoadFailsOnARefusal(t *testing.T) {
	c := &scripted{answers: []*authv3.CheckResponse{okResponse(), deniedResponse(401)}}
	var n atomic.Int64
	errc := make(chan error, 1)
	loadLoop(context.Background(), c, []*authv3.CheckRequest{checkRequest("k")}, 0, nil, &n, errc)
	if err := <-errc; err == nil || n.Load() != 1 {
		t.Errorf("load: %v after %d Checks; want an error after 1", err, n.Load())
	}
}

func TestParseCells(t *testing.T) {
	tests := map[string]struct {
		list string
		want []cellSpec
		err  bool
	}{
		"default":       {list: "10:load,10:idle,2:idle", want: []cellSpec{{10, true, 0}, {10, false, 0}, {2, false, 0}}},
		"spaces":        {list: " 4:load , 1:idle", want: []cellSpec{{4, true, 0}, {1, false, 0}}},
		"paced":         {list: "10:load@300", want: []cellSpec{{10, true, 300}}},
		"paced idle":    {list: "10:idle@300", err: true},
		"zero rate":     {list: "10:load@0", err: true},
		"no rate":       {list: "10:load@", err: true},
		"no kind":       {list: "10", err: true},
		"unknown kind":  {list: "10:busy", err: true},
		"zero replicas": {list: "0:idle", err: true},
		"not a number":  {list: "ten:load", err: true},
		"empty element": {list: "2:load,", err: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseCells(tc.list)
			if (err != nil) != tc.err || (err == nil && !slices.Equal(got, tc.want)) {
				t.Errorf("parseCells(%q) = %v, %v; want %v, error %t", tc.list, got, err, tc.want, tc.err)
			}
		})
	}
}

// The lag of the one change between two states is the difference of the histogram's sums;
// any other number of changes between them is an error, not a figure.
func TestLagSince(t *testing.T) {
	before := cacheState{applied: hist{0.001: 3, math.Inf(1): 9}, lagSum: 0.25}
	tests := map[string]struct {
		after   cacheState
		want    time.Duration
		wantErr bool
	}{
		"one change":  {after: cacheState{applied: hist{0.001: 3, math.Inf(1): 10}, lagSum: 0.2537}, want: 3700 * time.Microsecond},
		"none":        {after: before, wantErr: true},
		"two changes": {after: cacheState{applied: hist{0.001: 5, math.Inf(1): 11}, lagSum: 0.26}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.after.lagSince(before)
			if (err != nil) != tc.wantErr || (err == nil && (got-tc.want).Abs() > time.Microsecond) {
				t.Errorf("lagSince = %v, %v; want %v, error %t", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
