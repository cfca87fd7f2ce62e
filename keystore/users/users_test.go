package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/keygate-dev/keygate/internal/redisserver"
)

var (
	rdb   redis.UniversalClient
	users *Store
)

// TestMain runs the package against one Redis, or against a Redis Cluster with
// KEYGATE_TEST_REDIS=cluster (the users' records and their change stream in different slots).
func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/users", redisserver.Options{}, func(srv *redisserver.Server) {
		rdb = redis.NewUniversalClient(srv.UniversalOptions())
		// The lowest cost keeps the tests fast; hashing is the same code at any cost.
		users = New(rdb, Options{Cost: bcrypt.MinCost})
	})
}

var runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

var uniqueN atomic.Int64

// unique gives a name no other test, nor another run against the same Redis, uses.
func unique(name string) string {
	return fmt.Sprintf("%s-%s-%d", name, runID, uniqueN.Add(1))
}

const password = "correct horse battery staple"

func TestCreateGetListDelete(t *testing.T) {
	ctx := context.Background()
	a, b := unique("crud-b"), unique("crud-a") // created out of order, listed in order
	want := User{Name: a, DisplayName: "Alice Example", Email: "alice@example.com", Groups: []string{"dev", "qa"}, Teams: []string{"platform"}}
	if err := users.Create(ctx, want, password); err != nil {
		t.Fatal(err)
	}
	if err := users.Create(ctx, User{Name: b}, password); err != nil {
		t.Fatal(err)
	}
	got, err := users.Get(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreationTimestamp.IsZero() || got.CreationTimestamp.Location() != time.UTC || time.Since(got.CreationTimestamp) > time.Minute {
		t.Errorf("creationTimestamp = %v, want about now, in UTC", got.CreationTimestamp)
	}
	if got.UID == "" {
		t.Errorf("uid is empty, want one set by Create")
	}
	want.CreationTimestamp, want.UID, want.Revision = got.CreationTimestamp, got.UID, 1
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}

	list, err := users.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range list {
		if u.Name == a || u.Name == b {
			names = append(names, u.Name)
		}
	}
	if strings.Join(names, ",") != b+","+a {
		t.Errorf("List has %v, want [%s %s] in that order", names, b, a)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].Name >= list[i].Name {
			t.Errorf("List not sorted: %s before %s", list[i-1].Name, list[i].Name)
		}
	}

	if err := users.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Get(ctx, a); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := users.Delete(ctx, a); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if _, err := users.Authenticate(ctx, a, password); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("Authenticate after Delete: %v, want ErrInvalidCredentials", err)
	}
}

func TestCreateKeepsGivenCreationTimestamp(t *testing.T) {
	ctx := context.Background()
	past := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	name := unique("backdated")
	if err := users.Create(ctx, User{Name: name, CreationTimestamp: past}, password); err != nil {
		t.Fatal(err)
	}
	got, err := users.Get(ctx, name)
	if err != nil || !got.CreationTimestamp.Equal(past) {
		t.Errorf("Get = %+v, %v; want creationTimestamp %v", got, err, past)
	}
}

func TestCreateDuplicate(t *testing.T) {
	ctx := context.Background()
	name := unique("dup")
	if err := users.Create(ctx, User{Name: name, DisplayName: "first"}, password); err != nil {
		t.Fatal(err)
	}
	err := users.Create(ctx, User{Name: name, DisplayName: "second"}, "another password")
	if !errors.Is(err, ErrAlreadyExists) || !strings.Contains(err.Error(), name) {
		t.Errorf("second Create: %v, want ErrAlreadyExists naming %s", err, name)
	}
	// The loser changed nothing: neither the user nor its password.
	if u, _ := users.Get(ctx, name); u == nil || u.DisplayName != "first" {
		t.Errorf("after a refused duplicate the user is %+v", u)
	}
	if _, err := users.Authenticate(ctx, name, password); err != nil {
		t.Errorf("the first password no longer works: %v", err)
	}
}

