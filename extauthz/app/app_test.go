package app

import (
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     map[string]string
		check   func(Config) bool
		wantErr string
	}{
		"defaults": {check: func(c Config) bool {
			return c.GRPCAddress == "127.0.0.1:19000" && len(c.RedisAddresses) == 1 && c.GrafanaUserHeader == "X-WEBAUTH-USER" && c.MaxTTL == 0
		}},
		"cluster addresses": {args: []string{"--redis-address", "a:1, b:2"}, check: func(c Config) bool {
			return strings.Join(c.RedisAddresses, ",") == "a:1,b:2"
		}},
		"max ttl from env":     {env: map[string]string{"EXTAUTHZ_MAX_TTL": "720h"}, check: func(c Config) bool { return c.MaxTTL == 720*time.Hour }},
		"address without port": {args: []string{"--redis-address", "redis"}, wantErr: `--redis-address "redis": want host:port`},
		"negative max ttl":     {args: []string{"--max-ttl", "-1h"}, wantErr: "--max-ttl must not be negative"},
		"bad duration in env":  {env: map[string]string{"EXTAUTHZ_MAX_TTL": "forever"}, wantErr: "EXTAUTHZ_MAX_TTL (flag --max-ttl)"},
		"stray argument":       {args: []string{"serve"}, wantErr: "unexpected arguments"},
		"empty grafana header": {args: []string{"--grafana-user-header="}, wantErr: "--grafana-user-header is empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := ParseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}
