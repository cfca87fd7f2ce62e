// Command testidp is an external OpenID Connect identity provider for keygate's single sign-on
// tests: zitadel/oidc's example provider (its op package, in-memory storage and login form),
// served over TLS, whose users carry a groups claim that a small admin endpoint changes while it
// runs, and whose refresh tokens that endpoint can revoke. It is a test program: the admin
// endpoint has no authentication, so it must listen on loopback only.
//
//	testidp --address 127.0.0.1:PORT --cert-file idp.crt --key-file idp.key \
//	        --users-file users.json --client-id keygate --redirect-uri https://edge/auth/idp/callback
//	        (client secret in $TESTIDP_CLIENT_SECRET)
//
//	POST /admin/groups?user=<id>   body: ["dev","ops"]   the user's groups from now on
//	POST /admin/revoke?user=<id>                         refuse the user's refresh tokens (invalid_grant)
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testidp:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("address", "127.0.0.1:0", "host:port to serve HTTPS on (loopback only)")
	certFile := flag.String("cert-file", "", "serving certificate (PEM)")
	keyFile := flag.String("key-file", "", "key of --cert-file")
	usersFile := flag.String("users-file", "", "users as zitadel's example storage reads them: {id: {ID, Username, Password, Email, EmailVerified}}")
	clientID := flag.String("client-id", "keygate", "the one client's id (its secret: $TESTIDP_CLIENT_SECRET)")
	redirect := flag.String("redirect-uri", "", "comma-separated redirect URIs of the client")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || (host != "127.0.0.1" && host != "localhost" && host != "::1") {
		return fmt.Errorf("--address %q: want a loopback host:port (the admin endpoint has no authentication)", *addr)
	}
	secret := os.Getenv("TESTIDP_CLIENT_SECRET")
	if secret == "" || *certFile == "" || *keyFile == "" || *usersFile == "" || *redirect == "" {
		return errors.New("--cert-file, --key-file, --users-file, --redirect-uri and $TESTIDP_CLIENT_SECRET are required")
	}
	people, err := storage.StoreFromFile(*usersFile)
	if err != nil {
		return err
	}
	storage.RegisterClients(storage.WebClient(*clientID, secret, strings.Split(*redirect, ",")...))
	s := newStore(storage.NewStorage(people))
	issuer := "https://" + *addr
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	router := exampleop.SetupServer(issuer, s, log, false)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/groups", s.setGroups)
	mux.HandleFunc("POST /admin/revoke", s.revoke)
	mux.Handle("/", router)
	log.Info("serving", "issuer", issuer)
	return http.ListenAndServeTLS(*addr, *certFile, *keyFile, mux)
}

func (s *store) setGroups(w http.ResponseWriter, r *http.Request) {
	var groups []string
	if err := json.NewDecoder(r.Body).Decode(&groups); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.groups[r.URL.Query().Get("user")] = groups
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *store) revoke(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.revoked[r.URL.Query().Get("user")] = true
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
