package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Options are New's dependencies.
type Options struct {
	// Logger receives key ids, subjects, issuer names and reasons, never a
	// credential. Rejections are logged at debug level. Nil: discard.
	Logger *slog.Logger

	// HTTPClient fetches JWKS. Nil: a client with its own clone of the
	// default transport, closed by Close. It is copied, never modified.
	HTTPClient *http.Client

	// Observe, when set, is called once per request the middleware decides
	// (not for preflights), with the request as it arrived, e.g. to count
	// outcomes or to hand the decision to the access log line of that
	// request. It must not block.
	Observe func(*http.Request, Outcome)

	// ObserveJWKS, when set, is called after every fetch of a JWKS issuer's
	// key set (at start and on every refresh). It must not block.
	ObserveJWKS func(JWKSFetch)
}

// Outcome is what the middleware decided for one request, for metrics and
// access logs. Every field but Subject is low-cardinality or an
// operator-chosen name; Subject is for logs, never a metric label.
type Outcome struct {
	// Result is "ok" (a valid credential), "anonymous" (allowed without
	// one), "unauthorized" (401) or "forbidden" (403).
	Result string
	// Reason is the rejection's Reason, or for "anonymous" why a credential
	// that was sent did not count; "" otherwise.
	Reason string
	// Issuer is the issuer's configured name for JWTs.
	Issuer string
	// APIKeyID is the API key's id.
	APIKeyID string
	// Subject is the verified JWT's sub claim, also on a 403 (the
	// credential was valid, the rules refused it); "" when no JWT was
	// verified.
	Subject string
	// Method is "jwt", "api_key", "anonymous", or "" when no credential was
	// verified.
	Method string
}

// Outcome.Result values.
const (
	ResultOK           = "ok"
	ResultAnonymous    = "anonymous"
	ResultUnauthorized = "unauthorized"
	ResultForbidden    = "forbidden"
)

// Authenticator verifies credentials and applies rules; Middleware puts it
// in the chain after route classification. Safe for concurrent use.
type Authenticator struct {
	log     *slog.Logger
	observe func(*http.Request, Outcome)
	now     func() time.Time

	sources       sourceConfig
	forward       bool
	closeOnExpiry bool
	leeway        time.Duration

	issuers []*issuer
	byIss   map[string]*issuer
	keys    *apiKeys // nil: no API keys
	rules   []rule
	// granted and anonymous are intent bits (intentBits) of the user rules,
	// for Precheck.
	granted, anonymous uint32

	verified verifiedCache // JWTs that verified (cache.go)

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	transport *http.Transport // ours to close, or nil
	closeOnce sync.Once
}

