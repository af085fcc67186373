package gatewaytest

import (
	"reflect"
	"runtime"
	"strings"
)

// goroutine is one entry of a runtime.Stack(all) dump.
type goroutine struct {
	id    string // "goroutine 42"
	stack string
}

// goroutines returns every goroutine's stack.
func goroutines() []goroutine {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for _, block := range strings.Split(string(buf), "\n\n") {
		block = strings.TrimSpace(block)
		if block == "" {
			continue
		}
		// "goroutine 42 [chan receive]:"
		header, _, _ := strings.Cut(block, "\n")
		id, _, _ := strings.Cut(header, " [")
		out = append(out, goroutine{id: id, stack: block})
	}
	return out
}

// funcPrefix is how frames of functions in pkgPath begin in a stack trace:
// the path, with dots in its last element escaped, then a dot.
func funcPrefix(pkgPath string) string {
	dir, last := "", pkgPath
	if i := strings.LastIndexByte(pkgPath, '/'); i >= 0 {
		dir, last = pkgPath[:i+1], pkgPath[i+1:]
	}
	return dir + strings.ReplaceAll(last, ".", "%2e") + "."
}

// adapterPackage is the import path of the package defining a's type.
func adapterPackage(a any) string {
	t := reflect.TypeOf(a)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return ""
	}
	return t.PkgPath()
}

// httpClientConn marks the goroutines of an open net/http client
// connection. They never show the package that owns the http.Client, so an
// adapter that does not close its idle connections on Stop is caught by
// this instead.
const httpClientConn = "net/http.(*persistConn)"

// leaked returns the goroutines that are not in before and that belong to
// the adapter: a frame (or the "created by" line) in its package, or an HTTP
// client connection.
func leaked(before map[string]bool, pkgPath string) []goroutine {
	prefix := funcPrefix(pkgPath)
	var out []goroutine
	for _, g := range goroutines() {
		if before[g.id] {
			continue
		}
		if (pkgPath != "" && strings.Contains(g.stack, prefix)) || strings.Contains(g.stack, httpClientConn) {
			out = append(out, g)
		}
	}
	return out
}

func goroutineIDs() map[string]bool {
	ids := map[string]bool{}
	for _, g := range goroutines() {
		ids[g.id] = true
	}
	return ids
}
