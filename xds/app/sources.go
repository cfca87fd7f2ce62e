package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/server"
	"github.com/keygate-dev/keygate/xds/source/file"
	"github.com/keygate-dev/keygate/xds/source/kube"
)

// The values of --source.
const (
	// SourceFile: every target comes from --targets-file.
	SourceFile = "file"
	// SourceKubernetes: clusters come from Cluster objects (xds/source/kube); --targets-file, if
	// set, adds the targets that Kubernetes does not describe (management, auth, oidc).
	SourceKubernetes = "kubernetes"
)

// sources are the running sources of targets, and the latest model of each. The server
// publishes their merge; the targets file wins a prefix that both define.
type sources struct {
	srv     *server.Server
	log     *slog.Logger
	watcher *file.Watcher
	kube    *kube.Source

	mu                 sync.Mutex
	fromFile, fromKube model.Model
}

// startSources loads every configured source and publishes their first merged model: a source
// that cannot be read, or a first model that cannot be translated, fails start-up.
func startSources(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer, srv *server.Server) (*sources, error) {
	s := &sources{srv: srv, log: log}
	var err error
	if cfg.TargetsFile != "" {
		if s.watcher, s.fromFile, err = file.Watch(cfg.TargetsFile, log, file.DefaultDebounce); err != nil {
			return nil, err
		}
	}
	if cfg.Source == SourceKubernetes {
		restCfg, err := kubeRESTConfig(cfg.Kubeconfig)
		if err != nil {
			s.close()
			return nil, err
		}
		s.kube, s.fromKube, err = kube.Watch(ctx, kube.Options{Config: restCfg, SecretNamespace: cfg.KubeSecretNamespace, Log: log, Registerer: reg,
			PollInterval: cfg.DiscoveryPollInterval})
		if err != nil {
			s.close()
			return nil, err
		}
	}
	if err := s.publish(ctx); err != nil {
		s.close()
		return nil, fmt.Errorf("targets: %w", err)
	}
	return s, nil
}

// kubeRESTConfig reads the kubeconfig at path, or the in-cluster configuration if path is empty.
func kubeRESTConfig(path string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if path == "" {
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("--source=kubernetes without --kubeconfig needs to run in a pod: %w", err)
		}
	} else if cfg, err = clientcmd.BuildConfigFromFlags("", path); err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", path, err)
	}
	cfg.UserAgent = "keygate-xds"
	return cfg, nil
}

// run returns a task per source; each ends when ctx does.
func (s *sources) run(ctx context.Context) []func() error {
	var tasks []func() error
	if s.watcher != nil {
		tasks = append(tasks, func() error { return s.watcher.Run(ctx, s.setFile, s.srv.SourceError) })
	}
	if s.kube != nil {
		tasks = append(tasks, func() error { return s.kube.Run(ctx, s.setKube, s.srv.SourceError) })
	}
	return tasks
}

// close releases the sources of a command that does not run them.
func (s *sources) close() {
	if s.watcher != nil {
		s.watcher.Close()
	}
	if s.kube != nil {
		s.kube.Close()
	}
}

func (s *sources) setFile(ctx context.Context, m model.Model) error {
	return s.set(ctx, &s.fromFile, m)
}

func (s *sources) setKube(ctx context.Context, m model.Model) error {
	return s.set(ctx, &s.fromKube, m)
}

// set replaces one source's model and publishes the merge. If the server refuses it, the
// source's previous model is restored, so that the next change elsewhere does not carry the
// refused model along.
func (s *sources) set(ctx context.Context, slot *model.Model, m model.Model) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := *slot
	*slot = m
	if err := s.publish(ctx); err != nil {
		*slot = prev
		return err
	}
	return nil
}

// publish merges the latest models and hands the merge to the server. Callers hold mu (or run
// before the sources do).
func (s *sources) publish(ctx context.Context) error {
	m, dropped := model.Merge(s.fromFile, s.fromKube)
	for _, t := range dropped {
		s.log.Error("target defined both in the targets file and in Kubernetes; the targets file's is served",
			"target", t.Ref.String(), "prefix", t.Ref.Prefix())
	}
	return s.srv.Update(ctx, m)
}
