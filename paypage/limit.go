package paypage

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are the pages' rate limits: a token bucket per capability token
// and one per client address. A page open costs one request and its live
// status one a second, so the defaults leave room for a few open tabs while
// making token guessing from one address pointless (it is hopeless anyway:
// 256-bit tokens).
type Limits struct {
	// PerToken and TokenBurst bound requests naming one token.
	PerToken   rate.Limit
	TokenBurst int
	// PerAddr and AddrBurst bound requests from one client address.
	PerAddr   rate.Limit
	AddrBurst int
}

// DefaultLimits: 5 requests a second per token (burst 20) and 20 per
// address (burst 60).
var DefaultLimits = Limits{PerToken: 5, TokenBurst: 20, PerAddr: 20, AddrBurst: 60}

// limiter keeps a bucket per key, forgetting idle ones.
type limiter struct {
	limits  Limits
	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// idle is how long an unused bucket is kept: by then it is full again, so
// forgetting it changes nothing.
const idle = 5 * time.Minute

func newLimiter(l Limits) *limiter {
	if l.PerToken == 0 && l.PerAddr == 0 {
		l = DefaultLimits
	}
	return &limiter{limits: l, buckets: map[string]*bucket{}}
}

// allow takes one request from the token's and the address's buckets. Both
// are charged only when both have room, so a client refused for its
// address does not also drain the token of the payer it shares a page with.
func (l *limiter) allow(token, addr string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > idle {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > idle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	var bs []*bucket
	if token != "" {
		bs = append(bs, l.get("t:"+token, l.limits.PerToken, l.limits.TokenBurst, now))
	}
	if addr != "" {
		bs = append(bs, l.get("a:"+addr, l.limits.PerAddr, l.limits.AddrBurst, now))
	}
	for _, b := range bs {
		if b.lim.TokensAt(now) < 1 {
			return false
		}
	}
	for _, b := range bs {
		b.lim.AllowN(now, 1)
	}
	return true
}

func (l *limiter) get(key string, r rate.Limit, burst int, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(r, burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b
}
