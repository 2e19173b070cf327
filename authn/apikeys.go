package authn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"
)

// apiKey is a configured key, ready to compare.
type apiKey struct {
	id      string
	hash    [32]byte
	expires time.Time
	scopes  []string
}

// apiKeys holds the current key set: the inline keys and the keys file,
// swapped atomically when the file changes.
type apiKeys struct {
	inline []apiKey
	file   string
	cur    atomic.Pointer[[]apiKey]

	// Owned by the reload goroutine.
	lastFile []byte
}

func compileKeys(keys []APIKey) []apiKey {
	out := make([]apiKey, 0, len(keys))
	for _, k := range keys {
		var h [32]byte
		_, _ = hex.Decode(h[:], []byte(strings.ToLower(k.SHA256))) // validated
		out = append(out, apiKey{id: k.ID, hash: h, expires: k.Expires, scopes: k.Scopes})
	}
	return out
}

// newAPIKeys returns nil when no keys are configured. path is the
// api_keys YAML path, for errors.
func newAPIKeys(path string, cfg APIKeysConfig) (*apiKeys, error) {
	if len(cfg.Keys) == 0 && cfg.File == "" {
		return nil, nil
	}
	s := &apiKeys{inline: compileKeys(cfg.Keys), file: cfg.File}
	if cfg.File == "" {
		s.cur.Store(&s.inline)
		return s, nil
	}
	if _, err := s.reload(); err != nil {
		return nil, fmt.Errorf("%s.file: %w", path, err)
	}
	return s, nil
}

// reload reads the keys file and, when its content changed and is valid,
// installs inline + file keys. changed is false when the file is as last
// read.
func (s *apiKeys) reload() (changed bool, err error) {
	b, err := os.ReadFile(s.file)
	if err != nil {
		return false, err
	}
	if s.lastFile != nil && bytes.Equal(b, s.lastFile) {
		return false, nil
	}
	keys, err := parseKeysFile(b)
	if err != nil {
		return false, err
	}
	all := append(append(make([]APIKey, 0), keysAsConfig(s.inline)...), keys...)
	var p problems
	validateKeys(&p, "keys (inline and file)", all)
	if err := errors.Join(p...); err != nil {
		return false, err
	}
	merged := append(append(make([]apiKey, 0, len(s.inline)+len(keys)), s.inline...), compileKeys(keys)...)
	s.cur.Store(&merged)
	s.lastFile = b
	return true, nil
}

// keysAsConfig turns compiled keys back into config entries, to validate
// inline and file keys together (duplicate ids or hashes across both).
func keysAsConfig(keys []apiKey) []APIKey {
	out := make([]APIKey, len(keys))
	for i, k := range keys {
		out[i] = APIKey{ID: k.id, SHA256: hex.EncodeToString(k.hash[:]), Expires: k.expires, Scopes: k.scopes}
	}
	return out
}

// parseKeysFile decodes a YAML list of APIKey, strictly. An empty file is
// an empty list (every file key revoked).
func parseKeysFile(b []byte) ([]APIKey, error) {
	var keys []APIKey
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&keys); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return keys, nil
}

// watch re-reads the keys file every interval until ctx ends.
func (s *apiKeys) watch(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err := s.reload()
			switch {
			case err != nil:
				log.Error("API keys file unreadable; keeping the last good keys", "file", s.file, "error", err)
			case changed:
				log.Info("API keys file reloaded", "file", s.file, "keys", len(*s.cur.Load()))
			}
		}
	}
}

// lookup finds the key whose hash is SHA-256(presented). Every configured
// hash is compared, in constant time, whatever matches.
func (s *apiKeys) lookup(presented string) *apiKey {
	h := sha256.Sum256([]byte(presented))
	keys := *s.cur.Load()
	var found *apiKey
	for i := range keys {
		if subtle.ConstantTimeCompare(h[:], keys[i].hash[:]) == 1 {
			found = &keys[i]
		}
	}
	return found
}

// byID returns the current key with id, or nil.
func (s *apiKeys) byID(id string) *apiKey {
	keys := *s.cur.Load()
	for i := range keys {
		if keys[i].id == id {
			return &keys[i]
		}
	}
	return nil
}

// verifyAPIKey checks a presented API key.
func (a *Authenticator) verifyAPIKey(presented string) (*Identity, error) {
	if a.keys == nil {
		return nil, ErrTokenMalformed // neither a JWT nor a possible API key
	}
	k := a.keys.lookup(presented)
	if k == nil {
		return nil, ErrAPIKeyInvalid
	}
	if !k.expires.IsZero() && !a.now().Before(k.expires) {
		return nil, wrap(ErrAPIKeyExpired, fmt.Errorf("key %q expired at %s", k.id, k.expires.Format(time.RFC3339)))
	}
	return &Identity{
		Method:    MethodAPIKey,
		APIKeyID:  k.id,
		Scopes:    k.scopes,
		ExpiresAt: k.expires,
		keyHash:   k.hash,
	}, nil
}

// APIKeyIDs returns the ids of the API keys accepted now, inline and from
// the keys file: operator-chosen names, safe as metric labels.
func (a *Authenticator) APIKeyIDs() []string {
	if a.keys == nil {
		return nil
	}
	keys := *a.keys.cur.Load()
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.id)
	}
	return out
}
