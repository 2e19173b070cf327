package deploy_test

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/rivet-gateway/rivet-gateway/gateway"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"
)

// binDir holds the binary built by replaying the Dockerfile's go build.
var binDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "rivet-gateway-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func mustDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	df, _, err := readDockerfile()
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return df
}

func mustPattern(t *testing.T, name string) *pattern {
	t.Helper()
	p, err := loadPattern(name)
	if err != nil {
		t.Fatalf("pattern %s: %v", name, err)
	}
	return p
}

var build struct {
	sync.Once
	path string
	out  []byte
	err  error
}

// gatewayBinary builds the gateway exactly as the Dockerfile does (once
// per test binary).
func gatewayBinary(t *testing.T) string {
	t.Helper()
	df := mustDockerfile(t)
	if df.build == nil {
		t.Fatal("Dockerfile: no go build to replay")
	}
	build.Do(func() {
		build.path = filepath.Join(binDir, "rivet-gateway")
		build.out, build.err = replayBuild(df.build, build.path)
	})
	if build.err != nil {
		t.Fatalf("replaying the Dockerfile's go build: %v\n%s", build.err, build.out)
	}
	return build.path
}

// TestManifestsDecodeStrictly decodes every document of every manifest
// file into its Kubernetes API type, rejecting unknown, misspelled,
// wrongly cased and duplicate fields.
func TestManifestsDecodeStrictly(t *testing.T) {
	files, err := manifestFiles()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, f := range files {
		if path := filepath.Base(f); path == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(kubeDir, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeFile(f, data)
		if err != nil {
			t.Error(err)
		}
		for _, o := range objs {
			kinds[o.kind]++
		}
	}
	for _, k := range []string{"apps/v1/Deployment", "v1/ConfigMap", "v1/Secret", "v1/Service", "policy/v1/PodDisruptionBudget", "monitoring.coreos.com/v1/ServiceMonitor"} {
		if kinds[k] == 0 {
			t.Errorf("no %s decoded: the manifests lost one", k)
		}
	}
	t.Logf("decoded: %v", kinds)
}

// TestKustomizations: every kustomization decodes strictly, what it lists
// exists, and every manifest file is listed by exactly one of them (an
// unlisted file would never be applied, and never checked by the pattern
// tests).
func TestKustomizations(t *testing.T) {
	files, err := manifestFiles()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string][]string{}
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			continue
		}
		dir := filepath.ToSlash(filepath.Dir(f))
		data, err := os.ReadFile(filepath.Join(kubeDir, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		var peek struct {
			Kind string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal(data, &peek); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		k, err := readKustomization(dir, peek.Kind) // Kustomization or Component
		if err != nil {
			t.Error(err)
			continue
		}
		for _, r := range k.Resources {
			p := filepath.ToSlash(filepath.Join(dir, r))
			if fi, err := os.Stat(filepath.Join(kubeDir, p)); err == nil && !fi.IsDir() {
				listed[p] = append(listed[p], f)
			}
		}
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		switch n := len(listed[f]); {
		case n == 0:
			t.Errorf("%s is listed in no kustomization.yaml", f)
		case n > 1:
			t.Errorf("%s is listed in %v", f, listed[f])
		}
	}
	for _, name := range patternNames {
		if _, err := loadBundle(name); err != nil {
			t.Errorf("pattern %s: %v", name, err)
		}
	}
}

// TestStrictDecodingRejects proves the decoding above is strict: each
// mutation of a real manifest must fail to decode (or to pass the API
// server's syntax rules for names and labels).
func TestStrictDecodingRejects(t *testing.T) {
	cases := []struct {
		name, file, old, new string
	}{
		{"misspelled field", "sidecar/deployment.yaml", "containerPort: 8080", "containerPorts: 8080"},
		{"wrong case", "sidecar/deployment.yaml", "readOnlyRootFilesystem: true", "readonlyRootFilesystem: true"},
		{"duplicate key", "sidecar/deployment.yaml", "  replicas: 1\n", "  replicas: 1\n  replicas: 2\n"},
		{"wrong type", "sidecar/deployment.yaml", "terminationGracePeriodSeconds: 75", "terminationGracePeriodSeconds: 75s"},
		{"unknown apiVersion", "sidecar/deployment.yaml", "apiVersion: apps/v1", "apiVersion: apps/v1beta2"},
		{"misspelled preStop sleep", "sidecar/deployment.yaml", "seconds: 40", "second: 40"},
		{"misspelled service field", "standalone/service.yaml", "targetPort: http", "targetport: http"},
		{"misspelled PDB field", "standalone/pdb.yaml", "maxUnavailable: 1", "maxUnavailabe: 1"},
		{"misspelled Secret field", "standalone/secret.yaml", "stringData:", "stringdata:"},
		{"invalid label value", "standalone/deployment.yaml", "        app.kubernetes.io/instance: standalone\n      annotations:", "        app.kubernetes.io/instance: stand alone\n      annotations:"},
		{"invalid env var name", "sidecar/deployment.yaml", "- name: RIVET_TOKEN", "- name: RIVET TOKEN"},
		{"invalid Service name", "standalone/service.yaml", "name: rivet-gateway\n", "name: 1rivet-gateway\n"},
		{"misspelled ServiceMonitor field", "components/monitoring/servicemonitor.yaml", "scrapeTimeout: 10s", "scrapeTimout: 10s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(kubeDir, filepath.FromSlash(tc.file)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeFile(tc.file, data); err != nil {
				t.Fatalf("the unmutated file does not decode: %v", err)
			}
			mutated := strings.Replace(string(data), tc.old, tc.new, 1)
			if mutated == string(data) {
				t.Fatalf("%s has no %q to mutate", tc.file, tc.old)
			}
			_, err = decodeFile(tc.file, []byte(mutated))
			if err == nil {
				t.Fatalf("%q -> %q decoded without error", tc.old, tc.new)
			}
			t.Logf("rejected: %v", err)
		})
	}
	t.Run("kustomization", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(kubeDir, "sidecar", "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var k kustomization
		if err := decodeStrict(data, &k); err != nil {
			t.Fatalf("the unmutated kustomization does not decode: %v", err)
		}
		for _, m := range [][2]string{
			{"resources:", "resource:"},
			{"images:", "configMapGenerator:\n  - name: rivet-gateway-config\n    files: [config.yaml]\nimages:"},
		} {
			mutated := strings.Replace(string(data), m[0], m[1], 1)
			var k kustomization
			if err := decodeStrict([]byte(mutated), &k); err == nil {
				t.Errorf("kustomization with %q decoded without error", m[1])
			}
		}
	})
}

