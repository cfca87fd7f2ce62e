// Package layers holds the test that keeps the project's imports running one way, as
// docs/architecture.md draws them: the ground (internal/, envoy/) imports no component; xds and
// keystore import neither each other nor extauthz; extauthz reads keystore's data and meaning
// only; localdev, bench and e2e sit on top, and nothing imports them. It has no code.
package layers
