package kube

import (
	"errors"
	"fmt"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

// build makes the target of ref from the upstream read returns, by model.NewTarget's rules, and
// words the rules the upstream breaks in the terms of the Secret keys it came from, prefixed
// with where (also returned by read): that is what an operator fixes. The errors never quote the
// material.
func build(ref edgepath.Ref, read func() (u model.Upstream, where string, err error)) result {
	var where string
	t, err := model.NewTarget(ref, func() (model.Upstream, error) {
		u, w, err := read()
		where = w
		return u, err
	})
	if rules := model.UpstreamErrors(nil); errors.As(err, &rules) {
		err = fmt.Errorf("%s: %w", where, describe(rules))
	}
	if err != nil {
		return result{ref: ref, err: err}
	}
	return result{ref: ref, target: t}
}

// describe words the rules an upstream from Kubernetes breaks.
func describe(rules model.UpstreamErrors) error {
	var errs []error
	overHTTP := false
	for _, e := range rules {
		switch e.Rule {
		case model.RuleNeedsCA:
			errs = append(errs, errors.New("no CA: an https upstream needs ca.crt or the kubeconfig's certificate-authority-data (the edge always verifies upstream certificates)"))
		case model.RuleNoTLSOverHTTP:
			// One error for every field set: the URL is what is most likely wrong.
			if !overHTTP {
				errs = append(errs, e)
				overHTTP = true
			}
		default:
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}