// TestDockerfile checks the Dockerfile statically.
func TestDockerfile(t *testing.T) {
	df := mustDockerfile(t)
	goVer, err := goModGoVersion()
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkDockerfile(df, goVer) {
		t.Error(err)
	}
}

// TestDockerfileChecksCatchDrift: each mutation of the Dockerfile must be
// reported.
func TestDockerfileChecksCatchDrift(t *testing.T) {
	_, text, err := readDockerfile()
	if err != nil {
		t.Fatal(err)
	}
	goVer, err := goModGoVersion()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, old, new, want string }{
		{"root user", "USER 65532:65532", "USER 0", "runs as root"},
		{"named user", "USER 65532:65532", "USER nonroot", "uid must be numeric"},
		{"exposed ports", "EXPOSE 8080 9090", "EXPOSE 8080", "EXPOSE"},
		{"cgo", "CGO_ENABLED=0 ", "", "CGO_ENABLED=0"},
		{"trimpath", "-trimpath ", "", "-trimpath"},
		{"strip", `"-s -w `, `"-w `, "lacks -s"},
		{"version variable", "-X main.version=", "-X main.Version=", "main.version"},
		{"final image", finalImage, "gcr.io/distroless/base-debian12:nonroot", "final stage FROM"},
		{"shell-form entrypoint", `ENTRYPOINT ["/rivet-gateway"]`, "ENTRYPOINT /rivet-gateway", "exec (JSON) form"},
		{"old Go", "ARG GO_VERSION=", "ARG GO_VERSION=1.20.0\nARG UNUSED=", "older than go.mod"},
		{"copied binary", "COPY --from=build /out/rivet-gateway /rivet-gateway", "COPY --from=build /out/gw /rivet-gateway", "no COPY"},
		{"build stage name", "AS build", "", "no name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mutated := strings.Replace(text, tc.old, tc.new, 1)
			if mutated == text {
				t.Fatalf("Dockerfile has no %q", tc.old)
			}
			df, err := parseDockerfile(mutated)
			errs := checkDockerfile(df, goVer)
			if err != nil {
				errs = append(errs, err)
			}
			expectError(t, errs, tc.want)
		})
	}
}