func TestConcurrentCreatesOfOneName(t *testing.T) {
	name := unique("race")
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			errs[i] = users.Create(context.Background(), User{Name: name, DisplayName: strconv.Itoa(i)}, password)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrAlreadyExists):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d creates of one name succeeded, want exactly 1", won)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	alice, dis := unique("alice"), unique("disabled")
	if err := users.Create(ctx, User{Name: alice, Groups: []string{"dev"}, Teams: []string{"platform"}}, password); err != nil {
		t.Fatal(err)
	}
	if err := users.Create(ctx, User{Name: dis, Disabled: true}, password); err != nil {
		t.Fatal(err)
	}
	u, err := users.Authenticate(ctx, alice, password)
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	if u.Name != alice || strings.Join(u.Groups, ",") != "dev" || strings.Join(u.Teams, ",") != "platform" {
		t.Errorf("Authenticate = %+v", u)
	}

	long72 := strings.Repeat("x", MaxPasswordBytes)
	long := unique("long")
	if err := users.Create(ctx, User{Name: long}, long72); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Authenticate(ctx, long, long72); err != nil {
		t.Errorf("a 72-byte password: %v", err)
	}

	for name, tc := range map[string]struct{ user, password string }{
		"wrong password":  {alice, password + "!"},
		"empty password":  {alice, ""},
		"unknown user":    {unique("nobody"), password},
		"disabled user":   {dis, password},
		"invalid name":    {"Not A Name", password},
		"empty name":      {"", password},
		"other case":      {strings.ToUpper(alice), password},
		"beyond 72 bytes": {long, long72 + "y"}, // bcrypt alone would accept it
	} {
		t.Run(name, func(t *testing.T) {
			u, err := users.Authenticate(ctx, tc.user, tc.password)
			// The same error value for every refusal: nothing to tell the cases apart by.
			if err != ErrInvalidCredentials || u != nil {
				t.Errorf("Authenticate = %v, %v; want exactly ErrInvalidCredentials", u, err)
			}
		})
	}
}

// TestAuthenticateComparesEvenWithoutUser checks the timing defence without measuring time:
// every refusal, and an unknown user above all, goes through one bcrypt comparison against a
// hash of the store's own cost.
func TestAuthenticateComparesEvenWithoutUser(t *testing.T) {
	ctx := context.Background()
	s := New(rdb, Options{Cost: bcrypt.MinCost + 1})
	var hashes [][]byte
	s.compare = func(hash, pw []byte) error {
		hashes = append(hashes, hash)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	known, dis := unique("known"), unique("off")
	if err := s.Create(ctx, User{Name: known}, password); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, User{Name: dis, Disabled: true}, password); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, user string }{
		{"unknown user", unique("ghost")},
		{"invalid name", "NoSuchName!"},
		{"known user", known},
		{"disabled user", dis},
	} {
		hashes = nil
		_, err := s.Authenticate(ctx, tc.user, password)
		if len(hashes) != 1 {
			t.Fatalf("%s: %d comparisons, want 1", tc.name, len(hashes))
		}
		if cost, err := bcrypt.Cost(hashes[0]); err != nil || cost != bcrypt.MinCost+1 {
			t.Errorf("%s: compared against a hash of cost %d (%v), want the store's cost %d", tc.name, cost, err, bcrypt.MinCost+1)
		}
		if (err == nil) != (tc.name == "known user") {
			t.Errorf("%s: Authenticate error %v", tc.name, err)
		}
	}
	// The dummy hash is one fixed hash, not made anew (that would cost a second hash's time).
	hashes = nil
	s.Authenticate(ctx, unique("ghost"), password)
	s.Authenticate(ctx, unique("ghost"), "other password")
	if len(hashes) != 2 || string(hashes[0]) != string(hashes[1]) {
		t.Errorf("unknown users were compared against different hashes")
	}
}

