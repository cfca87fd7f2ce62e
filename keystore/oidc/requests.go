package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Redis keys of the provider; the hash tag keeps them in one slot, as the rest of keystore.
const (
	prefix     = "keygate:{oidc}:"
	authReqKey = prefix + "authreq:" // + id: JSON authRequest, living AuthRequestTTL
	codeKey    = prefix + "code:"    // + hex SHA-256 of the code: the request id
	tokenKey   = prefix + "token:"   // + access token id (jti): JSON grant, living AccessTokenTTL
)

// errUnknown is a request, code or token that is not (or no longer) there.
var errUnknown = errors.New("unknown or expired")

// errCodeReused is a code presented after it was exchanged.
var errCodeReused = errors.New("authorization code already used")

// grant is what a user allowed a client: the tokens issued from it say who and what.
type grant struct {
	ClientID    string   `json:"clientId"`
	RedirectURI string   `json:"redirectUri"`
	Scopes      []string `json:"scopes"`
	Nonce       string   `json:"nonce,omitempty"`
	// User is spec.user of the session's Login key; OwnerUID its owner-UID annotation.
	User     string    `json:"user,omitempty"`
	OwnerUID string    `json:"ownerUid,omitempty"`
	Parent   string    `json:"parent,omitempty"` // the session's Login key name
	AuthTime time.Time `json:"authTime"`
}

// authRequest is a pending (then completed, then redeemed) authorization request.
type authRequest struct {
	ID                  string                   `json:"id"`
	Grant               grant                    `json:"grant"`
	State               string                   `json:"state,omitempty"`
	ResponseType        oidc.ResponseType        `json:"responseType"`
	ResponseMode        oidc.ResponseMode        `json:"responseMode,omitempty"`
	CodeChallenge       string                   `json:"codeChallenge,omitempty"`
	CodeChallengeMethod oidc.CodeChallengeMethod `json:"codeChallengeMethod,omitempty"`
	Created             time.Time                `json:"created"`
	Completed           bool                     `json:"completed,omitempty"`
	CodeIssued          time.Time                `json:"codeIssued,omitzero"`
	Redeemed            bool                     `json:"redeemed,omitempty"`
	// What was issued from the code, revoked when the code is presented again (RFC 6749
	// §4.1.2).
	RefreshKey   string   `json:"refreshKey,omitempty"`
	AccessTokens []string `json:"accessTokens,omitempty"`
	Reused       bool     `json:"reused,omitempty"`

	person *person // resolved at token time, for the claims of the same response
}

func (a *authRequest) GetID() string         { return a.ID }
func (a *authRequest) GetACR() string        { return "" }
func (a *authRequest) GetAMR() []string      { return nil }
func (a *authRequest) GetAudience() []string { return []string{a.Grant.ClientID} }
func (a *authRequest) GetAuthTime() time.Time {
	return a.Grant.AuthTime
}
func (a *authRequest) GetClientID() string { return a.Grant.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: a.CodeChallengeMethod}
}
func (a *authRequest) GetNonce() string                   { return a.Grant.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.Grant.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.Grant.Scopes }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) GetSubject() string                 { return a.Grant.User }
func (a *authRequest) Done() bool                         { return a.Completed }

// requests keeps auth requests and codes in Redis.
type requests struct {
	rdb     redis.UniversalClient
	ttl     time.Duration // of a request waiting for its user
	codeTTL time.Duration // of a code
	keepFor time.Duration // a redeemed request, to notice a code presented again
	now     func() time.Time
}

func (s *requests) create(ctx context.Context, a *authRequest) error {
	a.ID = randomID()
	a.Created = s.now()
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.rdb.Set(ctx, authReqKey+a.ID, data, s.ttl).Err()
}

func (s *requests) get(ctx context.Context, id string) (*authRequest, error) {
	data, err := s.rdb.Get(ctx, authReqKey+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errUnknown
	}
	if err != nil {
		return nil, err
	}
	var a authRequest
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// maxUpdateAttempts bounds the retries of an optimistic update of one request.
const maxUpdateAttempts = 5

// update changes request id with change in an optimistic transaction, keeping it for ttl
// (0: its current expiry). change's error aborts, and is returned.
func (s *requests) update(ctx context.Context, id string, ttl time.Duration, change func(a *authRequest) error) (*authRequest, error) {
	key := authReqKey + id
	var out *authRequest
	txf := func(tx *redis.Tx) error {
		a, err := s.get(ctx, id)
		if err != nil {
			return err
		}
		if err := change(a); err != nil {
			return err
		}
		data, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if ttl > 0 {
				p.Set(ctx, key, data, ttl)
			} else {
				p.SetArgs(ctx, key, data, redis.SetArgs{KeepTTL: true})
			}
			return nil
		})
		out = a
		return err
	}
	for range maxUpdateAttempts {
		err := s.rdb.Watch(ctx, txf, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return out, err
	}
	return nil, fmt.Errorf("auth request %s kept changing; try again", id)
}

// saveCode records the code issued for request id: one code per request.
func (s *requests) saveCode(ctx context.Context, id, code string) error {
	_, err := s.update(ctx, id, s.keepFor, func(a *authRequest) error {
		if !a.CodeIssued.IsZero() || !a.Completed {
			return errors.New("a code was already issued for this request, or it is not completed")
		}
		a.CodeIssued = s.now()
		return nil
	})
	if err != nil {
		return err
	}
	return s.rdb.Set(ctx, codeKey+digest(code), id, s.keepFor).Err()
}

// byCode returns the request a code was issued for. A code past its lifetime is unknown; a
// code already exchanged is errCodeReused (with the request, whose tokens the caller revokes).
func (s *requests) byCode(ctx context.Context, code string) (*authRequest, error) {
	id, err := s.rdb.Get(ctx, codeKey+digest(code)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, errUnknown
	}
	if err != nil {
		return nil, err
	}
	a, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.Redeemed {
		return a, errCodeReused
	}
	if s.now().Sub(a.CodeIssued) > s.codeTTL {
		return nil, fmt.Errorf("authorization code expired: %w", errUnknown)
	}
	return a, nil
}

// redeem marks the request's code exchanged. Of two exchanges at once, one wins; the other
// gets errCodeReused.
func (s *requests) redeem(ctx context.Context, id string) error {
	_, err := s.update(ctx, id, s.keepFor, func(a *authRequest) error {
		if a.Redeemed {
			return errCodeReused
		}
		a.Redeemed = true
		return nil
	})
	return err
}

// randomID is 256 bits from crypto/rand, base64url: request IDs, codes and token IDs are
// guessed by nobody.
func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// digest is how a code is stored: whoever reads Redis cannot exchange it.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
