# keygate: the two commands are `make run` and `make test`. Everything else is a step of those.
SHELL := /usr/bin/env bash
GO ?= go

# Packages with tests that start real components take a while on 2 cores; no single test waits
# anywhere near this long, it only bounds a hung run.
TEST_TIMEOUT ?= 30m

.PHONY: run test tools build vet fuzz e2e faults soak test-cluster bench clean help generate images

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: tools ## start the whole platform locally (Ctrl-C stops it); ARGS='--port 9443' to change the port
	$(GO) run ./localdev/cmd/run $(ARGS)

test: tools vet ## install what the tests need, then run every test (unit, integration, end-to-end) and the fuzzers
	$(GO) test -timeout $(TEST_TIMEOUT) -count=1 ./...
	@$(MAKE) --no-print-directory fuzz

# Each fuzz target runs for FUZZ_TIME; failures land in the package's testdata/fuzz as regression
# cases, which every later `go test` replays.
FUZZ_TIME ?= 10s
FUZZ_TARGETS := ./extauthz/attributes:FuzzFromRequest ./extauthz/decide:FuzzDecide ./extauthz/decide:FuzzVerbs \
	./extauthz/server:FuzzDecodeCheckRequest ./extauthz/server:FuzzEncodeOK

fuzz: ## run every fuzz target for FUZZ_TIME (default 10s)
	@GO=$(GO) FUZZ_TIME=$(FUZZ_TIME) scripts/fuzz.sh $(FUZZ_TARGETS)

tools: ## install Envoy, Redis, kube-apiserver, kubectl, etcd, Helm and the Prometheus Operator CRDs under .tools/ (reused when present)
	@scripts/tools.sh

build: ## build xds, extauthz, keystore and the keygate CLI (also as the kubectl plugin kubectl-keygate) into bin/
	$(GO) build -o bin/ ./xds/cmd/xds ./extauthz/cmd/extauthz ./keystore/cmd/keystore ./keystore/cmd/keygate
	cp bin/keygate bin/kubectl-keygate

# Images: one per component, from static binaries, without a container engine or a base image
# (internal/ociimage); manifests/README.md ("Images") says how to load and push them, and the
# Dockerfile beside each component builds the same with Docker.
IMAGE_REPOSITORY ?= ghcr.io/keygate-dev/keygate
IMAGE_TAG ?= dev
IMAGE_ARCH ?= amd64
COMPONENTS := xds extauthz keystore

images: ## build one image tarball per component (xds, extauthz, keystore) into bin/images/, no Docker needed; IMAGE_REPOSITORY, IMAGE_TAG, IMAGE_ARCH
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '-s -w' -o bin/linux_$(IMAGE_ARCH)/ $(foreach c,$(COMPONENTS),./$(c)/cmd/$(c))
	$(GO) run ./internal/ociimage/cmd/ociimage -bin bin/linux_$(IMAGE_ARCH) -out bin/images -arch $(IMAGE_ARCH) \
	  -repository $(IMAGE_REPOSITORY) -tag $(IMAGE_TAG) -revision "$$(git rev-parse --short HEAD 2>/dev/null)" $(COMPONENTS)

generate: ## regenerate deep copies and OpenAPI of keystore/apis (after changing an API type)
	scripts/codegen.sh

vet: ## go vet and a gofmt check
	$(GO) vet ./...
	$(GO) vet -tags soak ./e2e/faults/soak/
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

e2e: tools ## only the end-to-end tests through the real Envoy
	$(GO) test -timeout $(TEST_TIMEOUT) -count=1 -v ./e2e/...

faults: tools ## only the fault tests (e2e/faults: Sentinel; e2e/faults/cluster: Redis Cluster), verbose, with the figures docs/reliability.md quotes
	$(GO) test -timeout $(TEST_TIMEOUT) -count=1 -v ./e2e/faults/...

# Not part of `make test` (its files carry the build tag soak): SOAK_DURATION of load at half the
# measured maximum, key churn and every fault on a schedule. SOAK_ARGS adds flags, e.g.
# '-soak-redis cluster', '-soak-faults none', '-soak-rps 100' (e2e/faults/soak/main_test.go).
SOAK_DURATION ?= 30m
soak: tools ## SOAK_DURATION (30m) at half the measured maximum load with key churn and faults on a schedule; prints RSS, goroutines, fds and Redis memory per minute and fails on growth or a false allow
	$(GO) test -tags soak -timeout 0 -count=1 -v -run TestSoak ./e2e/faults/soak/ -args -soak-duration $(SOAK_DURATION) $(SOAK_ARGS)

# The packages whose tests share a real Redis, and the whole e2e suite, with Redis as a Redis
# Cluster (three masters, three replicas) instead of one server: every script stays in one slot.
CLUSTER_PACKAGES := ./keystore/store ./keystore/users ./keystore/teams ./keystore/auth ./extauthz/keycache ./extauthz/userinfo
test-cluster: tools ## the Redis-backed package tests and e2e against a Redis Cluster (KEYGATE_TEST_REDIS=cluster)
	KEYGATE_TEST_REDIS=cluster $(GO) test -timeout $(TEST_TIMEOUT) -count=1 $(CLUSTER_PACKAGES) ./e2e/

# Not part of `make test`: the 10,000-target run takes minutes. BENCH_ARGS='-targets 100,1000' for less
# (xdsscale), ROUTECOST_ARGS likewise for routecost,
# AUTHZ_ARGS for authz ('-duration 1s -rounds 1'), STREAMS_ARGS for streams ('-rounds 1 -sessions 1,10'),
# REVOCATION_ARGS for revocation ('-revocations 40 -cells 4:load,2:idle').
bench: tools ## measure xds and Envoy at 100, 1,000 and 10,000 targets, what routing costs per request, what checking keys costs, exec and port-forward through the edge, and revocation at many busy extauthz replicas (bench/README.md); prints Markdown tables
	$(GO) run ./bench/xdsscale $(BENCH_ARGS)
	$(GO) run ./bench/routecost $(ROUTECOST_ARGS)
	$(GO) run ./bench/authz $(AUTHZ_ARGS)
	$(GO) run ./bench/streams $(STREAMS_ARGS)
	$(GO) run ./bench/revocation $(REVOCATION_ARGS)

clean: ## remove build outputs and run state (keeps installed tools)
	rm -rf bin .run