func TestSetPassword(t *testing.T) {
	ctx := context.Background()
	name := unique("rotate")
	if err := users.Create(ctx, User{Name: name, Groups: []string{"dev"}}, password); err != nil {
		t.Fatal(err)
	}
	if err := users.SetPassword(ctx, name, "a new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Authenticate(ctx, name, password); err != ErrInvalidCredentials {
		t.Errorf("old password after SetPassword: %v, want ErrInvalidCredentials", err)
	}
	u, err := users.Authenticate(ctx, name, "a new password")
	if err != nil || strings.Join(u.Groups, ",") != "dev" {
		t.Errorf("new password: %+v, %v; want the user with its groups kept", u, err)
	}
	if err := users.SetPassword(ctx, name, "short"); !errors.Is(err, ErrInvalid) {
		t.Errorf("short password: %v, want ErrInvalid", err)
	}
	if err := users.SetPassword(ctx, unique("nobody"), "a new password"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown user: %v, want ErrNotFound", err)
	}
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	name := unique("upd")
	if err := users.Create(ctx, User{Name: name, Groups: []string{"dev"}}, password); err != nil {
		t.Fatal(err)
	}
	got, err := users.Update(ctx, name, func(u *User) error {
		u.Groups = append(u.Groups, "ops")
		u.Teams = []string{"platform"}
		u.Disabled = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := users.Get(ctx, name)
	if diff := cmp.Diff(got, stored); diff != "" || strings.Join(stored.Groups, ",") != "dev,ops" || !stored.Disabled {
		t.Errorf("Update returned %+v, stored %+v", got, stored)
	}
	if _, err := users.Authenticate(ctx, name, password); err != ErrInvalidCredentials {
		t.Errorf("disabled by Update, Authenticate: %v", err)
	}
	// The password survives an update.
	users.Update(ctx, name, func(u *User) error { u.Disabled = false; return nil })
	if _, err := users.Authenticate(ctx, name, password); err != nil {
		t.Errorf("re-enabled, Authenticate: %v", err)
	}

	for desc, tc := range map[string]struct {
		mutate  func(u *User) error
		want    error
		message string
	}{
		"rename":       {func(u *User) error { u.Name = "other"; return nil }, ErrInvalid, "name: cannot be changed"},
		"backdate":     {func(u *User) error { u.CreationTimestamp = time.Time{}; return nil }, ErrInvalid, "creationTimestamp"},
		"bad email":    {func(u *User) error { u.Email = "nope"; return nil }, ErrInvalid, "email"},
		"mutate fails": {func(u *User) error { return errBoom }, errBoom, "boom"},
	} {
		t.Run(desc, func(t *testing.T) {
			_, err := users.Update(ctx, name, tc.mutate)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Update: %v, want %v mentioning %q", err, tc.want, tc.message)
			}
			if u, _ := users.Get(ctx, name); u == nil || u.Email != "" || u.Name != name {
				t.Errorf("a refused update changed the user: %+v", u)
			}
		})
	}
	if _, err := users.Update(ctx, unique("nobody"), func(*User) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown user: %v, want ErrNotFound", err)
	}
}

var errBoom = errors.New("boom")

// Concurrent updates of one user each keep their change: none overwrites another's.
func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	name := unique("many")
	if err := users.Create(ctx, User{Name: name}, password); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			if _, err := users.Update(ctx, name, func(u *User) error {
				u.Groups = append(u.Groups, "g"+strconv.Itoa(i))
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	u, _ := users.Get(ctx, name)
	if u == nil || len(u.Groups) != 5 {
		t.Errorf("after 5 concurrent updates the groups are %v", u)
	}
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	for desc, tc := range map[string]struct {
		user     User
		password string
		message  string
	}{
		"no name":           {User{}, password, "name: required"},
		"uppercase name":    {User{Name: "Alice"}, password, `name "Alice"`},
		"name with a dot":   {User{Name: "a.b"}, password, `name "a.b"`},
		"name with braces":  {User{Name: "{x}"}, password, `name "{x}"`},
		"long name":         {User{Name: strings.Repeat("a", 64)}, password, "name"},
		"email":             {User{Name: "e", Email: "not-an-email"}, password, `email "not-an-email"`},
		"email with name":   {User{Name: "e", Email: "Alice <a@example.com>"}, password, "email"},
		"empty group":       {User{Name: "g", Groups: []string{"dev", ""}}, password, "groups[1]"},
		"spaced group":      {User{Name: "g", Groups: []string{" dev"}}, password, "groups[0]"},
		"duplicate group":   {User{Name: "g", Groups: []string{"dev", "dev"}}, password, `groups[1] "dev": listed twice`},
		"system group":      {User{Name: "g", Groups: []string{"system:masters"}}, password, `groups[0] "system:masters"`},
		"loft group":        {User{Name: "g", Groups: []string{"dev", "loft:team:admins"}}, password, `groups[1] "loft:team:admins"`},
		"bad team":          {User{Name: "t", Teams: []string{"Platform Team"}}, password, `teams[0] "Platform Team"`},
		"control in name":   {User{Name: "d", DisplayName: "a\nb"}, password, "displayName"},
		"short password":    {User{Name: "p"}, "1234567", "password: must have at least 8 characters (it has 7)"},
		"short in runes":    {User{Name: "p"}, "äöüäöüä", "at least 8 characters"},
		"long password":     {User{Name: "p"}, strings.Repeat("x", 73), "password: must have at most 72 bytes (it has 73)"},
		"several at once":   {User{Name: "X", Email: "x"}, password, `name "X"`},
		"several, 2nd half": {User{Name: "X", Email: "x"}, password, `email "x"`},
	} {
		t.Run(desc, func(t *testing.T) {
			err := users.Create(ctx, tc.user, tc.password)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Create: %v; want ErrInvalid mentioning %q", err, tc.message)
			}
		})
	}
	// A refused create wrote nothing.
	if _, err := users.Get(ctx, "p"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused user was stored: %v", err)
	}
	// Eight characters, multi-byte ones included, are enough.
	if err := ValidatePassword("äöüäöüäö"); err != nil {
		t.Errorf("8 characters: %v", err)
	}
}

func TestBadCost(t *testing.T) {
	s := New(rdb, Options{Cost: 40})
	if err := s.Create(context.Background(), User{Name: unique("cost")}, password); err == nil || !strings.Contains(err.Error(), "bcrypt cost 40") {
		t.Errorf("Create with cost 40: %v", err)
	}
	if _, err := s.Authenticate(context.Background(), "x", password); err == nil || errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("Authenticate with cost 40: %v, want a configuration error", err)
	}
}

