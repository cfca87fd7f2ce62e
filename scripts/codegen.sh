#!/usr/bin/env bash
# Regenerates the deep-copy functions and OpenAPI definitions of the management.loft.sh/v1 API.
# Runs from the repository root it lives in, so a test can run a copy of the tree elsewhere and
# compare the results with the committed files. The generators come from go.mod's tool directives,
# so everyone generates with the same versions.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly module=github.com/keygate-dev/keygate
readonly api=keystore/apis/management/v1
readonly header=scripts/boilerplate.go.txt

go tool deepcopy-gen \
  --go-header-file "$header" \
  --output-file zz_generated.deepcopy.go \
  "./$api"

# The apimachinery packages are inputs too, as in kube_codegen.sh and sample-apiserver: the
# objects reference ObjectMeta, Time, ListMeta and the like, and a server needs every referenced
# definition to serve /openapi/v2 and /openapi/v3.
#
# The apimachinery packages carry +k8s:openapi-model-package as well, so they are marked read-only:
# their model-name files already exist, in the module cache. Ours is written into the API package.
#
# Rule violations (Go names such as ClientID whose JSON name is Loft's "clientId") go to a report
# that is committed, as Kubernetes does: the JSON names are Loft's and must not change, and a new
# violation shows up as a diff of the report.
mkdir -p "$api/openapi"
go tool openapi-gen \
  --go-header-file "$header" \
  --output-file zz_generated.openapi.go \
  --output-dir "$api/openapi" \
  --output-pkg "$module/$api/openapi" \
  --report-filename "$api/openapi/violations.report" \
  --output-model-name-file zz_generated.model_name.go \
  --readonly-pkg k8s.io/apimachinery/pkg/apis/meta/v1 \
  --readonly-pkg k8s.io/apimachinery/pkg/runtime \
  --readonly-pkg k8s.io/apimachinery/pkg/version \
  k8s.io/apimachinery/pkg/apis/meta/v1 \
  k8s.io/apimachinery/pkg/runtime \
  k8s.io/apimachinery/pkg/version \
  "./$api"
