// Command keycheck is an Envoy HTTP filter, built as a dynamic module
// (go build -buildmode=c-shared), that checks access keys inside Envoy: it does what the
// authz bench's do-nothing ext_authz server does (a SHA-256 of the bearer key and a lookup of
// the digest in memory) without the gRPC call, so that the bench can measure what moving the
// check into Envoy's process saves. It is a measurement, not part of the product: it knows a
// fixed table of digests from its filter configuration, and nothing of scopes, revocation or
// Redis. See bench/README.md ("authz").
//
// Its own Go module, so that the main module's go build ./... and go vet ./... need no cgo.
// It is written against Envoy's C ABI (envoyabi.h, hooks.c) rather than Envoy's Go SDK, which
// the Go module proxy does not serve at a version matching Envoy 1.40.
package main

/*
#include "envoyabi.h"
*/
import "C"

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

func main() {} // a c-shared library's main package needs one; it never runs

// table is one filter configuration: key digest → the status to answer (200: let through).
type table map[[sha256.Size]byte]int

// parseTable reads the filter configuration: one "<hex SHA-256 of a key> <status>" per line,
// the do-nothing server's format. Digests only: the configuration never holds a key.
func parseTable(config string) (table, error) {
	t := table{}
	for _, line := range strings.Split(strings.TrimSpace(config), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %q: want a digest and a status", line)
		}
		raw, err := hex.DecodeString(f[0])
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("line %q: not a hex SHA-256", line)
		}
		code, err := strconv.Atoi(f[1])
		if err != nil || code < 200 || code > 599 {
			return nil, fmt.Errorf("line %q: not an HTTP status", line)
		}
		t[[sha256.Size]byte(raw)] = code
	}
	return t, nil
}

var bearer = []byte("Bearer ")

// decide is the status for an Authorization header's value (nil when there is none): unknown
// keys and requests without one get 401, as from the do-nothing server.
func (t table) decide(authorization []byte) int {
	if code, ok := t[sha256.Sum256(bytes.TrimPrefix(authorization, bearer))]; ok && authorization != nil {
		return code
	}
	return http.StatusUnauthorized
}

// configs holds the tables Envoy created, by the number Envoy was handed for each (its index +
// 1): C may not keep pointers to Go memory. Every request reads it, so it is replaced whole
// (copy on write) and read without a lock; only creation and destruction take the lock.
var (
	configsMu sync.Mutex
	configs   atomic.Pointer[[]table]
)

//export kcNewConfig
func kcNewConfig(ptr *C.char, length C.size_t) C.uintptr_t {
	t, err := parseTable(C.GoStringN(ptr, C.int(length)))
	if err != nil {
		// Envoy refuses the configuration when the module returns 0; it does not pass on why.
		println("keycheck: filter configuration refused:", err.Error())
		return 0
	}
	configsMu.Lock()
	defer configsMu.Unlock()
	var next []table
	if old := configs.Load(); old != nil {
		next = append(next, *old...)
	}
	next = append(next, t)
	configs.Store(&next)
	return C.uintptr_t(len(next))
}

//export kcDestroyConfig
func kcDestroyConfig(id C.uintptr_t) {
	configsMu.Lock()
	defer configsMu.Unlock()
	if old := configs.Load(); old != nil && id > 0 && int(id) <= len(*old) {
		next := append([]table(nil), *old...)
		next[id-1] = nil
		configs.Store(&next)
	}
}

// kcCheck judges one request from its headers, and answers it itself unless the key is
// allowed. A panic must not reach Envoy (a Go panic through a cgo callback ends the process,
// Envoy with it): it refuses the request with a 500 instead.
//
//export kcCheck
func kcCheck(filter unsafe.Pointer, id C.uintptr_t) (status C.int) {
	defer func() {
		if r := recover(); r != nil {
			println("keycheck: panic:", fmt.Sprint(r))
			C.kc_deny(filter, http.StatusInternalServerError)
			status = C.kc_stop_iteration
		}
	}()
	code := http.StatusUnauthorized
	if all := configs.Load(); all != nil && id > 0 && int(id) <= len(*all) && (*all)[id-1] != nil {
		var auth []byte
		// Envoy's own memory, valid during this call: read in place, never kept.
		if v := C.kc_authorization(filter); v.ptr != nil {
			auth = unsafe.Slice((*byte)(unsafe.Pointer(v.ptr)), int(v.length))
		}
		code = (*all)[id-1].decide(auth)
	}
	if code == http.StatusOK {
		C.kc_allow(filter)
		return C.kc_continue
	}
	C.kc_deny(filter, C.uint32_t(code))
	return C.kc_stop_iteration
}