func expectError(t *testing.T, errs []error, want string) {
	t.Helper()
	for _, err := range errs {
		if strings.Contains(err.Error(), want) {
			t.Logf("caught: %v", err)
			return
		}
	}
	t.Errorf("no error mentions %q; got %v", want, errors.Join(errs...))
}

// TestPatterns cross-checks each pattern against the gateway: its config
// loads and validates with the env and files the pod provides, and the
// manifests agree with it (ports, probes, metrics, mounts, drain timing,
// services, security); then the real admin handler serves the probed and
// scraped paths.
func TestPatterns(t *testing.T) {
	df := mustDockerfile(t)
	for _, name := range patternNames {
		t.Run(name, func(t *testing.T) {
			p := mustPattern(t, name)
			v, err := resolveGateway(p, df, t.TempDir(), true)
			if err != nil {
				t.Fatalf("the pod's gateway config does not load: %v", err)
			}
			for _, err := range checkPattern(p, v, df) {
				t.Error(err)
			}

			// gateway.LoadConfig itself, with the container's env in the
			// process environment, agrees.
			for k, val := range v.env {
				t.Setenv(k, val)
			}
			cfg, err := gateway.LoadConfig(v.localPath)
			if err != nil {
				t.Fatalf("gateway.LoadConfig: %v", err)
			}
			if !reflect.DeepEqual(cfg, v.cfg) {
				t.Errorf("gateway.LoadConfig differs from the container-env load")
			}

			checkAdminLive(t, p, v)
		})
	}
}

// checkAdminLive builds the real gateway from the pattern's config (its
// upstream pointed at a local healthy engine) and requests every path the
// manifests probe or scrape on the admin handler.
func checkAdminLive(t *testing.T, p *pattern, v *gatewayView) {
	t.Helper()
	fakeEngine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			_, _ = io.WriteString(w, `{"status":"ok"}`)
			return
		}
		http.NotFound(w, r)
	}))
	defer fakeEngine.Close()
	cfg := v.cfg
	cfg.Upstream.URL = fakeEngine.URL
	g, err := gateway.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("gateway.New with the pod's config and files: %v", err)
	}
	defer g.Close()
	h := g.AdminHandler()
	get := func(what, path string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s: GET %s on the admin handler: %d %s", what, path, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
		if (what == "prometheus.io/path" || strings.Contains(what, "Monitor ")) && !strings.Contains(rec.Body.String(), "rivet_gateway_") {
			t.Errorf("%s: GET %s serves no rivet_gateway_ metrics", what, path)
		}
	}
	gw := v.container
	for _, pr := range []struct {
		what  string
		probe *corev1.Probe
	}{{"livenessProbe", gw.LivenessProbe}, {"readinessProbe", gw.ReadinessProbe}, {"startupProbe", gw.StartupProbe}} {
		if pr.probe != nil && pr.probe.HTTPGet != nil {
			get(pr.what, pr.probe.HTTPGet.Path)
		}
	}
	if path, ok := p.deploy.Spec.Template.Annotations["prometheus.io/path"]; ok {
		get("prometheus.io/path", path)
	}
	for _, m := range p.monitors {
		for _, e := range m.Spec.Endpoints {
			get("ServiceMonitor "+m.Name, e.Path)
		}
	}
	for _, m := range p.podMonitors {
		for _, e := range m.Spec.PodMetricsEndpoints {
			get("PodMonitor "+m.Name, e.Path)
		}
	}
	// The handler does refuse unknown paths, so the 200s above mean
	// something.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nonexistent-probe-path", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("the admin handler answers %d for an unknown path: the probe checks above prove nothing", rec.Code)
	}
}

