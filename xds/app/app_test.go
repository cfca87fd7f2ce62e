package app

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/xds/translate"
)

// flagLimits are the limits the flags set when none is given.
var flagLimits = translate.Limits{RequestHeadersTimeout: translate.DefaultLimits.RequestHeadersTimeout, StreamIdleTimeout: translate.DefaultLimits.StreamIdleTimeout,
	WatchMaxDuration: translate.DefaultWatchMaxDuration, SessionMaxDuration: translate.DefaultSessionMaxDuration}

// streamLimits are flagLimits with the stream bounds of the "stream bounds" case.
var streamLimits = func() translate.Limits {
	l := flagLimits
	l.WatchMaxDuration = translate.StreamBounds{"cluster": time.Minute, "virtualcluster": time.Minute, "management": time.Minute, "grafana": time.Minute}
	l.SessionMaxDuration = translate.StreamBounds{"cluster": 2 * time.Hour, "virtualcluster": time.Hour, "management": time.Hour, "grafana": 0}
	return l
}()

// grpcTLSArgs are the gRPC port's TLS flags, which every command line needs (or plaintext on
// loopback); grpcTLS is what they parse to.
var (
	grpcTLSArgs = []string{"--grpc-tls-cert-file", "xds.crt", "--grpc-tls-key-file", "xds.key", "--grpc-client-ca-file", "cp-ca.crt"}
	grpcTLS     = grpctls.Config{CertFile: "xds.crt", KeyFile: "xds.key", ClientCAFile: "cp-ca.crt"}
	grpcTLSEnv  = map[string]string{"XDS_GRPC_TLS_CERT_FILE": "xds.crt", "XDS_GRPC_TLS_KEY_FILE": "xds.key", "XDS_GRPC_CLIENT_CA_FILE": "cp-ca.crt"}
)

func withEnv(env, more map[string]string) map[string]string {
	out := maps.Clone(env)
	maps.Copy(out, more)
	return out
}

