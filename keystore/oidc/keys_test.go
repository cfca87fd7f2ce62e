package oidc_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/keygate-dev/keygate/keystore/oidc"
	"github.com/keygate-dev/keygate/keystore/sealed"
)

// kidOf is the kid in a JWT's header.
func kidOf(t *testing.T, raw string) string {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID
}

func (e *env) jwksKids() []string {
	e.t.Helper()
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	e.getJSON(e.srv.URL+"/oidc/keys", &jwks)
	var out []string
	for _, k := range jwks.Keys {
		out = append(out, k.Kid)
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestKeyRotation: after a rotation, new tokens carry the new kid; a token signed before
// still verifies (its key stays in the JWKS); once every token the old key signed has expired,
// the old key leaves the JWKS. The clock is the provider's, moved forward.
func TestKeyRotation(t *testing.T) {
	var skew atomic.Int64
	e := newEnv(t, func(o *oidc.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		o.AccessTokenTTL, o.IDTokenTTL = time.Minute, time.Minute
	})
	u := e.newUser("dev")
	before := e.login(u, e.publicRP())
	oldRaw, _ := before.Extra("id_token").(string)
	oldKid := kidOf(t, oldRaw)

	if err := e.p.RotateKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := e.login(u, e.publicRP())
	newRaw, _ := after.Extra("id_token").(string)
	newKid := kidOf(t, newRaw)
	if newKid == oldKid {
		t.Fatalf("after rotation the ID token still has kid %s", oldKid)
	}
	if kidOf(t, after.AccessToken) != newKid {
		t.Error("the access token is not signed with the new key")
	}
	// A fresh relying party (no cached JWKS) verifies both.
	rp, err := gooidc.NewProvider(e.ctx, e.p.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{"old": oldRaw, "new": newRaw} {
		if _, err := rp.Verifier(&gooidc.Config{ClientID: publicClient}).Verify(e.ctx, raw); err != nil {
			t.Errorf("the %s ID token does not verify after rotation: %v", name, err)
		}
	}
	if kids := e.jwksKids(); !contains(kids, oldKid) || !contains(kids, newKid) {
		t.Errorf("JWKS %v: want the old key %s and the new %s", kids, oldKid, newKid)
	}
	// Past the old key's last token (1 minute), plus the replicas' reload margin: gone.
	skew.Store(int64(3 * time.Minute))
	if kids := e.jwksKids(); contains(kids, oldKid) || !contains(kids, newKid) {
		t.Errorf("JWKS %v three minutes on: want the new key %s only, not %s", kids, newKid, oldKid)
	}
}

// TestRotationByManyReplicasAtOnce: replicas whose key is due rotate at the same moment; one
// script decides, so they all sign with one new key.
func TestRotationByManyReplicasAtOnce(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	var replicas []*env
	for range 4 {
		replicas = append(replicas, newEnv(t, func(o *oidc.Options) { o.Now = now; o.KeyRotation = time.Hour }))
	}
	u := replicas[0].newUser()
	replicas[0].login(u, replicas[0].publicRP())
	skew.Store(int64(2 * time.Hour)) // every replica's current key is now due
	kids := make([]string, len(replicas))
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := r.login(u, r.publicRP())
			raw, _ := tok.Extra("id_token").(string)
			kids[i] = kidOf(t, raw)
		}()
	}
	wg.Wait()
	for i, k := range kids {
		if k != kids[0] {
			t.Errorf("replica %d signs with %s, replica 0 with %s", i, k, kids[0])
		}
	}
}

// TestSigningKeysAreSealed: Redis holds the private keys only sealed, bound to their kid; the
// API answers (JWKS) hold no private part.
func TestSigningKeysAreSealed(t *testing.T) {
	e := newEnv(t, nil)
	e.login(e.newUser(), e.publicRP())
	all, err := rdb.HGetAll(context.Background(), "keygate:{oidc}:signing-keys").Result()
	if err != nil || len(all) == 0 {
		t.Fatalf("signing keys in Redis: %v, %v", all, err)
	}
	for kid, data := range all {
		var s struct{ Sealed string }
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s.Sealed, "sealed.v1.") || strings.Contains(data, "PRIVATE KEY") {
			t.Errorf("key %s is not sealed: %.60s...", kid, data)
		}
		der, err := box.Open(s.Sealed, "oidc-signing-key/"+kid)
		if err != nil {
			t.Fatalf("key %s does not open for its own kid: %v", kid, err)
		}
		if k, err := x509.ParsePKCS8PrivateKey(der); err != nil || k.(*rsa.PrivateKey).N.BitLen() < 2048 {
			t.Errorf("key %s: %v", kid, err)
		}
		if _, err := box.Open(s.Sealed, "oidc-signing-key/another"); err == nil {
			t.Errorf("key %s opens for another kid", kid)
		}
	}
	// A replica with another encryption key cannot open them: it says so, and never shows
	// what it could not open.
	other, _ := sealed.Parse(sealed.Generate())
	e2 := newEnv(t, func(o *oidc.Options) { o.Box = other })
	resp, err := e2.http.Get(e2.srv.URL + "/oidc/keys")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || strings.Contains(string(body), "sealed.v1") {
		t.Errorf("JWKS with the wrong encryption key: %d %s", resp.StatusCode, body)
	}
}
