package ops

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// openPath is the one endpoint a token does not guard: probes of a
// liveness checker carry no credentials.
const openPath = "/healthz"

// challenge is the WWW-Authenticate header of a 401 (RFC 6750): it tells a
// client, and a person reading curl -v, which credentials are wanted.
const challenge = `Bearer realm="sluice"`

// requireToken guards next with a bearer token. A request without the
// right token gets 401 with a Bearer challenge and an empty body, whatever
// path it asked for, so an unauthenticated caller learns nothing, not
// even which paths exist. ConfigFrom refuses a token that is set but
// empty; "" here means no token was configured.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	// Comparing digests keeps the comparison's time independent of the
	// token's length as well as its content.
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == openPath {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := bearer(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer extracts the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110).
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}
