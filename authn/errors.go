package authn

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// The two rejections the middleware answers with, in RivetKit's error
// shape: a JSON body on HTTP, an accepted WebSocket closed with 1011 and
// reason "auth.unauthorized" or "auth.forbidden", which the RivetKit client
// surfaces as an ActorError (a refused handshake would be a bare 1006).
// metadata.reason says why (Reason); the credential is never echoed.
//
// Every sentinel below unwraps to one of them, so errors.Is(err,
// ErrUnauthorized) tells a 401 from a 403.
var (
	ErrUnauthorized = &rivet.Error{Status: http.StatusUnauthorized, Group: "auth", Code: "unauthorized", Message: "Missing or invalid credential."}
	ErrForbidden    = &rivet.Error{Status: http.StatusForbidden, Group: "auth", Code: "forbidden", Message: "Access denied."}
)

// reasonError is a sentinel with the short, client-safe reason that goes
// into metadata.reason and the Outcome.
type reasonError struct {
	reason string
	msg    string
	parent error
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.parent }

func sentinel(parent error, reason, msg string) error {
	return &reasonError{reason: reason, msg: msg, parent: parent}
}

// Why a request is unauthorized (401). Reasons in parentheses.
var (
	// ErrNoCredential: no configured source carries a credential (missing).
	ErrNoCredential = sentinel(ErrUnauthorized, "missing", "no credential")
	// ErrTokenMalformed: the credential cannot be parsed, or a source is
	// ambiguous (two Authorization headers, two auth cookies) (malformed).
	ErrTokenMalformed = sentinel(ErrUnauthorized, "malformed", "malformed credential")
	// ErrTokenInvalid: the token does not verify (invalid); its more
	// specific causes below unwrap to it.
	ErrTokenInvalid = sentinel(ErrUnauthorized, "invalid", "invalid token")
	// ErrAlgorithmNotAllowed: alg is not in the issuer's allow-list,
	// including "none" (algorithm_not_allowed).
	ErrAlgorithmNotAllowed = sentinel(ErrTokenInvalid, "algorithm_not_allowed", "token algorithm not allowed")
	// ErrUnknownKey: no key of the issuer fits the token's kid and alg
	// (unknown_key).
	ErrUnknownKey = sentinel(ErrTokenInvalid, "unknown_key", "no verification key for token")
	// ErrUnknownIssuer: the iss claim names no configured issuer
	// (unknown_issuer).
	ErrUnknownIssuer = sentinel(ErrTokenInvalid, "unknown_issuer", "unknown token issuer")
	// ErrInvalidAudience: aud contains none of the issuer's audiences
	// (invalid_audience).
	ErrInvalidAudience = sentinel(ErrTokenInvalid, "invalid_audience", "token audience not accepted")
	// ErrMissingClaim: a required claim (exp, iat with max_age, or one of
	// required_claims) is absent (missing_claim).
	ErrMissingClaim = sentinel(ErrTokenInvalid, "missing_claim", "token lacks a required claim")
	// ErrTokenExpired: exp is past, beyond the leeway (expired).
	ErrTokenExpired = sentinel(ErrUnauthorized, "expired", "token expired")
	// ErrTokenTooOld: iat is older than the issuer's max_age (too_old).
	ErrTokenTooOld = sentinel(ErrTokenExpired, "too_old", "token older than max_age")
	// ErrTokenNotYetValid: nbf or iat is in the future, beyond the leeway
	// (not_yet_valid).
	ErrTokenNotYetValid = sentinel(ErrUnauthorized, "not_yet_valid", "token not valid yet")
	// ErrAPIKeyInvalid: the API key matches no configured key
	// (invalid_api_key).
	ErrAPIKeyInvalid = sentinel(ErrUnauthorized, "invalid_api_key", "unknown API key")
	// ErrAPIKeyExpired: the API key is past its expiry (expired).
	ErrAPIKeyExpired = sentinel(ErrUnauthorized, "expired", "API key expired")
	// ErrAPIKeyRevoked: Revalidate found the identity's API key removed or
	// replaced (revoked).
	ErrAPIKeyRevoked = sentinel(ErrUnauthorized, "revoked", "API key revoked")
)

// Why a valid caller is forbidden (403). Reasons in parentheses.
var (
	// ErrDenied: the matching rule denies everyone (denied).
	ErrDenied = sentinel(ErrForbidden, "denied", "denied by rule")
	// ErrMethodNotAllowed: the rule does not accept this kind of
	// credential, or this issuer (method_not_allowed).
	ErrMethodNotAllowed = sentinel(ErrForbidden, "method_not_allowed", "credential kind or issuer not accepted here")
	// ErrClaimMismatch: a claim the rule requires is missing or has
	// another value (claim_mismatch).
	ErrClaimMismatch = sentinel(ErrForbidden, "claim_mismatch", "required claim value missing")
	// ErrScopeMissing: the caller lacks a scope the rule or the request
	// needs (missing_scope).
	ErrScopeMissing = sentinel(ErrForbidden, "missing_scope", "missing scope")
	// ErrKeyBinding: the actor key does not belong to the caller
	// (key_binding).
	ErrKeyBinding = sentinel(ErrForbidden, "key_binding", "actor key not bound to caller")
)

// Reason returns the short, client-safe reason for err (as sent in
// metadata.reason): "missing", "expired", "key_binding", ... It never
// contains the credential. "" for nil.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var re *reasonError
	if errors.As(err, &re) {
		return re.reason
	}
	if errors.Is(err, ErrForbidden) {
		return "forbidden"
	}
	return "invalid"
}

// wrap returns kind (one of the sentinels) with cause attached for the
// log. cause must never hold a credential.
func wrap(kind, cause error) error {
	if cause == nil {
		return kind
	}
	return fmt.Errorf("%w: %w", kind, cause)
}

// rejection is the error the client sees for err: ErrUnauthorized or
// ErrForbidden with metadata.reason, err attached as the (logged) cause.
func rejection(err error) *rivet.Error {
	base := ErrUnauthorized
	if errors.Is(err, ErrForbidden) {
		base = ErrForbidden
	}
	return base.Wrap(err).With("reason", Reason(err))
}
