package localdev

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// ScrapeInterval is how often the local Prometheus scrapes every component: short, so that a
// test (or a developer) sees a request in its graphs within seconds, not the usual 15-30 s.
const ScrapeInterval = time.Second

// RulesFile is the alert rules (repository-relative) the local Prometheus evaluates, the same
// file the Helm chart installs as a PrometheusRule.
const RulesFile = "manifests/helm/keygate/files/prometheus-rules.yaml"

// startPrometheus starts a real Prometheus (Debian's package, found by toolbin) on a free
// loopback port, scraping xds, extauthz and keystore's /metrics and Envoy's /stats/prometheus
// and evaluating RulesFile, and waits until it is ready. It sets PrometheusURL.
func (p *Platform) startPrometheus(ctx context.Context) error {
	bin, err := toolbin.Path("prometheus")
	if err != nil {
		return err
	}
	root, err := toolbin.RepoRoot()
	if err != nil {
		return err
	}
	port, err := proc.FreePort()
	if err != nil {
		return err
	}
	config := p.path("prometheus.yml")
	if err := writeFile(config, []byte(p.prometheusConfig(filepath.Join(root, RulesFile))), 0o644); err != nil {
		return err
	}
	p.PrometheusURL = "http://" + addr(port)
	p.step("starting Prometheus on %s", p.PrometheusURL)
	p.prometheus, err = proc.Start("prometheus", p.logs, nil, bin,
		"--config.file="+config, "--storage.tsdb.path="+p.path("prometheus"),
		"--web.listen-address="+addr(port), "--storage.tsdb.retention.time=1d",
		// Debian's package looks for its console templates under /etc; the edge has none.
		"--web.console.templates="+p.path("prometheus"), "--web.console.libraries="+p.path("prometheus"))
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return proc.WaitFor(wctx, p.prometheus, "Prometheus", proc.HTTPReady(p.PrometheusURL+"/-/ready"))
}

// prometheusConfig scrapes each component under its own job, the names the dashboard and the
// alert rules use (job="xds", "extauthz", "keystore", "envoy").
func (p *Platform) prometheusConfig(rules string) string {
	job := func(name, target, path string) string {
		return fmt.Sprintf("  - job_name: %s\n    metrics_path: %s\n    static_configs:\n      - targets: [%q]\n", name, path, target)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", ScrapeInterval, ScrapeInterval)
	if _, err := os.Stat(rules); err == nil {
		fmt.Fprintf(&b, "rule_files:\n  - %q\n", rules)
	}
	b.WriteString("scrape_configs:\n")
	b.WriteString(job("xds", strings.TrimPrefix(strings.TrimSuffix(p.XDSMetricsURL, "/metrics"), "http://"), "/metrics"))
	b.WriteString(job("extauthz", p.extauthzHTTP, "/metrics"))
	b.WriteString(job("keystore", p.keystoreAddrs.http, "/metrics"))
	b.WriteString(job("envoy", strings.TrimPrefix(p.EnvoyAdminURL, "http://"), "/stats/prometheus"))
	return b.String()
}
