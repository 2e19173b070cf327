package params

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Causes reported in Fetch.Cause, and in the metadata.reason of the error a
// client sees when params could not be resolved.
const (
	CauseNone         = ""
	CauseTimeout      = "timeout"       // an attempt or the budget ran out (retried)
	CauseRefused      = "refused"       // connection refused (retried)
	CauseUnreachable  = "unreachable"   // other transport failure: DNS, TLS, reset, EOF (retried)
	CauseStatus5xx    = "status_5xx"    // the service answered 5xx (retried)
	CauseStatus4xx    = "status_4xx"    // any other non-2xx answer, redirects included (retried only for 408 and 429)
	CauseInvalidJSON  = "invalid_json"  // the answer is not JSON (retried)
	CauseNotObject    = "not_object"    // the answer is JSON but not an object (retried)
	CauseDenied       = "denied"        // the service answered 401 or 403 (not retried)
	CauseTooLarge     = "too_large"     // the answer or the encoded params exceed their bound (not retried)
	CauseCanceled     = "canceled"      // the client went away, or the injector was closed
	CauseMissingClaim = "missing_claim" // a claims template had no value and missing_claim is deny
	CauseClientParams = "client_params" // policy merge: the client's own params are not a JSON object
	CauseInternal     = "internal"      // a bug or an unencodable identity
)

// failure is a failed attempt or fetch: what went wrong, whether another
// attempt could help, and how many attempts were made.
type failure struct {
	cause    string
	retry    bool
	attempts int
	err      error
}

func (f *failure) Error() string {
	if f.err == nil {
		return f.cause
	}
	return f.cause + ": " + f.err.Error()
}

func (f *failure) Unwrap() error { return f.err }

// causeOf names the cause of a resolve error.
func causeOf(err error) string {
	var f *failure
	switch {
	case errors.As(err, &f):
		return f.cause
	case errors.Is(err, errMissing):
		return CauseMissingClaim
	case errors.Is(err, context.Canceled):
		return CauseCanceled
	}
	return CauseInternal
}

// retryPolicy is a validated RetryConfig.
type retryPolicy struct {
	attempts        int
	initial, maxCap time.Duration
	budget          time.Duration
}

// backoff is the pause before attempt n+1: exponential with full jitter,
// uniform in [0, min(maxCap, initial*2^(n-1))] (AWS Architecture Blog,
// "Exponential Backoff And Jitter"), so retries of many connections that
// failed together spread out instead of arriving in waves.
func (p retryPolicy) backoff(n int) time.Duration {
	c := p.maxCap
	if n-1 < 62 {
		if d := p.initial << (n - 1); d > 0 && d < c {
			c = d
		}
	}
	if c <= 0 {
		return 0
	}
	return rand.N(c + 1)
}

// run calls once until it succeeds, fails with a non-retryable failure, or
// the attempts or the budget are spent, and returns the number of attempts
// made. It returns as soon as ctx is done: the error then has cause
// canceled. Every error it returns is a *failure.
func (p retryPolicy) run(ctx context.Context, once func(context.Context) (object, error)) (object, int, error) {
	bctx, cancel := context.WithTimeout(ctx, p.budget)
	defer cancel()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for attempt := 1; ; attempt++ {
		obj, err := once(bctx)
		if err == nil {
			return obj, attempt, nil
		}
		if ctx.Err() != nil {
			return nil, attempt, &failure{cause: CauseCanceled, attempts: attempt, err: context.Cause(ctx)}
		}
		f, ok := err.(*failure)
		if !ok {
			f = &failure{cause: CauseInternal, err: err}
		}
		f.attempts = attempt
		if !f.retry || attempt >= p.attempts {
			return nil, attempt, f
		}
		d := p.backoff(attempt)
		if dl, ok := bctx.Deadline(); ok && time.Until(dl) <= d {
			return nil, attempt, f // the budget ends before the next attempt could start
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return nil, attempt, &failure{cause: CauseCanceled, attempts: attempt, err: context.Cause(ctx)}
		case <-timer.C:
		}
	}
}
