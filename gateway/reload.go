package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/proxy"
)

// Reload triggers, the trigger label of rivet_gateway_config_reloads_total.
const (
	TriggerSignal = "signal"
	TriggerWatch  = "watch"
)

// ErrShuttingDown is Reload's answer once shutdown has begun.
var ErrShuttingDown = errors.New("gateway is shutting down")

// Reload reads the configuration file at path, validates it, builds
// everything it needs (keys read, JWKS fetched) and swaps it in at once:
// requests that start afterwards see only the new configuration, requests
// in flight finish under the old one, and open WebSockets stay open. When
// reload.revalidate_websockets is on, open WebSockets whose identity the
// new configuration no longer accepts (a removed, replaced or expired API
// key, an issuer no longer trusted) are closed with 1011 auth.unauthorized.
//
// A file with errors, or one that changes a section only a restart can
// apply (restartOnly), is rejected as a whole: the errors are logged and
// returned and the running configuration is kept.
func (g *Gateway) Reload(path, trigger string) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.shuttingDown.Load() {
		return ErrShuttingDown
	}
	start := time.Now()
	old := g.live.Load()
	rt, err := g.load(path, old)
	if err != nil {
		g.metrics.ObserveReload(trigger, false, 0, start)
		g.log.Error("configuration reload rejected, the running configuration is kept",
			"trigger", trigger, "path", path, "errors", err.Error())
		return err
	}
	g.live.Store(rt)
	g.metrics.SetAuthLabels(issuerNames(rt.cfg.Auth), rt.auth.APIKeyIDs())
	if rt.proxy != old.proxy {
		g.retiredMu.Lock()
		g.retired = append(g.retired, old.proxy)
		g.retiredMu.Unlock()
	}
	old.close(rt)
	closed := 0
	if rt.cfg.Reload.RevalidateWebSockets {
		closed = g.revalidate(rt.auth)
	}
	g.pruneRetired()
	g.metrics.ObserveReload(trigger, true, closed, start)
	attrs := []any{"trigger", trigger, "path", path, "took", time.Since(start).Round(time.Millisecond).String()}
	attrs = append(attrs, reloadSummary(old, rt)...)
	attrs = append(attrs, "websockets_open", g.OpenWebSockets(), "websockets_closed", closed)
	g.log.Info("configuration reloaded", attrs...)
	logWarnings(g.log, rt.cfg)
	return nil
}

// reloadSummary says what a reload from old to rt changed, for its log
// line: the YAML keys whose values changed, the referenced files whose
// contents changed (by key; never a value or a content), and whether the
// proxy, the params client and the actor resolver were rebuilt or kept.
func reloadSummary(old, rt *runtime) []any {
	state := func(rebuilt bool) string {
		if rebuilt {
			return "rebuilt"
		}
		return "kept"
	}
	return []any{
		"changed", changedKeys(old.cfg, rt.cfg),
		"files_changed", changedFiles(old.files, rt.files),
		"proxy", state(rt.proxy != old.proxy),
		"params_client", state(rt.par != old.par),
		"actor_resolver", state(rt.actors != old.actors),
	}
}

// changedKeys lists the YAML path of every value that differs between a
// and b (see diffYAML), never the values.
func changedKeys(a, b Config) []string {
	out := []string{}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if f := va.Type().Field(i); f.IsExported() {
			diffYAML(va.Field(i), vb.Field(i), yamlName(f), &out)
		}
	}
	return out
}

// load reads, validates and builds the configuration at path.
func (g *Gateway) load(path string, old *runtime) (*runtime, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if err := restartOnly(g.cfg, cfg); err != nil {
		return nil, err
	}
	return g.build(cfg, old)
}

// revalidate closes every open WebSocket whose identity auth rejects.
func (g *Gateway) revalidate(auth *authn.Authenticator) int {
	n := 0
	for _, p := range g.proxies() {
		n += p.Revalidate(func(r *http.Request) error {
			id := authn.IdentityFrom(r.Context())
			if id == nil {
				return nil // the rule let it in without a credential
			}
			return auth.Revalidate(id)
		})
	}
	return n
}

// pruneRetired releases replaced proxies whose last WebSocket has ended.
func (g *Gateway) pruneRetired() {
	g.retiredMu.Lock()
	defer g.retiredMu.Unlock()
	g.retired = slices.DeleteFunc(g.retired, func(p *proxy.Proxy) bool {
		if p.OpenWebSockets() > 0 {
			return false
		}
		p.Close()
		return true
	})
}

