# keygate: the two commands are `make run` and `make test`. Everything else is a step of those.
SHELL := /usr/bin/env bash
GO ?= go

# Packages with tests that start real components take a while on 2 cores; no single test waits
# anywhere near this long, it only bounds a hung run.
TEST_TIMEOUT ?= 30m

.PHONY: run test tools build vet e2e clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: tools ## start the whole platform locally (Ctrl-C stops it); ARGS='--port 9443' to change the port
	$(GO) run ./localdev/cmd/run $(ARGS)

test: tools vet ## install what the tests need, then run every test (unit, integration, end-to-end)
	$(GO) test -timeout $(TEST_TIMEOUT) -count=1 ./...

tools: ## install Envoy, Redis, kube-apiserver, kubectl and etcd under .tools/ (reused when present)
	@scripts/tools.sh

build: ## build xds, extauthz and keystore into bin/
	$(GO) build -o bin/ ./xds/cmd/xds ./extauthz/cmd/extauthz ./keystore/cmd/keystore

vet: ## go vet and a gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

e2e: tools ## only the end-to-end tests through the real Envoy
	$(GO) test -timeout $(TEST_TIMEOUT) -count=1 -v ./e2e/...

clean: ## remove build outputs and run state (keeps installed tools)
	rm -rf bin .run
