package config

import (
	"encoding"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
)

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

// field is a struct field as the decoder sees it: by its koanf key.
type field struct {
	key    string
	index  []int
	typ    reflect.Type
	secret bool
	// userinfo: a URL field whose user:password part is redacted.
	userinfo bool
}

// structFields lists the keyed fields of struct type t the way mapstructure
// decodes them: the koanf tag or else the field name, embedded structs only
// when tagged ",squash". remain reports a ",remain" field, which takes any
// key.
func structFields(t reflect.Type) (fields []field, remain bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if name == "-" {
			continue
		}
		switch {
		case hasOpt(opts, "squash"):
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				sub, r := structFields(ft)
				for _, s := range sub {
					s.index = append([]int{i}, s.index...)
					fields = append(fields, s)
				}
				remain = remain || r
			}
			continue
		case hasOpt(opts, "remain"):
			remain = true
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields = append(fields, field{key: name, index: []int{i}, typ: f.Type, secret: f.Tag.Get("secret") == "true", userinfo: f.Tag.Get("secret") == "userinfo"})
	}
	return fields, remain
}

func hasOpt(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if strings.TrimSpace(o) == want {
			return true
		}
	}
	return false
}

func structKeys(t reflect.Type) (map[string]reflect.Type, bool) {
	fields, remain := structFields(t)
	m := make(map[string]reflect.Type, len(fields))
	for _, f := range fields {
		m[f.key] = f.typ
	}
	return m, remain
}

// isLeaf reports types decoded from a scalar even though they may be
// structs, like time.Time or netip.Addr.
func isLeaf(t reflect.Type) bool {
	return t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)
}

// checkKeys walks the raw value v against type t and records every key t
// has no field for, deleting it so the strict decoder does not report it a
// second time. It walks the nested map rather than flattened keys because
// map keys (JIDs, hostnames) may contain the delimiter.
func checkKeys(path string, v any, t reflect.Type, errs *errList) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isLeaf(t) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return // a type mismatch; the decoder reports it
		}
		fields, remain := structKeys(t)
		for k, sub := range m {
			ft, ok := fields[k]
			if !ok {
				if !remain {
					errs.unknown(joinKey(path, k))
					delete(m, k)
				}
				continue
			}
			checkKeys(joinKey(path, k), sub, ft, errs)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, sub := range m {
			checkKeys(joinKey(path, k), sub, t.Elem(), errs)
		}
	case reflect.Slice, reflect.Array:
		s, ok := v.([]any)
		if !ok {
			return
		}
		for i, e := range s {
			checkKeys(joinKey(path, strconv.Itoa(i)), e, t.Elem(), errs)
		}
	}
}

// resolveSecretFiles fills every string field keyed X whose sibling string
// field keyed X_file names a file, recursing into nested structs. v must be
// an addressable struct.
func resolveSecretFiles(path string, v reflect.Value, errs *errList) {
	fields, _ := structFields(v.Type())
	strs := map[string]reflect.Value{}
	for _, f := range fields {
		fv := v.FieldByIndex(f.index)
		switch fv.Kind() {
		case reflect.String:
			strs[f.key] = fv
		case reflect.Struct:
			if !isLeaf(fv.Type()) {
				resolveSecretFiles(joinKey(path, f.key), fv, errs)
			}
		case reflect.Pointer:
			if !fv.IsNil() && fv.Elem().Kind() == reflect.Struct && !isLeaf(fv.Elem().Type()) {
				resolveSecretFiles(joinKey(path, f.key), fv.Elem(), errs)
			}
		case reflect.Slice:
			if fv.Type().Elem().Kind() == reflect.Struct && !isLeaf(fv.Type().Elem()) {
				for i := range fv.Len() {
					resolveSecretFiles(joinKey(path, f.key+"."+strconv.Itoa(i)), fv.Index(i), errs)
				}
			}
		}
	}
	for fileKey, fileVal := range strs {
		base, ok := strings.CutSuffix(fileKey, "_file")
		if !ok {
			continue
		}
		target, ok := strs[base]
		if !ok || fileVal.String() == "" {
			continue
		}
		if target.String() != "" {
			errs.add(joinKey(path, base), fmt.Sprintf("set either %s or %s, not both", base, fileKey))
			continue
		}
		key := joinKey(path, fileKey)
		b, err := os.ReadFile(fileVal.String())
		if err != nil {
			errs.addErr(key, fmt.Sprintf("%s: %v", key, err), err)
			continue
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			errs.add(key, fmt.Sprintf("file %q is empty", fileVal.String()))
			continue
		}
		if !target.CanSet() {
			continue
		}
		target.SetString(s)
	}
}

// Redacted returns the effective configuration as YAML, keyed as in the
// file, with every non-empty field tagged secret:"true" (in Config and in
// adapter configs) shown as "[redacted]". It is meant for logs and for a
// "print config" command, not for loading back.
func (c *Config) Redacted() ([]byte, error) {
	m, _ := toPlain(reflect.ValueOf(*c)).(map[string]any)
	gws, _ := m["gateways"].(map[string]any)
	for name, g := range c.Gateways {
		gm, ok := gws[name].(map[string]any)
		if !ok || g.AdapterConfig == nil || g.Adapter == "" {
			continue
		}
		gm[g.Adapter] = toPlain(reflect.ValueOf(g.AdapterConfig))
	}
	b, err := yaml.Parser().Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	return b, nil
}

// toPlain converts v into maps, slices and scalars keyed by koanf tags.
func toPlain(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Invalid:
		return nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return toPlain(v.Elem())
	case reflect.Struct:
		if v.Type().Implements(textMarshaler) {
			return v.Interface()
		}
		fields, _ := structFields(v.Type())
		m := make(map[string]any, len(fields))
		for _, f := range fields {
			fv := v.FieldByIndex(f.index)
			if f.secret && !fv.IsZero() {
				m[f.key] = redacted
				continue
			}
			if f.userinfo && fv.Kind() == reflect.String {
				m[f.key] = redactUserinfo(fv.String())
				continue
			}
			m[f.key] = toPlain(fv)
		}
		return m
	case reflect.Map:
		m := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			m[fmt.Sprint(it.Key().Interface())] = toPlain(it.Value())
		}
		return m
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Interface()
		}
		s := make([]any, v.Len())
		for i := range v.Len() {
			s[i] = toPlain(v.Index(i))
		}
		return s
	}
	return v.Interface()
}

// redactUserinfo hides the user:password part of each URL in a
// comma-separated list (nats://user:pass@host → nats://[redacted]@host).
func redactUserinfo(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		scheme := strings.Index(p, "://")
		at := strings.LastIndex(p, "@")
		if scheme >= 0 && at > scheme {
			parts[i] = p[:scheme+3] + redacted + p[at:]
		}
	}
	return strings.Join(parts, ",")
}
