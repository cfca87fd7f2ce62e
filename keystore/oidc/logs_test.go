package oidc_test

import (
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate-dev/keygate/internal/logbuf"
	"github.com/keygate-dev/keygate/keystore/oidc"
)

// TestSecretsStayOutOfLogs: codes, tokens, verifiers and client secrets appear in no log line,
// at debug level, neither the provider's nor op's (which logs to slog's default logger).
func TestSecretsStayOutOfLogs(t *testing.T) {
	var buf logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(log)
	t.Cleanup(func() { slog.SetDefault(prev) })
	e := newEnv(t, func(o *oidc.Options) { o.Log = log })
	u := e.newUser("dev")
	web := e.confidentialRP()
	tok := e.login(u, web)
	code, verifier := e.code(u, web)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {web.redirect}, "code_verifier": {verifier}}
	e.postToken(form, web.client, "wrong-"+clientSecret)        // refused: logged
	e.postToken(form, web.client, clientSecret)                 // redeemed
	e.postToken(form, web.client, clientSecret)                 // reused: revoked, logged
	if _, err := e.refresh(web, tok.RefreshToken); err != nil { // rotated
		t.Fatal(err)
	}
	e.refresh(web, tok.RefreshToken) // refused: logged
	idToken, _ := tok.Extra("id_token").(string)
	logs := buf.String()
	if !strings.Contains(logs, "refresh refused") && !strings.Contains(logs, "request error") {
		t.Fatalf("nothing was logged; the test proves nothing:\n%s", logs)
	}
	for name, secret := range map[string]string{
		"refresh token": tok.RefreshToken, "access token": tok.AccessToken, "ID token": idToken,
		"code": code, "verifier": verifier, "client secret": clientSecret, "wrong secret": "wrong-" + clientSecret,
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the %s is in the logs", name)
		}
	}
}
