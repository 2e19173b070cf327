package authn

import (
	"context"
	"time"
)

// Identity is the verified caller of a request. The middleware stores one
// in the request context of every request it lets through (Method
// "anonymous" when a rule allowed the request without a credential); it is
// built only from verified credentials, never from request headers. Treat
// it, and Claims, as read-only.
type Identity struct {
	// Method is "jwt", "api_key" or "anonymous".
	Method string
	// Subject is the JWT's sub claim; empty for API keys.
	Subject string
	// Issuer is the JWT's iss claim.
	Issuer string
	// Claims are the JWT's verified claims; nil for API keys.
	Claims map[string]any
	// APIKeyID is the matching key's id for Method "api_key".
	APIKeyID string
	// Scopes are the API key's scopes, or the JWT's scope (space
	// separated) or scp claim.
	Scopes []string
	// ExpiresAt is when the credential stops being valid: the JWT's exp
	// (or iat + max_age if sooner) or the API key's expiry. Zero: never.
	ExpiresAt time.Time

	// issuerName is the config name of the JWT's issuer (Rule.Issuers,
	// Outcome.Issuer).
	issuerName string
	// keyHash is the API key's SHA-256, so Revalidate notices a key whose
	// id stayed but whose secret was replaced.
	keyHash [32]byte
}

// IssuerName returns the configured name of the issuer that verified a
// JWT identity (IssuerConfig.Name), or "".
func (id *Identity) IssuerName() string { return id.issuerName }

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the Identity stored by the middleware (or
// WithIdentity), or nil when there is none.
func IdentityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}
