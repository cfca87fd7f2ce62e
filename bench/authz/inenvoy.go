package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// The in-Envoy module case: inenvoy/ is a Go module of its own (cgo, -buildmode=c-shared), so
// that the main module builds and vets without a C compiler; the bench builds it at every
// start, from the working tree, as it builds extauthz (Go's build cache makes it quick after
// the first time).

// inEnvoyModule is the module's name: Envoy loads lib<name>.so from the directory in
// ENVOY_DYNAMIC_MODULES_SEARCH_PATH (the run's directory).
const inEnvoyModule = "keycheck"

// buildModule builds inenvoy/ into dir/lib<inEnvoyModule>.so.
func buildModule(root, dir string, progress io.Writer) error {
	if _, err := exec.LookPath("gcc"); err != nil && os.Getenv("CC") == "" {
		return fmt.Errorf("the in-Envoy module case builds a Go shared library with cgo, which needs a C compiler: apt-get install gcc (%w)", err)
	}
	out := filepath.Join(dir, "lib"+inEnvoyModule+".so")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	build.Dir, build.Stderr = filepath.Join(root, "bench", "authz", "inenvoy"), progress
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build -buildmode=c-shared ./bench/authz/inenvoy: %w", err)
	}
	return nil
}

// inEnvoyFilter is the dynamic-module filter running the module with table (the do-nothing
// server's: "<key digest> <status>" lines); with goHooks, every hook of a request calls into Go
// (the filter name tells the module). do_not_close: a Go shared library cannot be unloaded (its
// runtime's threads would go on in unmapped code), so Envoy must keep it loaded when a
// configuration update drops the filter.
func inEnvoyFilter(goHooks bool, table string) (string, error) {
	name := inEnvoyModule
	if goHooks {
		name += "-go-hooks"
	}
	filter, err := json.Marshal(map[string]any{"name": "envoy.filters.http.dynamic_modules", "typed_config": map[string]any{
		"@type":                 "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
		"dynamic_module_config": map[string]any{"name": inEnvoyModule, "do_not_close": true},
		"filter_name":           name,
		"filter_config":         map[string]any{"@type": "type.googleapis.com/google.protobuf.StringValue", "value": table}}})
	return string(filter), err
}