// restartOnly rejects a reload that changes what only a restart applies:
// the listeners and their limits (server.*, but the TLS certificate, which
// reloads), the admin listener, the logger, and the metrics set-up.
func restartOnly(running, next Config) error {
	a, b := running.Server, next.Server
	a.TLSCertFile, a.TLSKeyFile = b.TLSCertFile, b.TLSKeyFile
	if (running.Server.TLSCertFile == "") != (next.Server.TLSCertFile == "") {
		return errors.New("server.tls_cert_file: switching between HTTP and HTTPS needs a restart")
	}
	var changed []string
	diffYAML(reflect.ValueOf(a), reflect.ValueOf(b), "server", &changed)
	diffYAML(reflect.ValueOf(running.Admin), reflect.ValueOf(next.Admin), "admin", &changed)
	diffYAML(reflect.ValueOf(running.Log.Level), reflect.ValueOf(next.Log.Level), "log.level", &changed)
	diffYAML(reflect.ValueOf(running.Log.Format), reflect.ValueOf(next.Log.Format), "log.format", &changed)
	diffYAML(reflect.ValueOf(running.Metrics), reflect.ValueOf(next.Metrics), "metrics", &changed)
	diffYAML(reflect.ValueOf(running.Tracing), reflect.ValueOf(next.Tracing), "tracing", &changed)
	if len(changed) > 0 {
		return fmt.Errorf("%s: changed, which needs a restart (the running value is kept until then)", strings.Join(changed, ", "))
	}
	return nil
}

// diffYAML appends to out the YAML path of every field where a and b
// differ, descending into structs and into lists of structs of the same
// length (auth.jwt.issuers[1].secret_file); a struct with unexported
// fields is compared whole.
func diffYAML(a, b reflect.Value, path string, out *[]string) {
	switch {
	case a.Kind() == reflect.Struct && yamlFieldsOnly(a.Type()):
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				diffYAML(a.Field(i), b.Field(i), path+"."+yamlName(f), out)
			}
		}
	case a.Kind() == reflect.Slice && a.Type().Elem().Kind() == reflect.Struct && a.Len() == b.Len():
		for i := range a.Len() {
			diffYAML(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
	}
}

// yamlFieldsOnly reports whether t is a configuration struct: one with
// yaml-tagged exported fields, compared field by field (its unexported
// fields are bookkeeping, not configuration). Other structs (time.Time) are
// compared whole.
func yamlFieldsOnly(t reflect.Type) bool {
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && f.Tag.Get("yaml") != "" {
			return true
		}
	}
	return false
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// fileRef is a file the configuration reads and the YAML path naming it.
type fileRef struct{ path, file string }

// fileRefs lists the files cfg reads: every non-empty string field whose
// YAML key is "file" or ends in "_file" (secret_file, public_key_file,
// api_keys.file, ca_file, tls_cert_file, token_file, ...), and the values
// of maps whose key ends in "_files" (params.http.header_files).
func fileRefs(cfg Config) []fileRef {
	var out []fileRef
	var walk func(v reflect.Value, path, key string)
	walk = func(v reflect.Value, path, key string) {
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				if f := v.Type().Field(i); f.IsExported() {
					name := yamlName(f)
					walk(v.Field(i), strings.TrimPrefix(path+"."+name, "."), name)
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), key)
			}
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem(), path, key)
			}
		case reflect.Map:
			// header_files: name → file.
			if strings.HasSuffix(key, "_files") && v.Type().Key().Kind() == reflect.String {
				keys := v.MapKeys()
				slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
				for _, k := range keys {
					walk(v.MapIndex(k), path+"."+k.String(), "file")
				}
			}
		case reflect.String:
			if (key == "file" || strings.HasSuffix(key, "_file")) && v.String() != "" {
				out = append(out, fileRef{path, v.String()})
			}
		}
	}
	walk(reflect.ValueOf(cfg), "", "")
	return out
}

// referencedFiles lists the files cfg reads.
func referencedFiles(cfg Config) []string {
	refs := fileRefs(cfg)
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.file
	}
	return out
}

// contentSum hashes the content of file (following symlinks, as a
// Kubernetes volume's files are). A missing or unreadable file hashes as
// such, unlike any content.
func contentSum(file string) [32]byte {
	b, err := os.ReadFile(file)
	if err != nil {
		return sha256.Sum256(fmt.Appendf(nil, "error\x00%v", errors.Is(err, os.ErrNotExist)))
	}
	return sha256.Sum256(append([]byte("ok\x00"), b...))
}