// TestPlaceholdersAreRefused: the Secrets as committed (REPLACE_ME
// everywhere) must not yield a gateway that starts.
func TestPlaceholdersAreRefused(t *testing.T) {
	df := mustDockerfile(t)
	for _, name := range patternNames {
		t.Run(name, func(t *testing.T) {
			p := mustPattern(t, name)
			v, err := resolveGateway(p, df, t.TempDir(), false)
			if err == nil {
				var g *gateway.Gateway
				g, err = gateway.New(v.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
				if g != nil {
					g.Close()
				}
			}
			if err == nil {
				t.Fatal("the gateway starts with the placeholder Secret values")
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestBinary replays the Dockerfile's go build, checks that the result is
// the static, stripped, versioned binary the distroless image needs, and
// runs it: -version, and -check on each pattern's config with exactly the
// container's env.
func TestBinary(t *testing.T) {
	bin := gatewayBinary(t)

	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range f.Progs {
			switch prog.Type {
			case elf.PT_INTERP:
				t.Error("the binary has a PT_INTERP program header: it is dynamically linked and will not run on distroless/static")
			case elf.PT_DYNAMIC:
				t.Error("the binary has a PT_DYNAMIC program header: it is dynamically linked")
			}
		}
		for _, s := range []string{".interp", ".dynamic", ".symtab", ".debug_info", ".zdebug_info"} {
			if f.Section(s) != nil {
				t.Errorf("the binary has a %s section (want static, built with -s -w)", s)
			}
		}
		f.Close()
	} else {
		t.Logf("%s: the ELF checks only run on linux", runtime.GOOS)
	}

	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	// (-ldflags is not recorded with -trimpath; -version below proves -X.)
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings %v: want CGO_ENABLED=0 and -trimpath", settings)
	}
	if bi.Path != "github.com/rivet-gateway/rivet-gateway/cmd/rivet-gateway" {
		t.Errorf("built %s", bi.Path)
	}

	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "rivet-gateway "+testVersion {
		t.Errorf("-version: %q, %v; want %q", out, err, "rivet-gateway "+testVersion)
	}

	df := mustDockerfile(t)
	for _, name := range patternNames {
		t.Run(name, func(t *testing.T) { checkBinaryOn(t, bin, mustPattern(t, name), df) })
	}
	ch := mustChart(t)
	for _, vs := range chartSets {
		t.Run("chart/"+vs.name, func(t *testing.T) { checkBinaryOn(t, bin, mustChartPattern(t, ch, vs), df) })
	}
}

// checkBinaryOn runs `rivet-gateway -check` on the pattern's config with
// exactly the gateway container's env, and without it.
func checkBinaryOn(t *testing.T, bin string, p *pattern, df *dockerfile) {
	t.Helper()
	v, err := resolveGateway(p, df, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	run := func(env map[string]string) (string, error) {
		cmd := exec.Command(bin, "-check", "-config", v.localPath)
		cmd.Env = []string{}
		for k, val := range env {
			cmd.Env = append(cmd.Env, k+"="+val)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(v.env)
	if err != nil || !strings.Contains(out, "configuration is valid") {
		t.Errorf("rivet-gateway -check with the container's env: %v\n%s", err, out)
	}
	// Without the env the Deployment provides, it must fail: the check
	// above depends on it. (A config that takes nothing from the
	// environment has nothing to drop.)
	if len(v.env) > 0 {
		out, err = run(nil)
		named := false
		for k := range v.env {
			named = named || strings.Contains(out, k)
		}
		if err == nil || !named {
			t.Errorf("rivet-gateway -check without env: %v, want a failure naming one of %v\n%s", err, slices.Collect(maps.Keys(v.env)), out)
		}
	}
}

// mutation is one drift a pattern check must catch.
type mutation struct {
	name    string
	pattern string
	config  [2]string // replace in config.yaml (old, new)
	docker  [2]string // replace in the Dockerfile
	mutate  func(p *pattern)
	want    string
}

func gw(p *pattern) *corev1.Container     { return p.container(gatewayContainer) }
func engine(p *pattern) *corev1.Container { return p.container("engine") }
func podSpec(p *pattern) *corev1.PodSpec  { return &p.deploy.Spec.Template.Spec }
func setEnv(c *corev1.Container, name, val string) {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	c.Env[i].Value = val
}

// TestChecksCatchDrift: every check can fail. Each mutation of a real
// pattern (its objects, its config.yaml, or the Dockerfile) must be
// reported with the expected problem.
func TestChecksCatchDrift(t *testing.T) {
	cases := []mutation{
		// Shutdown timing.
		{name: "grace below drain+shutdown", pattern: "standalone", mutate: func(p *pattern) { podSpec(p).TerminationGracePeriodSeconds = ptrTo[int64](30) }, want: "drain: terminationGracePeriodSeconds"},
		{name: "shutdown_timeout grows", pattern: "standalone", config: [2]string{"shutdown_timeout: 30s", "shutdown_timeout: 60s"}, want: "drain: terminationGracePeriodSeconds"},
		{name: "no drain delay", pattern: "sidecar", config: [2]string{"drain_delay: 5s", "drain_delay: 0s"}, want: "server.drain_delay is 0s"},
		{name: "engine preStop too short", pattern: "sidecar", mutate: func(p *pattern) { engine(p).Lifecycle.PreStop.Sleep.Seconds = 20 }, want: "preStop sleep 20s"},
		{name: "engine preStop not a sleep", pattern: "sidecar", mutate: func(p *pattern) {
			engine(p).Lifecycle.PreStop = &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sleep", "40"}}}
		}, want: "must be a sleep action"},
		{name: "engine outlives grace", pattern: "sidecar", mutate: func(p *pattern) { engine(p).Lifecycle.PreStop.Sleep.Seconds = 70 }, want: "after its preStop sleep"},
		// Ports, probes, metrics.
		{name: "public port drift", pattern: "sidecar", config: [2]string{`listen: ":8080"`, `listen: ":8081"`}, want: "container port http is 8080"},
		{name: "admin on loopback", pattern: "standalone", config: [2]string{`listen: ":9090"`, `listen: "127.0.0.1:9090"`}, want: "listens on 127.0.0.1 only"},
		{name: "admin port drift", pattern: "standalone", config: [2]string{`listen: ":9090"`, `listen: ":9091"`}, want: "container port admin is 9090"},
		{name: "liveness on readyz", pattern: "sidecar", mutate: func(p *pattern) { gw(p).LivenessProbe.HTTPGet.Path = "/readyz" }, want: "liveness probe path"},
		{name: "readiness on the public port", pattern: "standalone", mutate: func(p *pattern) { gw(p).ReadinessProbe.HTTPGet.Port = intstr.FromString("http") }, want: "readiness probe port"},
		{name: "readiness probe times out first", pattern: "standalone", mutate: func(p *pattern) { gw(p).ReadinessProbe.TimeoutSeconds = 2 }, want: "must exceed admin.readiness_timeout"},
		{name: "no readiness probe", pattern: "sidecar", mutate: func(p *pattern) { gw(p).ReadinessProbe = nil }, want: "no readiness probe"},
		{name: "scrape port", pattern: "sidecar", mutate: func(p *pattern) { p.deploy.Spec.Template.Annotations["prometheus.io/port"] = "8080" }, want: "prometheus.io/port"},
		{name: "metrics path drift", pattern: "standalone", config: [2]string{"path: /metrics", "path: /prom"}, want: "prometheus.io/path"},
		{name: "ServiceMonitor path", pattern: "sidecar", mutate: func(p *pattern) { p.monitors[0].Spec.Endpoints[0].Path = "/metric" }, want: "servicemonitor: ServiceMonitor rivet-gateway endpoint path"},
		{name: "ServiceMonitor port", pattern: "sidecar", mutate: func(p *pattern) { p.monitors[0].Spec.Endpoints[0].Port = "admin" }, want: "has no port \"admin\""},
		// Files and mounts.
		{name: "subPath mount", pattern: "sidecar", mutate: func(p *pattern) { gw(p).VolumeMounts[1].SubPath = "jwt-secret" }, want: "uses subPath"},
		{name: "writable secret mount", pattern: "standalone", mutate: func(p *pattern) { gw(p).VolumeMounts[1].ReadOnly = false }, want: "must be readOnly"},
		{name: "secret file outside the mounts", pattern: "sidecar", config: [2]string{"secret_file: /var/run/secrets/rivet-gateway/jwt-secret", "secret_file: /etc/jwt/secret"}, want: "/etc/jwt/secret: no such file"},
		{name: "api keys file not projected", pattern: "standalone", config: [2]string{"rivet-gateway/api-keys.yaml", "rivet-gateway/keys.yaml"}, want: `keys.yaml: no such file`},
		{name: "secret item dropped", pattern: "sidecar", mutate: func(p *pattern) { p.volume("secrets").Secret.Items = p.volume("secrets").Secret.Items[1:] }, want: `jwt-secret: no such file`},
		{name: "params header file not projected", pattern: "standalone", mutate: func(p *pattern) {
			items := p.volume("secrets").Secret.Items
			p.volume("secrets").Secret.Items = items[:len(items)-1]
		}, want: `params-authorization: no such file`},
		{name: "secret key removed", pattern: "standalone", mutate: func(p *pattern) { delete(p.secrets["rivet-gateway-secrets"].StringData, "jwt-secret") }, want: `no key "jwt-secret"`},
		{name: "config path moved in the image", pattern: "sidecar", docker: [2]string{"/etc/rivet-gateway/config.yaml", "/config/config.yaml"}, want: "not in a ConfigMap volume mount"},
		// Env and secrets.
		{name: "env var removed", pattern: "sidecar", mutate: func(p *pattern) { gw(p).Env = gw(p).Env[1:] }, want: "RIVET_TOKEN is not set"},
		{name: "env secret key typo", pattern: "sidecar", mutate: func(p *pattern) { gw(p).Env[0].ValueFrom.SecretKeyRef.Key = "rivet-tokn" }, want: `has no key "rivet-tokn"`},
		{name: "token in the ConfigMap", pattern: "standalone", config: [2]string{`token_file: /var/run/secrets/rivet-gateway/rivet-token`, `token: "rvt_live_abc"`}, want: "upstream.token is written in the ConfigMap"},
		{name: "secret committed", pattern: "sidecar", mutate: func(p *pattern) {
			p.secrets["rivet-gateway-secrets"].StringData["params-authorization"] = "Bearer hunter2"
		}, want: "placeholders"},
		// Upstream wiring.
		{name: "upstream not the engine", pattern: "sidecar", config: [2]string{"http://127.0.0.1:6420", "http://127.0.0.1:6421"}, want: "not the engine container's guard address"},
		{name: "engine on all interfaces", pattern: "sidecar", mutate: func(p *pattern) { setEnv(engine(p), "RIVET__GUARD__HOST", "0.0.0.0") }, want: "not loopback"},
		{name: "hosted engine over http", pattern: "standalone", config: [2]string{"https://api.rivet.dev", "http://api.rivet.dev"}, want: "must be reached over https"},
		// Services.
		{name: "service targets admin", pattern: "standalone", mutate: func(p *pattern) { p.services[0].Spec.Ports[0].TargetPort = intstr.FromString("admin") }, want: "only the public port"},
		{name: "service targets the engine", pattern: "sidecar", mutate: func(p *pattern) {
			engine(p).Ports = []corev1.ContainerPort{{Name: "guard", ContainerPort: 6420}}
			p.services[0].Spec.Ports[0].TargetPort = intstr.FromString("guard")
		}, want: "exposes container engine"},
		{name: "service selector drift", pattern: "sidecar", mutate: func(p *pattern) { p.services[0].Spec.Selector["app.kubernetes.io/instance"] = "sidecr" }, want: "selects no pod"},
		{name: "LoadBalancer", pattern: "standalone", mutate: func(p *pattern) { p.services[0].Spec.Type = corev1.ServiceTypeLoadBalancer }, want: "type LoadBalancer"},
		// Security.
		{name: "root allowed", pattern: "sidecar", mutate: func(p *pattern) {
			podSpec(p).SecurityContext.RunAsNonRoot = ptrTo(false)
			engine(p).SecurityContext.RunAsNonRoot = nil
		}, want: "container engine: runAsNonRoot must be true"},
		{name: "writable root filesystem", pattern: "standalone", mutate: func(p *pattern) { gw(p).SecurityContext.ReadOnlyRootFilesystem = ptrTo(false) }, want: "readOnlyRootFilesystem"},
		{name: "privilege escalation", pattern: "sidecar", mutate: func(p *pattern) { engine(p).SecurityContext.AllowPrivilegeEscalation = nil }, want: "allowPrivilegeEscalation"},
		{name: "capabilities kept", pattern: "standalone", mutate: func(p *pattern) { gw(p).SecurityContext.Capabilities.Drop = nil }, want: "capabilities"},
		{name: "no seccomp", pattern: "standalone", mutate: func(p *pattern) { podSpec(p).SecurityContext.SeccompProfile = nil }, want: "seccompProfile"},
		{name: "uid differs from the image", pattern: "standalone", mutate: func(p *pattern) { gw(p).SecurityContext.RunAsUser = ptrTo[int64](1000) }, want: "want the image's USER"},
		{name: "image USER drift", pattern: "sidecar", docker: [2]string{"USER 65532:65532", "USER 65534:65534"}, want: "want the image's USER"},
		{name: "service links", pattern: "standalone", mutate: func(p *pattern) { podSpec(p).EnableServiceLinks = nil }, want: "enableServiceLinks"},
		{name: "no memory limit", pattern: "sidecar", mutate: func(p *pattern) { delete(gw(p).Resources.Limits, corev1.ResourceMemory) }, want: "memory needs a request and a limit"},
		{name: "engine image unpinned", pattern: "sidecar", mutate: func(p *pattern) { engine(p).Image = "rivetdev/engine:latest" }, want: "not pinned"},
		// Availability.
		{name: "two engines on one volume", pattern: "sidecar", mutate: func(p *pattern) { p.deploy.Spec.Replicas = ptrTo[int32](2) }, want: "ReadWriteOnce"},
		{name: "single gateway", pattern: "standalone", mutate: func(p *pattern) { p.deploy.Spec.Replicas = ptrTo[int32](1) }, want: "runs 1 replica"},
		{name: "PDB blocks drains", pattern: "standalone", mutate: func(p *pattern) {
			p.pdbs[0].Spec.MaxUnavailable = nil
			p.pdbs[0].Spec.MinAvailable = ptrTo(intstr.FromInt32(2))
		}, want: "allows no disruption"},
		{name: "no PDB", pattern: "standalone", mutate: func(p *pattern) { p.pdbs = nil }, want: "without a PodDisruptionBudget"},
		{name: "no spread", pattern: "standalone", mutate: func(p *pattern) { podSpec(p).TopologySpreadConstraints = nil }, want: "without pod anti-affinity"},
	}
	_, dockerText, err := readDockerfile()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.pattern+"/"+tc.name, func(t *testing.T) {
			text := dockerText
			if tc.docker[0] != "" {
				text = replaceOnce(t, "Dockerfile", text, tc.docker)
			}
			df, err := parseDockerfile(text)
			if err != nil {
				t.Fatal(err)
			}
			p := mustPattern(t, tc.pattern)
			if tc.config[0] != "" {
				cm := p.configMaps["rivet-gateway-config"]
				cm.Data["config.yaml"] = replaceOnce(t, "config.yaml", cm.Data["config.yaml"], tc.config)
			}
			if tc.mutate != nil {
				tc.mutate(p)
			}
			v, err := resolveGateway(p, df, t.TempDir(), true)
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				errs = checkPattern(p, v, df)
			}
			expectError(t, errs, tc.want)
		})
	}
}

func replaceOnce(t *testing.T, what, s string, r [2]string) string {
	t.Helper()
	out := strings.Replace(s, r[0], r[1], 1)
	if out == s {
		t.Fatalf("%s has no %q to mutate", what, r[0])
	}
	return out
}

// TestKustomizeBuild runs the real kustomize (kubectl kustomize) when
// kubectl is installed: each pattern builds, with and without the
// monitoring component, into exactly the objects the tests above checked,
// every one of which decodes strictly.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: the kustomize build itself is not checked (the tests above read the kustomizations themselves)")
	}
	for _, name := range patternNames {
		for _, withMonitoring := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/monitoring=%v", name, withMonitoring), func(t *testing.T) {
				dir, err := filepath.Abs(filepath.Join(kubeDir, name))
				if err != nil {
					t.Fatal(err)
				}
				args := []string{"kustomize", dir}
				var comps []string
				if withMonitoring {
					comps = []string{monitoringComponent}
					comp, err := filepath.Abs(filepath.Join(kubeDir, filepath.FromSlash(monitoringComponent)))
					if err != nil {
						t.Fatal(err)
					}
					// kustomize takes only relative paths.
					overlay := t.TempDir()
					relDir, err1 := filepath.Rel(overlay, dir)
					relComp, err2 := filepath.Rel(overlay, comp)
					if err := errors.Join(err1, err2); err != nil {
						t.Fatal(err)
					}
					k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s\n", filepath.ToSlash(relDir), filepath.ToSlash(relComp))
					if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o600); err != nil {
						t.Fatal(err)
					}
					args = []string{"kustomize", "--load-restrictor", "LoadRestrictionsNone", overlay}
				}
				var stderr bytes.Buffer
				cmd := exec.Command(kubectl, args...)
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
				}
				objs, err := decodeFile("kustomize build", out)
				if err != nil {
					t.Fatal(err)
				}
				b, err := loadBundle(name, comps...)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := objectIDs(objs), objectIDs(b.objs); !slices.Equal(got, want) {
					t.Errorf("kustomize built %v, the tests checked %v", got, want)
				}
				// The images transformer, as the tests model it.
				p := mustPattern(t, name)
				for _, o := range objs {
					if d, ok := o.v.(*appsv1.Deployment); ok {
						if got, want := containerImages(d), containerImages(p.deploy); !slices.Equal(got, want) {
							t.Errorf("kustomize images %v, the tests checked %v", got, want)
						}
					}
				}
			})
		}
	}
}

func objectIDs(objs []object) []string {
	var ids []string
	for _, o := range objs {
		ids = append(ids, o.kind+"/"+o.name)
	}
	sort.Strings(ids)
	return ids
}

func containerImages(d *appsv1.Deployment) []string {
	var out []string
	for _, c := range d.Spec.Template.Spec.Containers {
		out = append(out, c.Name+"="+c.Image)
	}
	return out
}

// ptrTo returns a pointer to v.
func ptrTo[T any](v T) *T { return &v }
