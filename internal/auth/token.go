// Package auth is the kit's bearer-token check: the token every write
// needs, taken from the credential systemd passes the unit, and checked on
// the routes an app asks it for. The lifecycle reads the token at start and
// again at every reload; the app only wraps its write routes in Require.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"

	"example.com/daemon/internal/systemd"
)

// CredentialName is the credential that holds the token: the file
// $CREDENTIALS_DIRECTORY/api-token, put there by LoadCredential= in the
// unit (docs/hardening.md, "The API token").
const CredentialName = "api-token"

// Token is the bearer token writes must carry. Only its SHA-256 is kept:
// comparing two digests of the same length in constant time says nothing
// about the token, not even its length, to a client timing the answers.
type Token struct {
	creds  systemd.Credentials
	digest atomic.Pointer[[sha256.Size]byte] // nil: no credential, writes refused
	why    atomic.Pointer[string]            // why, when digest is nil
}

// NewToken returns the token kept in creds; nothing is read until Load.
func NewToken(creds systemd.Credentials) *Token {
	return &Token{creds: creds}
}

// Load reads the credential. Any error is returned for the caller to log,
// and changes nothing: before a token was read, writes stay refused (the
// error says how to provide one); after, the token read before stays, so a
// reload never opens or closes writes by accident, and a credential
// removed is revoked only by a restart.
func (t *Token) Load() (changed bool, err error) {
	secret, err := t.creds.Read(CredentialName)
	if err != nil {
		why := "writes are refused: " + err.Error()
		t.why.Store(&why)
		return false, err
	}
	d := sha256.Sum256([]byte(secret))
	old := t.digest.Swap(&d)
	return old == nil || *old != d, nil
}

// Loaded reports whether a token was read.
func (t *Token) Loaded() bool { return t.digest.Load() != nil }

// Require answers 401 with WWW-Authenticate: Bearer (RFC 6750) unless the
// request carries the token, and 503 with what to do when the daemon has
// none: a route that needs the token is never left open.
func (t *Token) Require(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := t.digest.Load()
		if want == nil {
			why := "writes are refused: the token was not read yet"
			if p := t.why.Load(); p != nil {
				why = *p
			}
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		// The scheme is case-insensitive (RFC 9110, 11.1); the token is not.
		scheme, given, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="daemon"`)
			http.Error(w, "this request needs Authorization: Bearer <the api-token credential>", http.StatusUnauthorized)
			return
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(given)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="daemon", error="invalid_token"`)
			http.Error(w, "wrong token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
