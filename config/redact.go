package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// Redacted is what a set secret shows as in the effective configuration.
const Redacted = "[redacted]"

// LogValue is the worker's effective configuration, secrets redacted.
func (c Worker) LogValue() slog.Value { return slog.GroupValue(Effective(c)...) }

// LogValue is the api's effective configuration, secrets redacted.
func (c API) LogValue() slog.Value { return slog.GroupValue(Effective(c)...) }

// LogValue is the starter's effective configuration, secrets redacted.
func (c Starter) LogValue() slog.Value { return slog.GroupValue(Effective(c)...) }

// Effective lists a configuration struct's variables and values in field
// order, for the start-up log: a secret shows only whether it is set, and a
// URL loses its password and any query parameter that may carry a credential.
func Effective(c any) []slog.Attr {
	var out []slog.Attr
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, Effective(fv.Interface())...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" {
			continue
		}
		out = append(out, slog.String(name, show(fv, f.Tag.Get("redact"))))
	}
	return out
}

func show(v reflect.Value, redact string) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "unset"
		}
		v = v.Elem()
	}
	switch redact {
	case "secret":
		if v.String() == "" {
			return ""
		}
		return Redacted
	case "url":
		return redactURL(v.String())
	}
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case List:
		return strings.Join(x, ",")
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v.Interface())
}

// safeParams are query parameters shown as they are; any other may carry a
// credential (password=, token=, sslkey=...), so only its name is shown.
var safeParams = map[string]bool{
	"sslmode": true, "connect_timeout": true, "application_name": true, "search_path": true,
	"target_session_attrs": true, "pool_max_conns": true, "pool_min_conns": true,
}

// redactURL keeps a URL's scheme, user, host and path: enough to tell which
// server, never its password or query parameters.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		// Not a URL we can take apart (e.g. a libpq key=value string): say
		// only that it is set.
		return Redacted
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if !safeParams[strings.ToLower(k)] {
				q[k] = []string{"xxxxx"}
			}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment = ""
	return u.String()
}
