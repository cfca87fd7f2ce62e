package main

/*
#include "envoyabi.h"
*/
import "C"

import (
	"sync"
	"unsafe"
)

// With every hook in Go (the filter named keycheck-go-hooks, hooks.c), each request has a Go
// object, created by the filter's first hook, looked up by every other, and dropped by the last,
// as a module written with Envoy's Go SDK has: the least such a module costs beyond one call.

// filterState is one request's object.
type filterState struct {
	table C.uintptr_t
	hooks int // the hooks it went through
}

// filters are the requests in flight, by an odd number (so that hooks.c tells them from its
// configurations' pointers): C may not keep pointers to Go memory.
var filters = struct {
	sync.Mutex
	byID map[C.uintptr_t]*filterState
	next C.uintptr_t
}{byID: map[C.uintptr_t]*filterState{}}

//export kcFilterNew
func kcFilterNew(table C.uintptr_t) C.uintptr_t {
	filters.Lock()
	defer filters.Unlock()
	filters.next++
	id := filters.next<<1 | 1
	filters.byID[id] = &filterState{table: table}
	return id
}

func filterOf(id C.uintptr_t) *filterState {
	filters.Lock()
	defer filters.Unlock()
	f := filters.byID[id]
	if f != nil {
		f.hooks++
	}
	return f
}

//export kcFilterHook
func kcFilterHook(id C.uintptr_t) C.int {
	filterOf(id)
	return C.kc_continue
}

//export kcFilterRequestHeaders
func kcFilterRequestHeaders(filter unsafe.Pointer, id C.uintptr_t) C.int {
	f := filterOf(id)
	if f == nil {
		return kcCheck(filter, 0) // no table: refused
	}
	return kcCheck(filter, f.table)
}

//export kcFilterDestroy
func kcFilterDestroy(id C.uintptr_t) {
	filters.Lock()
	defer filters.Unlock()
	delete(filters.byID, id)
}