// changedSinceLoad reports whether the config file at path now says
// something other than the running configuration, or a file the running
// configuration read differs from what was read (hashed before reading).
func (g *Gateway) changedSinceLoad(path string) bool {
	rt := g.live.Load()
	if rt == nil {
		return false
	}
	if cur, err := LoadConfig(path); err != nil || len(changedKeys(rt.cfg, cur)) > 0 {
		return true // a reload applies it, or says why it cannot
	}
	now := readFileStates(fileRefs(rt.cfg))
	for k, v := range rt.files {
		if now[k] != v {
			return true
		}
	}
	return false
}

// fingerprint hashes the names and contents of files, so the watcher
// reloads only on a real change.
func fingerprint(files []string) [32]byte {
	h := sha256.New()
	for _, f := range files {
		sum := contentSum(f)
		fmt.Fprintf(h, "%s\x00", f)
		h.Write(sum[:])
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// fileState is a referenced file and the hash of its content.
type fileState struct {
	file string
	sum  [32]byte
}

// readFileStates hashes the files refs name, by YAML path.
func readFileStates(refs []fileRef) map[string]fileState {
	out := make(map[string]fileState, len(refs))
	for _, r := range refs {
		out[r.path] = fileState{r.file, contentSum(r.file)}
	}
	return out
}

// sameFiles reports whether a and b name the same files, with the same
// contents, under the YAML section section (e.g. "upstream").
func sameFiles(a, b map[string]fileState, section string) bool {
	in := func(key string) bool { return strings.HasPrefix(key, section+".") }
	for k, v := range a {
		if in(k) && b[k] != v {
			return false
		}
	}
	for k := range b {
		if _, ok := a[k]; in(k) && !ok {
			return false
		}
	}
	return true
}

// changedFiles lists, sorted, the YAML paths whose file is the same in a
// and b but whose content differs: rotations, which changedKeys cannot
// see. A key naming another file is a changed key instead.
func changedFiles(a, b map[string]fileState) []string {
	out := []string{}
	for k, v := range b {
		if old, ok := a[k]; ok && old.file == v.file && old.sum != v.sum {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// watchedFiles is the config file and the files its live configuration
// references.
func (g *Gateway) watchedFiles(path string) []string {
	return append([]string{path}, referencedFiles(g.live.Load().cfg)...)
}

// watchedDirs are the directories to watch for files: each file's own
// directory, where Kubernetes swaps the ..data symlink of a ConfigMap or
// Secret volume, and the directory its symlinks resolve to.
func watchedDirs(files []string) []string {
	var dirs []string
	for _, f := range files {
		dirs = append(dirs, filepath.Dir(f))
		if real, err := filepath.EvalSymlinks(f); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// Watch reloads the configuration at path whenever its contents, or those
// of a file it references, change, until ctx ends. It watches the files'
// directories, so both an editor's rename-over and Kubernetes' symlink swap
// are seen; changes are debounced by reload.debounce and compared by
// content, so touching a file reloads nothing. A rejected file is not
// retried until it changes again.
func (g *Gateway) Watch(ctx context.Context, path string) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config watch: %w", err)
	}
	defer w.Close()
	watching := map[string]bool{}
	addDirs := func(files []string) {
		for _, d := range watchedDirs(files) {
			if watching[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				g.log.Warn("config watch: cannot watch directory", "dir", d, "error", err)
				continue
			}
			watching[d] = true
		}
	}
	files := g.watchedFiles(path)
	addDirs(files)
	last := fingerprint(files)

	debounce := g.cfg.Reload.Debounce
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	if g.changedSinceLoad(path) {
		// A file changed between loading the running configuration and
		// watching: the change must not become the starting point.
		last = [32]byte{}
		timer.Reset(0)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op != fsnotify.Chmod {
				timer.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			g.log.Warn("config watch error", "error", err)
			timer.Reset(debounce) // events may have been lost: look again
		case <-timer.C:
			files := g.watchedFiles(path)
			fp := fingerprint(files)
			if fp == last {
				continue
			}
			last = fp
			if err := g.Reload(path, TriggerWatch); errors.Is(err, ErrShuttingDown) {
				return nil
			}
			// A reload may reference new files; the rejected file's
			// fingerprint is kept, so it is retried only once it changes.
			files = g.watchedFiles(path)
			addDirs(files)
			if fp2 := fingerprint(files); fp2 != fp {
				last = fp2
			}
		}
	}
}