func TestParseFlags(t *testing.T) {
	required := append([]string{"--targets-file", "t.yaml", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"}, grpcTLSArgs...)
	tests := map[string]struct {
		args []string
		env  map[string]string
		want Config
	}{
		"defaults": {
			args: required,
			want: Config{Source: "file", TargetsFile: "t.yaml", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", GRPCAddress: "127.0.0.1:18000", GRPCTLS: grpcTLS, HTTPAddress: "127.0.0.1:18001",
				ListenAddress: "0.0.0.0:8443", ExtAuthzCluster: "extauthz", ExtAuthzTimeout: 2 * time.Second, Limits: flagLimits, LogLevel: "info", LogFormat: "json", DiscoveryPollInterval: time.Minute},
		},
		"stream bounds": {
			args: append([]string{"--max-watch-duration", "1m", "--max-session-duration", "cluster=2h,grafana=0"}, required...),
			want: Config{Source: "file", TargetsFile: "t.yaml", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", GRPCAddress: "127.0.0.1:18000", GRPCTLS: grpcTLS, HTTPAddress: "127.0.0.1:18001",
				ListenAddress: "0.0.0.0:8443", ExtAuthzCluster: "extauthz", ExtAuthzTimeout: 2 * time.Second, Limits: streamLimits, LogLevel: "info", LogFormat: "json", DiscoveryPollInterval: time.Minute},
		},
		"stream bounds from the environment": {
			args: required,
			env:  map[string]string{"XDS_MAX_WATCH_DURATION": "1m", "XDS_MAX_SESSION_DURATION": "cluster=2h,grafana=0s"},
			want: Config{Source: "file", TargetsFile: "t.yaml", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", GRPCAddress: "127.0.0.1:18000", GRPCTLS: grpcTLS, HTTPAddress: "127.0.0.1:18001",
				ListenAddress: "0.0.0.0:8443", ExtAuthzCluster: "extauthz", ExtAuthzTimeout: 2 * time.Second, Limits: streamLimits, LogLevel: "info", LogFormat: "json", DiscoveryPollInterval: time.Minute},
		},
		"environment": {
			env: withEnv(grpcTLSEnv, map[string]string{"XDS_TARGETS_FILE": "env.yaml", "XDS_TLS_CERT_FILE": "c", "XDS_TLS_KEY_FILE": "k", "XDS_EXTAUTHZ_TIMEOUT": "500ms", "XDS_LISTEN_ADDRESS": "127.0.0.1:9443"}),
			want: Config{Source: "file", TargetsFile: "env.yaml", TLSCertFile: "c", TLSKeyFile: "k", GRPCAddress: "127.0.0.1:18000", GRPCTLS: grpcTLS, HTTPAddress: "127.0.0.1:18001",
				ListenAddress: "127.0.0.1:9443", ExtAuthzCluster: "extauthz", ExtAuthzTimeout: 500 * time.Millisecond, Limits: flagLimits, LogLevel: "info", LogFormat: "json", DiscoveryPollInterval: time.Minute},
		},
		"kubernetes": {
			args: append([]string{"--source", "kubernetes", "--kubeconfig", "platform.kubeconfig", "--kube-secret-namespace", "keygate", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"}, grpcTLSArgs...),
			env:  map[string]string{"XDS_KUBE_SECRET_NAMESPACE": "ignored"},
			want: Config{Source: "kubernetes", Kubeconfig: "platform.kubeconfig", KubeSecretNamespace: "keygate", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", GRPCAddress: "127.0.0.1:18000", GRPCTLS: grpcTLS, HTTPAddress: "127.0.0.1:18001",
				ListenAddress: "0.0.0.0:8443", ExtAuthzCluster: "extauthz", ExtAuthzTimeout: 2 * time.Second, Limits: flagLimits, LogLevel: "info", LogFormat: "json", DiscoveryPollInterval: time.Minute},
		},
		"kubernetes from the environment, with a targets file": {
			env: withEnv(grpcTLSEnv, map[string]string{"XDS_SOURCE": "kubernetes", "XDS_TARGETS_FILE": "static.yaml", "XDS_TLS_CERT_FILE": "c", "XDS_TLS_KEY_FILE": "k", "XDS_DISCOVERY_POLL_INTERVAL": "5m"}),
			want: Config{Source: "kubernetes", TargetsFile: "static.yaml", TLSCertFile: "c", TLSKeyFile: "k", GRPCAddress: "127.0.0.1:18000", GRPCTLS: grpcTLS, HTTPAddress: "127.0.0.1:18001",
				ListenAddress: "0.0.0.0:8443", ExtAuthzCluster: "extauthz", ExtAuthzTimeout: 2 * time.Second, Limits: flagLimits, LogLevel: "info", LogFormat: "json", DiscoveryPollInterval: 5 * time.Minute},
		},
		"plaintext on loopback": {
			args: []string{"--targets-file", "t.yaml", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem", "--grpc-insecure-loopback", "--grpc-address", "[::1]:18000"},
			want: Config{Source: "file", TargetsFile: "t.yaml", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", GRPCAddress: "[::1]:18000", GRPCTLS: grpctls.Config{InsecureLoopback: true}, HTTPAddress: "127.0.0.1:18001",
				ListenAddress: "0.0.0.0:8443", ExtAuthzCluster: "extauthz", ExtAuthzTimeout: 2 * time.Second, Limits: flagLimits, LogLevel: "info", LogFormat: "json", DiscoveryPollInterval: time.Minute},
		},
		"pprof on a port alone listens on loopback": {
			args: append([]string{"--pprof-address", ":6060"}, required...),
			want: Config{Source: "file", TargetsFile: "t.yaml", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", GRPCAddress: "127.0.0.1:18000", GRPCTLS: grpcTLS, HTTPAddress: "127.0.0.1:18001", PprofAddress: "127.0.0.1:6060",
				ListenAddress: "0.0.0.0:8443", ExtAuthzCluster: "extauthz", ExtAuthzTimeout: 2 * time.Second, Limits: flagLimits, LogLevel: "info", LogFormat: "json", DiscoveryPollInterval: time.Minute},
		},
		"flag wins over environment": {
			args: append([]string{"--log-format", "text"}, required...),
			env:  map[string]string{"XDS_LOG_FORMAT": "json", "XDS_TARGETS_FILE": "env.yaml"},
			want: Config{Source: "file", TargetsFile: "t.yaml", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", GRPCAddress: "127.0.0.1:18000", GRPCTLS: grpcTLS, HTTPAddress: "127.0.0.1:18001",
				ListenAddress: "0.0.0.0:8443", ExtAuthzCluster: "extauthz", ExtAuthzTimeout: 2 * time.Second, Limits: flagLimits, LogLevel: "info", LogFormat: "text", DiscoveryPollInterval: time.Minute},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := ParseFlags(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	required := append([]string{"--targets-file", "t.yaml", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"}, grpcTLSArgs...)
	tests := map[string]struct {
		args []string
		want []string
	}{
		"nothing":                {nil, []string{"--targets-file (or XDS_TARGETS_FILE) is required", "--tls-cert-file (or XDS_TLS_CERT_FILE) is required", "--tls-key-file (or XDS_TLS_KEY_FILE) is required"}},
		"unknown flag":           {append([]string{"--insecure"}, required...), []string{"flag provided but not defined: -insecure"}},
		"unknown source":         {append([]string{"--source", "consul"}, required...), []string{`--source "consul": want file or kubernetes`}},
		"kubeconfig for file":    {append([]string{"--kubeconfig", "k"}, required...), []string{"--kubeconfig is set but --source is file"}},
		"kubernetes without tls": {[]string{"--source", "kubernetes"}, []string{"--tls-cert-file (or XDS_TLS_CERT_FILE) is required"}},
		"no gRPC TLS":            {[]string{"--targets-file", "t.yaml", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"}, []string{"--grpc-tls-cert-file is required: the gRPC port serves only mutual TLS", "--grpc-client-ca-file is required"}},
		"plaintext on every interface": {[]string{"--targets-file", "t.yaml", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem", "--grpc-insecure-loopback", "--grpc-address", "0.0.0.0:18000"},
			[]string{`--grpc-insecure-loopback is refused with --grpc-address "0.0.0.0:18000": plaintext gRPC is allowed on a loopback address only`}},
		"positional":            {append(required, "extra"), []string{`unexpected arguments ["extra"]`}},
		"bad timeout":           {append([]string{"--extauthz-timeout", "soon"}, required...), []string{`invalid value "soon" for flag -extauthz-timeout`}},
		"zero timeout":          {append([]string{"--extauthz-timeout", "0s"}, required...), []string{"--extauthz-timeout 0s must be positive"}},
		"zero poll interval":    {append([]string{"--discovery-poll-interval", "0s"}, required...), []string{"--discovery-poll-interval 0s must be positive"}},
		"listen on a name":      {append([]string{"--listen-address", "edge.example.com:8443"}, required...), []string{"Envoy listens on an IP address"}},
		"grpc without port":     {append([]string{"--grpc-address", "127.0.0.1"}, required...), []string{`--grpc-address: "127.0.0.1" is not host:port`}},
		"http port too high":    {append([]string{"--http-address", "127.0.0.1:70000"}, required...), []string{`--http-address: "127.0.0.1:70000": port "70000"`}},
		"pprof without port":    {append([]string{"--pprof-address", "localhost"}, required...), []string{`--pprof-address "localhost" is not host:port`}},
		"pprof beyond loopback": {append([]string{"--pprof-address", "0.0.0.0:6060"}, required...), []string{`--pprof-address "0.0.0.0:6060": profiles are served on a loopback address only`}},
		"bad log level":         {append([]string{"--log-level", "loud"}, required...), []string{`--log-level "loud"`}},
		"bad log format":        {append([]string{"--log-format", "xml"}, required...), []string{`--log-format "xml"`}},
		"zero header timeout":   {append([]string{"--request-headers-timeout", "0s"}, required...), []string{`--request-headers-timeout 0s must be positive`}},
		"negative idle timeout": {append([]string{"--stream-idle-timeout", "-1s"}, required...), []string{`--stream-idle-timeout -1s must be positive`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseFlags(tc.args, io.Discard)
			var usage *UsageError
			if !errors.As(err, &usage) {
				t.Fatalf("ParseFlags error = %v, want a UsageError (exit status 2)", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRunStartupErrors(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"missing serving certificate": {
			[]string{"--targets-file", "testdata/none.yaml", "--tls-cert-file", "/nonexistent.crt", "--tls-key-file", "/nonexistent.key"},
			"--tls-cert-file: open /nonexistent.crt: no such file or directory",
		},
		"mismatched serving key": {
			[]string{"--targets-file", "testdata/none.yaml", "--tls-cert-file", "../translate/testdata/pki/serving.crt", "--tls-key-file", "../translate/testdata/pki/edge.key"},
			"not a matching PEM certificate and key",
		},
		"bad targets file": {
			[]string{"--targets-file", "testdata/bad.yaml", "--tls-cert-file", "../translate/testdata/pki/serving.crt", "--tls-key-file", "../translate/testdata/pki/serving.key"},
			"clusters[0] (demo): caFile: an https upstream needs caFile or caData",
		},
		"mismatched gRPC key": {
			[]string{"--targets-file", "testdata/none.yaml", "--tls-cert-file", "../translate/testdata/pki/serving.crt", "--tls-key-file", "../translate/testdata/pki/serving.key",
				"--grpc-tls-cert-file", "../translate/testdata/pki/serving.crt", "--grpc-tls-key-file", "../translate/testdata/pki/edge.key", "--grpc-client-ca-file", "../translate/testdata/pki/ca.crt"},
			"--grpc-tls-cert-file ../translate/testdata/pki/serving.crt and --grpc-tls-key-file ../translate/testdata/pki/edge.key: not a matching PEM certificate and key",
		},
		"missing client CA": {
			[]string{"--targets-file", "testdata/none.yaml", "--tls-cert-file", "../translate/testdata/pki/serving.crt", "--tls-key-file", "../translate/testdata/pki/serving.key",
				"--grpc-tls-cert-file", "../translate/testdata/pki/serving.crt", "--grpc-tls-key-file", "../translate/testdata/pki/serving.key", "--grpc-client-ca-file", "/nonexistent-ca.crt"},
			"--grpc-client-ca-file: open /nonexistent-ca.crt: no such file or directory",
		},
		"missing kubeconfig": {
			[]string{"--source", "kubernetes", "--kubeconfig", "/nonexistent.kubeconfig", "--tls-cert-file", "../translate/testdata/pki/serving.crt", "--tls-key-file", "../translate/testdata/pki/serving.key"},
			"--kubeconfig /nonexistent.kubeconfig: stat /nonexistent.kubeconfig: no such file or directory",
		},
		"in-cluster outside a pod": {
			[]string{"--source", "kubernetes", "--tls-cert-file", "../translate/testdata/pki/serving.crt", "--tls-key-file", "../translate/testdata/pki/serving.key"},
			"--source=kubernetes without --kubeconfig needs to run in a pod",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := tc.args
			if !slices.Contains(args, "--grpc-tls-cert-file") {
				args = append(args, "--grpc-tls-cert-file", "../translate/testdata/pki/serving.crt", "--grpc-tls-key-file", "../translate/testdata/pki/serving.key", "--grpc-client-ca-file", "../translate/testdata/pki/ca.crt")
			}
			err := Run(context.Background(), args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run error = %v, want one containing %q", err, tc.want)
			}
			var usage *UsageError
			if errors.As(err, &usage) {
				t.Errorf("a start-up failure is not a usage error (exit 1, not 2): %v", err)
			}
		})
	}
}
