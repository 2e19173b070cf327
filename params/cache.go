package params

import (
	"sync"
	"time"
)

// cache keeps params service answers for a TTL. It is bounded: when full,
// a put first drops expired entries, then arbitrary ones (map order), which
// is enough for a cache whose entries all live the same short time.
type cache struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[string]cacheEntry
}

type cacheEntry struct {
	obj     object
	expires time.Time
}

func newCache(ttl time.Duration, maxEntries int) *cache {
	return &cache{ttl: ttl, max: maxEntries, m: make(map[string]cacheEntry)}
}

// get returns the live entry for key. The object is shared: read only.
func (c *cache) get(key string, now time.Time) (object, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.m, key)
		return nil, false
	}
	return e.obj, true
}

func (c *cache) put(key string, obj object, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = cacheEntry{obj: obj, expires: now.Add(c.ttl)}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