func TestDefaultCost(t *testing.T) {
	if s := New(rdb, Options{}); s.cost != DefaultCost || s.costErr != nil {
		t.Errorf("cost %d (%v), want %d", s.cost, s.costErr, DefaultCost)
	}
}

// TestNoPlainPasswordInRedis looks at every value in Redis, not only this package's keys.
func TestNoPlainPasswordInRedis(t *testing.T) {
	ctx := context.Background()
	secret := "plain-" + unique("secret")
	name := unique("secretive")
	if err := users.Create(ctx, User{Name: name}, secret); err != nil {
		t.Fatal(err)
	}
	rotated := "rotated-" + unique("secret")
	if err := users.SetPassword(ctx, name, rotated); err != nil {
		t.Fatal(err)
	}
	all, err := redisserver.Keys(ctx, rdb, "*") // every master's, on a Cluster
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, k := range all {
		if k == eventsKey {
			// The change stream: entries hold a type and a user name, checked below.
			continue
		}
		if typ := rdb.Type(ctx, k).Val(); typ != "string" {
			t.Errorf("%s is a %s; this test reads strings only", k, typ)
			continue
		}
		v := rdb.Get(ctx, k).Val()
		if strings.Contains(v, secret) || strings.Contains(v, rotated) || strings.Contains(k, secret) {
			t.Errorf("%s holds a plain password", k)
		}
		if k == userKey(name) {
			seen++
			var rec record
			if err := json.Unmarshal([]byte(v), &rec); err != nil || bcrypt.CompareHashAndPassword([]byte(rec.PasswordHash), []byte(rotated)) != nil {
				t.Errorf("%s does not hold a bcrypt hash of the password: %s", k, v)
			}
		}
	}
	if seen != 1 {
		t.Errorf("the user's key %s was seen %d times", userKey(name), seen)
	}
	entries, err := rdb.XRange(ctx, eventsKey, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range entries {
		if v := fmt.Sprint(m.Values); strings.Contains(v, secret) || strings.Contains(v, rotated) || strings.Contains(v, "$2a$") {
			t.Errorf("change entry %s holds a password or hash: %s", m.ID, v)
		}
	}
}

// TestUserJSONHasNoHash: a User is what callers print and serve, so its encoding must not be
// able to carry a hash.
func TestUserJSONHasNoHash(t *testing.T) {
	ctx := context.Background()
	name := unique("json")
	if err := users.Create(ctx, User{Name: name}, password); err != nil {
		t.Fatal(err)
	}
	u, _ := users.Get(ctx, name)
	data, _ := json.Marshal(u)
	if strings.Contains(string(data), "$2a$") || strings.Contains(strings.ToLower(string(data)), "password") {
		t.Errorf("User JSON: %s", data)
	}
	if s := fmt.Sprintf("%+v", u); strings.Contains(s, "$2a$") {
		t.Errorf("User printed: %s", s)
	}
}

func TestNameOf(t *testing.T) {
	for key, want := range map[string]string{
		"keygate:user:{alice}":       "alice",
		"keygate:user:{alice}:extra": "",
		"keygate:user:alice":         "",
		"keygate:user:{a}{b}":        "",
	} {
		got, ok := nameOf(key)
		if got != want || ok != (want != "") {
			t.Errorf("nameOf(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
}
