// Command demo calls a Rivet actor through rivet-gateway with the Go client,
// the way `make demo` shows it: a JWT minted per connection in GetParams
// (the gateway verifies it and strips it), server-side params the gateway
// builds from the token's claims (what the actor sees), a connection with an
// event, and the rejections a caller without a valid token gets.
//
//	JWT_SECRET=… go run ./examples/demo -endpoint http://127.0.0.1:8080
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:8080", "rivet-gateway URL")
	user := flag.String("user", "alice", "the token's subject (and the counter's key)")
	flag.Parse()
	secret := os.Getenv("JWT_SECRET")
	if secret == "" {
		fail(errors.New("JWT_SECRET is not set (make demo sets it)"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := run(ctx, *endpoint, *user, []byte(secret)); err != nil {
		fail(err)
	}
}

// bobsCounter creates bob's counter through the gateway as bob, and returns
// its id (which alice may learn: ids are not secrets).
func bobsCounter(ctx context.Context, endpoint string, secret []byte) (string, error) {
	tok, err := mint(secret, "bob", "member")
	if err != nil {
		return "", err
	}
	c, err := rivetclient.New(endpoint, rivetclient.WithMetadataLookup(false), rivetclient.WithHeader("Authorization", "Bearer "+tok))
	if err != nil {
		return "", err
	}
	defer c.Close()
	bob := c.GetOrCreate("counter", []string{"bob"}, rivetclient.HandleOptions{Params: map[string]string{"authToken": tok}})
	var n int
	if err := bob.Action(ctx, "increment", &n, 1); err != nil {
		return "", fmt.Errorf("bob's increment: %w", err)
	}
	id, err := bob.Resolve(ctx)
	if err != nil {
		return "", fmt.Errorf("bob resolving his counter's id: %w", err)
	}
	return id, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

// mint issues a short-lived token as the demo issuer of config.example.yaml.
func mint(secret []byte, sub, role string) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "rivet-gateway-demo", "aud": "rivet", "sub": sub, "role": role,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}).SignedString(secret)
}

func run(ctx context.Context, endpoint, user string, secret []byte) error {
	c, err := rivetclient.New(endpoint, rivetclient.WithMetadataLookup(false))
	if err != nil {
		return err
	}
	defer c.Close()

	mints := 0
	counter := c.GetOrCreate("counter", []string{user}, rivetclient.HandleOptions{
		// Called before every connection and every stateless call: the
		// gateway reads authToken, verifies it and removes it.
		GetParams: func(context.Context) (any, error) {
			mints++
			tok, err := mint(secret, user, "member")
			return map[string]string{"authToken": tok}, err
		},
	})

	var n int
	if err := counter.Action(ctx, "increment", &n, 5); err != nil {
		return fmt.Errorf("increment: %w", err)
	}
	fmt.Printf("action   increment(5) -> %d\n", n)

	var who struct{ Params map[string]any }
	if err := counter.Action(ctx, "whoami", &who); err != nil {
		return fmt.Errorf("whoami: %w", err)
	}
	fmt.Printf("params   the actor saw %v (built by the gateway from the verified token; no raw token)\n", who.Params)

	conn, err := counter.Connect(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	events := make(chan int, 1)
	conn.On("newCount", func(e rivetclient.Event) {
		var v int
		if e.Decode(&v) == nil {
			select {
			case events <- v:
			default:
			}
		}
	})
	if err := conn.Action(ctx, "increment", &n, 2); err != nil {
		return fmt.Errorf("increment over the connection: %w", err)
	}
	select {
	case v := <-events:
		fmt.Printf("connect  increment(2) -> %d, event newCount(%d)\n", n, v)
	case <-ctx.Done():
		return errors.New("no newCount event")
	}
	fmt.Printf("getParams called %d times (a fresh JWT per call and per connection)\n", mints)

	// Another user's counter: the key binding rule refuses it.
	other := c.GetOrCreate("counter", []string{"bob"}, rivetclient.HandleOptions{
		GetParams: func(context.Context) (any, error) {
			tok, err := mint(secret, user, "member")
			return map[string]string{"authToken": tok}, err
		},
	})
	var ae *rivetclient.ActorError
	if err := other.Action(ctx, "getCount", &n); errors.As(err, &ae) {
		fmt.Printf("denied   %s reading bob's counter -> %s.%s\n", user, ae.Group, ae.Code)
	} else {
		return fmt.Errorf("reading another user's counter: got %v, want auth.forbidden", err)
	}
	// Bob's counter by its id: the gateway asks the engine whose counter the
	// id names, and the same key binding refuses it.
	bobID, err := bobsCounter(ctx, endpoint, secret)
	if err != nil {
		return err
	}
	byID := c.GetForID("counter", bobID, rivetclient.HandleOptions{
		GetParams: func(context.Context) (any, error) {
			tok, err := mint(secret, user, "member")
			return map[string]string{"authToken": tok}, err
		},
	})
	if err := byID.Action(ctx, "increment", &n, 1000); errors.As(err, &ae) {
		fmt.Printf("denied   %s calling bob's counter by its id -> %s.%s\n", user, ae.Group, ae.Code)
	} else {
		return fmt.Errorf("calling another user's counter by id: got %v, want auth.forbidden", err)
	}
	// The actor's inspector, even of her own counter, behind /request/.
	if res, err := counter.Fetch(ctx, "GET", "/inspector/state", nil, nil); err != nil {
		return fmt.Errorf("inspector: %w", err)
	} else {
		res.Body.Close()
		fmt.Printf("denied   %s opening her own counter's inspector (/request/inspector/state) -> %d %s\n", user, res.StatusCode, res.Header.Get("X-Rivet-Error"))
	}
	// No token at all.
	anon := c.GetOrCreate("counter", []string{user}, rivetclient.HandleOptions{})
	if err := anon.Action(ctx, "getCount", &n); errors.As(err, &ae) {
		fmt.Printf("denied   no token -> %s.%s\n", ae.Group, ae.Code)
	} else {
		return fmt.Errorf("call without a token: got %v, want auth.unauthorized", err)
	}
	return nil
}
