package stripesandbox

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Helpers reading Stripe's form encoding, where nested values are spelled
// metadata[invoice_id]=... and lists expand[0]=... (or expand[]=...).

// hash returns the keys nested under name: metadata[k]=v -> {k: v}.
func hash(v url.Values, name string) map[string]string {
	out := map[string]string{}
	prefix := name + "["
	for k, vals := range v {
		if strings.HasPrefix(k, prefix) && strings.HasSuffix(k, "]") && len(vals) > 0 {
			inner := k[len(prefix) : len(k)-1]
			if inner != "" && !strings.ContainsAny(inner, "[]") {
				out[inner] = vals[len(vals)-1]
			}
		}
	}
	return out
}

// list returns name[0], name[1], ... (or name[] repeated) in index order.
func list(v url.Values, name string) []string {
	type item struct {
		i int
		v string
	}
	var items []item
	for k, vals := range v {
		if !strings.HasPrefix(k, name+"[") || !strings.HasSuffix(k, "]") {
			continue
		}
		idx := k[len(name)+1 : len(k)-1]
		if idx == "" {
			for j, val := range vals {
				items = append(items, item{j, val})
			}
			continue
		}
		if i, err := strconv.Atoi(idx); err == nil && len(vals) > 0 {
			items = append(items, item{i, vals[len(vals)-1]})
		}
	}
	sort.SliceStable(items, func(a, b int) bool { return items[a].i < items[b].i })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// unknownParams returns the first parameter outside allowed, where an entry
// "metadata[" allows every key under metadata.
func unknownParams(v url.Values, allowed ...string) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
next:
	for _, k := range keys {
		for _, a := range allowed {
			if k == a || (strings.HasSuffix(a, "[") && strings.HasPrefix(k, a)) {
				continue next
			}
		}
		return k
	}
	return ""
}

// boolParam parses an optional boolean.
func boolParam(v url.Values, name string) (value, ok bool, bad *apiError) {
	s, present := v[name]
	if !present {
		return false, false, nil
	}
	switch s[len(s)-1] {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	e := invalidParam(name, "Invalid boolean: "+s[len(s)-1])
	return false, false, &e
}

// intParam parses an optional integer.
func intParam(v url.Values, name string) (value int64, ok bool, bad *apiError) {
	s, present := v[name]
	if !present {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s[len(s)-1], 10, 64)
	if err != nil {
		e := invalidParam(name, "Invalid integer: "+s[len(s)-1])
		e.Code = "parameter_invalid_integer"
		return 0, false, &e
	}
	return n, true, nil
}

// limitParam parses a list's limit (1..100, default 10).
func limitParam(v url.Values) (int, *apiError) {
	n, ok, bad := intParam(v, "limit")
	if bad != nil {
		return 0, bad
	}
	if !ok {
		return 10, nil
	}
	if n < 1 || n > 100 {
		e := invalidParam("limit", "Invalid limit: must be between 1 and 100")
		return 0, &e
	}
	return int(n), nil
}