// New validates cfg, loads every key (reading key files, fetching each
// JWKS once, in parallel) and starts the background work: JWKS refreshes
// and the API keys file reload. Call Close to stop it.
func New(cfg Config, opts Options) (*Authenticator, error) {
	if err := cfg.Validate("auth"); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	client, transport := jwksClient(opts.HTTPClient)
	a := &Authenticator{
		log:     log,
		observe: opts.Observe,
		now:     time.Now,
		sources: sourceConfig{
			apiKeyHeader: cfg.APIKeyHeader,
			field:        cfg.ConnParamsField,
			cookie:       cfg.CookieName,
			query:        cfg.QueryParam,
		},
		forward:       cfg.ForwardCredentials,
		closeOnExpiry: cfg.CloseOnExpiry,
		leeway:        cfg.JWT.Leeway,
		byIss:         make(map[string]*issuer, len(cfg.JWT.Issuers)),
		cancel:        cancel,
		transport:     transport,
	}
	for _, s := range cfg.Credentials {
		src, _ := parseSource(s)
		a.sources.order = append(a.sources.order, src)
	}
	for i, r := range cfg.Rules {
		a.rules = append(a.rules, compileRule(fmt.Sprintf("rules[%d]", i), r))
	}
	a.granted, a.anonymous = intentBits(a.rules)
	for i, r := range BuiltinRules() {
		a.rules = append(a.rules, compileRule(fmt.Sprintf("builtin[%d]", i), r))
	}

	keys, err := newAPIKeys("auth.api_keys", cfg.APIKeys)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.keys = keys

	// Issuers load in parallel: each may wait up to its jwks_timeout.
	a.issuers = make([]*issuer, len(cfg.JWT.Issuers))
	errs := make([]error, len(cfg.JWT.Issuers))
	var wg sync.WaitGroup
	for i, ic := range cfg.JWT.Issuers {
		wg.Go(func() {
			a.issuers[i], errs[i] = newIssuer(ctx, fmt.Sprintf("auth.jwt.issuers[%d]", i), ic, cfg.JWT.Leeway, a.clock, client, log, opts.ObserveJWKS)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		a.Close()
		return nil, err
	}
	for _, is := range a.issuers {
		a.byIss[is.iss] = is
	}

	if keys != nil && cfg.APIKeys.File != "" && cfg.APIKeys.FileReload > 0 {
		a.wg.Go(func() { keys.watch(ctx, cfg.APIKeys.FileReload, log) })
	}
	log.Info("authentication ready", "issuers", len(a.issuers), "api_keys", a.keyCount(), "rules", len(cfg.Rules))
	return a, nil
}

// clock is the time source handed to parsers, so tests can move a.now.
func (a *Authenticator) clock() time.Time { return a.now() }

func (a *Authenticator) keyCount() int {
	if a.keys == nil {
		return 0
	}
	return len(*a.keys.cur.Load())
}

// ErrKeysNotLoaded is returned by KeysReady for JWKS issuers that have
// never loaded a key set.
var ErrKeysNotLoaded = errors.New("JWKS never loaded")

// KeysReady reports whether every JWKS issuer has loaded a key set at
// least once since the configuration was loaded: otherwise every token of
// that issuer is refused (unknown_key) and the gateway should not take
// traffic. The error names the issuers; nil when all have (or none uses a
// JWKS). A failed refresh later keeps the last good set: still ready.
func (a *Authenticator) KeysReady() error {
	var missing []string
	for _, is := range a.issuers {
		if is.health != nil && !is.health.ever.Load() {
			missing = append(missing, is.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: issuers %s", ErrKeysNotLoaded, strings.Join(missing, ", "))
	}
	return nil
}

// Close stops the JWKS refreshes and the keys-file reload and releases
// idle connections. Requests in flight still complete. Idempotent.
func (a *Authenticator) Close() {
	a.closeOnce.Do(func() {
		a.cancel()
		a.wg.Wait()
		if a.transport != nil {
			a.transport.CloseIdleConnections()
		}
	})
}

// Middleware authenticates and authorizes each request before next:
//
//   - The route comes from rivet.RouteFrom and must be resolved (every
//     actor it reaches known by namespace, name and key): a request that
//     is not is refused, never guessed at.
//   - For each actor the route reaches (or once, when it reaches none) the
//     first matching rule applies; a privileged intent (inspector, list,
//     destroy, kv, admin) is matched only by rules that name it.
//   - The first configured source carrying a credential is verified: a JWT
//     when it has the shape of one and issuers are configured, an API key
//     otherwise. A credential that is present but not well-formed is a
//     401, never ignored.
//   - Rejections are answered with rivet.WriteError: 401 auth.unauthorized
//     or 403 auth.forbidden as JSON, or on a WebSocket upgrade an accepted
//     socket closed with 1011 and that reason.
//   - Otherwise every credential carrier the gateway knows is stripped
//     (unless forward_credentials), the Identity is stored in the context
//     (IdentityFrom) and next runs.
//
// CORS preflights never get here: the CORS layer answers them, and an
// OPTIONS without Origin is no preflight but an ordinary request.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := a.serve(r)
		if err != nil {
			rivet.WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, out)
	})
}

// serve decides r: the request to forward, or the error to answer with.
func (a *Authenticator) serve(r *http.Request) (*http.Request, error) {
	rt := rivet.RouteFrom(r.Context())
	if rt == nil || !rt.Resolved {
		// The chain must classify and resolve before authentication; a
		// route whose actors are unknown cannot be authorized.
		a.log.Error("request reached authentication without a resolved route")
		return nil, rivet.ErrInternal
	}
	n := max(len(rt.Actors), 1)
	rules := make([]*rule, n)
	anonymous := true
	for i := range rules {
		rules[i] = a.match(rt, actorAt(rt, i))
		switch rules[i].allow {
		case allowDeny:
			return nil, a.decided(r, rt, rules[i], nil, ErrDenied, "")
		case allowAuthenticated:
			anonymous = false
		}
	}

	c := carriers{cfg: &a.sources, r: r, ws: rivet.IsUpgrade(r)}
	cred, found, err := c.find()
	var id *Identity
	if found && err == nil {
		id, err = a.verify(r.Context(), cred)
	}

	anonReason := ""
	switch {
	case anonymous:
		if !found || err != nil {
			// A bad credential must not break an anonymous route: the RivetKit
			// client retries /metadata forever and blocks on it.
			anonReason = Reason(err)
			id = &Identity{Method: MethodAnonymous}
		}
	case !found:
		return nil, a.decided(r, rt, rules[0], nil, ErrNoCredential, "")
	case err != nil:
		return nil, a.decided(r, rt, rules[0], nil, err, cred.src.String())
	default:
		for i, rl := range rules {
			if rl.allow != allowAuthenticated {
				continue
			}
			if err := rl.authorize(id, rt, actorAt(rt, i)); err != nil {
				return nil, a.decided(r, rt, rl, id, err, cred.src.String())
			}
		}
	}

	out := r.WithContext(WithIdentity(r.Context(), id))
	if !a.forward {
		if err := c.strip(out); err != nil {
			// Only params re-encoding can fail (they no longer fit their
			// carrier); forwarding the credential instead is not an option.
			return nil, rivet.ErrInvalidRequest.Wrap(err).With("reason", "conn_params")
		}
	}
	_ = a.decided(r, rt, rules[0], id, nil, anonReason)
	return out, nil
}

// actorAt returns the i-th actor rt reaches, or nil when it reaches none.
func actorAt(rt *rivet.Route, i int) *rivet.Actor {
	if i < len(rt.Actors) {
		return &rt.Actors[i]
	}
	return nil
}

// match returns the first rule matching rt reaching a. The last built-in
// rule matches every intent that is not privileged, and the built-in deny
// before it every privileged one, so the loop always returns.
func (a *Authenticator) match(rt *rivet.Route, act *rivet.Actor) *rule {
	for i := range a.rules[:len(a.rules)-1] {
		if a.rules[i].matches(rt, act) {
			return &a.rules[i]
		}
	}
	return &a.rules[len(a.rules)-1]
}

// verify checks a credential.
func (a *Authenticator) verify(ctx context.Context, c credential) (*Identity, error) {
	if c.src != srcAPIKeyHeader && len(a.issuers) > 0 && looksLikeJWT(c.value) {
		return a.verifyJWT(ctx, c.value)
	}
	return a.verifyAPIKey(c.value)
}

// decided reports the decision to Observe and the log, and returns the
// rejection for err (nil when allowed). detail is the credential source on
// failures, the ignored credential's reason on anonymous passes.
func (a *Authenticator) decided(r *http.Request, rt *rivet.Route, rl *rule, id *Identity, err error, detail string) error {
	o := Outcome{}
	if id != nil {
		o.Method, o.Issuer, o.APIKeyID, o.Subject = id.Method, id.issuerName, id.APIKeyID, id.Subject
	}
	switch {
	case err == nil && id.Method == MethodAnonymous:
		o.Result, o.Reason = ResultAnonymous, detail
	case err == nil:
		o.Result = ResultOK
	case errors.Is(err, ErrForbidden):
		o.Result, o.Reason = ResultForbidden, Reason(err)
	default:
		o.Result, o.Reason = ResultUnauthorized, Reason(err)
	}
	if a.observe != nil {
		a.observe(r, o)
	}
	if err == nil {
		return nil
	}
	if a.log.Enabled(r.Context(), slog.LevelDebug) {
		attrs := []slog.Attr{
			slog.String("result", o.Result), slog.String("reason", o.Reason),
			slog.String("rule", rl.name), slog.String("intent", rt.Intent.String()),
			slog.String("actor", rt.ActorLabel()), slog.String("namespace", routeNamespace(rt)),
			slog.String("source", detail), slog.String("error", err.Error()),
		}
		if id != nil {
			attrs = append(attrs, slog.String("method", id.Method), slog.String("subject", id.Subject),
				slog.String("issuer", id.issuerName), slog.String("api_key_id", id.APIKeyID))
		}
		a.log.LogAttrs(r.Context(), slog.LevelDebug, "request rejected", attrs...)
	}
	return rejection(err)
}

// routeNamespace is the namespace of the actor rt reaches, else the one
// its query names.
func routeNamespace(rt *rivet.Route) string {
	if a := rt.Actor(); a != nil {
		return a.Namespace
	}
	return rt.Namespace
}

// SessionDeadline returns when the connection of r (a request the
// middleware let through) must end because its credential expires: the
// Identity's ExpiresAt when close_on_expiry is on, zero otherwise (and for
// anonymous requests and credentials that never expire). The proxy closes
// the WebSocket then with the retryable reason ws.going_away, so the
// RivetKit client reconnects and calls getParams for a fresh token.
func (a *Authenticator) SessionDeadline(r *http.Request) time.Time {
	if !a.closeOnExpiry {
		return time.Time{}
	}
	if id := IdentityFrom(r.Context()); id != nil {
		return id.ExpiresAt
	}
	return time.Time{}
}

// Revalidate reports whether id, verified earlier (possibly by another
// Authenticator, before a configuration reload), is still acceptable under
// a's configuration: nil, or ErrAPIKeyRevoked when its API key was removed
// or replaced, ErrAPIKeyExpired / ErrTokenExpired when it expired,
// ErrUnknownIssuer when its issuer is gone. Anonymous identities are
// always acceptable. It does not re-run rules; those need the request.
func (a *Authenticator) Revalidate(id *Identity) error {
	if id == nil {
		return ErrNoCredential
	}
	now := a.now()
	switch id.Method {
	case MethodAnonymous:
		return nil
	case MethodJWT:
		if a.byIss[id.Issuer] == nil {
			return ErrUnknownIssuer
		}
		if !id.ExpiresAt.IsZero() && !now.Before(id.ExpiresAt.Add(a.leeway)) {
			return ErrTokenExpired
		}
		return nil
	case MethodAPIKey:
		var k *apiKey
		if a.keys != nil {
			k = a.keys.byID(id.APIKeyID)
		}
		if k == nil || (id.keyHash != [32]byte{} && k.hash != id.keyHash) {
			return ErrAPIKeyRevoked
		}
		if !k.expires.IsZero() && !now.Before(k.expires) {
			return ErrAPIKeyExpired
		}
		return nil
	}
	return ErrTokenInvalid
}
