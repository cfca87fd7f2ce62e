package monitoring

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/keygate-dev/keygate/internal/toolbin"
)

// RulesFile is the alert rules, relative to the repository; the Helm chart wraps them into a
// PrometheusRule and make run's Prometheus evaluates them.
const RulesFile = "manifests/helm/keygate/files/prometheus-rules.yaml"

// TestAlertRules checks the rules with the real promtool (syntax, PromQL, templates) and runs
// their unit tests (rules_test.yaml): each alert fires on the series it is meant for, with the
// annotations an operator reads.
func TestAlertRules(t *testing.T) {
	promtool, err := toolbin.Path("promtool")
	if err != nil {
		t.Fatalf("the alert rule tests need promtool (Debian's prometheus package): %v", err)
	}
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"check": {"check", "rules", filepath.Join(root, RulesFile)},
		"test":  {"test", "rules", filepath.Join(root, "manifests", "monitoring", "rules_test.yaml")},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(promtool, args...).CombinedOutput()
			if err != nil {
				t.Errorf("promtool %v: %v\n%s", args, err, out)
			}
		})
	}
}
