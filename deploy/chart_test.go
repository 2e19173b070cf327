package deploy_test

import (
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rivet-gateway/rivet-gateway/config"
	"github.com/rivet-gateway/rivet-gateway/gateway"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// The operator's own Secret, as the existing-secret values sets model it:
// the keys the examples name, placeholders as values.
var operatorSecret = map[string]string{
	"jwt-secret":           placeholder,
	"api-keys.yaml":        "# " + placeholder + "\n[]\n",
	"rivet-token":          placeholder,
	"params-authorization": "Bearer " + placeholder,
}

// chartSets are the values sets every chart test renders: the two
// examples (ci/*-values.yaml, which must agree with the kustomize
// patterns), and the examples with monitoring, autoscaling, a Secret made
// out of band and the NetworkPolicy switched about.
var chartSets = []valuesSet{
	{name: "sidecar", mode: "sidecar", files: []string{"ci/sidecar-values.yaml"}},
	{name: "standalone", mode: "standalone", files: []string{"ci/standalone-values.yaml"}},
	{name: "sidecar-monitoring", files: []string{"ci/sidecar-values.yaml"}, overlay: `
metrics:
  scrapeAnnotations: false
  serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
networkPolicy:
  clients:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}
`},
	{name: "standalone-monitoring", files: []string{"ci/standalone-values.yaml"}, overlay: `
metrics:
  serviceMonitor: {enabled: true}
  podMonitor: {enabled: true, interval: 15s}
config:
  metrics: {path: /prometheus}
`},
	{name: "standalone-hpa", files: []string{"ci/standalone-values.yaml"}, existingSecret: operatorSecret, overlay: `
standalone:
  autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 12}
secrets:
  existingSecret: rivet-gateway-operator
  values: null
  files: []
config:
  server: {listen: ":8443", drain_delay: 10s, shutdown_timeout: 1m}
  admin: {listen: "0.0.0.0:9191", readiness_timeout: 4s}
  upstream: {max_request_body_bytes: 16777216}
  actors: {cache_size: 100000}
  tracing: {enabled: true, endpoint: "http://otel-collector.observability:4318", headers: {x-api-key: "${OTLP_KEY}"}}
extraEnv:
  - name: OTLP_KEY
    valueFrom: {secretKeyRef: {name: rivet-gateway-operator, key: rivet-token}}
`},
	{name: "standalone-no-networkpolicy", files: []string{"ci/standalone-values.yaml"}, overlay: `
networkPolicy: {enabled: false}
standalone:
  replicas: 3
  podDisruptionBudget: {maxUnavailable: 2}
`},
}

// chartKinds are the objects each values set must render, by
// apiVersion/kind and name.
var chartKinds = map[string][]string{
	"sidecar":                     {"apps/v1/Deployment/edge-rivet-gateway", "networking.k8s.io/v1/NetworkPolicy/edge-rivet-gateway", "v1/ConfigMap/edge-rivet-gateway-config", "v1/PersistentVolumeClaim/edge-rivet-gateway-engine-data", "v1/Secret/edge-rivet-gateway", "v1/Service/edge-rivet-gateway"},
	"standalone":                  {"apps/v1/Deployment/edge-rivet-gateway", "networking.k8s.io/v1/NetworkPolicy/edge-rivet-gateway", "policy/v1/PodDisruptionBudget/edge-rivet-gateway", "v1/ConfigMap/edge-rivet-gateway-config", "v1/Secret/edge-rivet-gateway", "v1/Service/edge-rivet-gateway"},
	"sidecar-monitoring":          {"apps/v1/Deployment/edge-rivet-gateway", "monitoring.coreos.com/v1/ServiceMonitor/edge-rivet-gateway", "networking.k8s.io/v1/NetworkPolicy/edge-rivet-gateway", "v1/ConfigMap/edge-rivet-gateway-config", "v1/PersistentVolumeClaim/edge-rivet-gateway-engine-data", "v1/Secret/edge-rivet-gateway", "v1/Service/edge-rivet-gateway", "v1/Service/edge-rivet-gateway-metrics"},
	"standalone-monitoring":       {"apps/v1/Deployment/edge-rivet-gateway", "monitoring.coreos.com/v1/PodMonitor/edge-rivet-gateway", "monitoring.coreos.com/v1/ServiceMonitor/edge-rivet-gateway", "networking.k8s.io/v1/NetworkPolicy/edge-rivet-gateway", "policy/v1/PodDisruptionBudget/edge-rivet-gateway", "v1/ConfigMap/edge-rivet-gateway-config", "v1/Secret/edge-rivet-gateway", "v1/Service/edge-rivet-gateway", "v1/Service/edge-rivet-gateway-metrics"},
	"standalone-hpa":              {"apps/v1/Deployment/edge-rivet-gateway", "autoscaling/v2/HorizontalPodAutoscaler/edge-rivet-gateway", "networking.k8s.io/v1/NetworkPolicy/edge-rivet-gateway", "policy/v1/PodDisruptionBudget/edge-rivet-gateway", "v1/ConfigMap/edge-rivet-gateway-config", "v1/Service/edge-rivet-gateway"},
	"standalone-no-networkpolicy": {"apps/v1/Deployment/edge-rivet-gateway", "policy/v1/PodDisruptionBudget/edge-rivet-gateway", "v1/ConfigMap/edge-rivet-gateway-config", "v1/Secret/edge-rivet-gateway", "v1/Service/edge-rivet-gateway"},
}

func mustChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loadChart()
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return ch
}

func mustChartPattern(t *testing.T, ch *chart.Chart, vs valuesSet) *pattern {
	t.Helper()
	p, err := loadChartPattern(ch, vs)
	if err != nil {
		t.Fatalf("values set %s: %v", vs.name, err)
	}
	return p
}

// TestChartLint is `helm lint --strict` of the chart with each values set.
func TestChartLint(t *testing.T) {
	for _, vs := range chartSets {
		t.Run(vs.name, func(t *testing.T) {
			vals, err := chartValues(vs)
			if err != nil {
				t.Fatal(err)
			}
			if err := lintChart(vals); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestChart renders the chart with each values set, decodes every object
// strictly into its API type, and runs on the result every check the
// kustomize patterns get (TestPatterns): the ConfigMap's config loads with
// the pod's env and files through gateway.LoadConfig, and ports, probes,
// metrics, mounts, drain timing, Services, security, availability,
// autoscaling and the NetworkPolicy agree with it; then the real admin
// handler answers every probed and scraped path.
func TestChart(t *testing.T) {
	ch := mustChart(t)
	df := mustDockerfile(t)
	for _, vs := range chartSets {
		t.Run(vs.name, func(t *testing.T) {
			p := mustChartPattern(t, ch, vs)
			vals, err := chartValues(vs)
			if err != nil {
				t.Fatal(err)
			}
			manifest, err := renderChart(ch, vals, chartKubeVersion)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decodeRender(vs.name, manifest)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.kind+"/"+o.name)
			}
			sort.Strings(got)
			if want := chartKinds[vs.name]; !slices.Equal(got, want) {
				t.Errorf("rendered %v\nwant %v", got, want)
			}

			v, err := resolveGateway(p, df, t.TempDir(), true)
			if err != nil {
				t.Fatalf("the pod's gateway config does not load: %v\n%s", err, v.configText)
			}
			for _, err := range checkPattern(p, v, df) {
				t.Error(err)
			}
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
			checkChartExtras(t, vs, p, v)
		})
	}
}

// checkChartExtras checks what a values set asks for beyond the common
// checks.
func checkChartExtras(t *testing.T, vs valuesSet, p *pattern, v *gatewayView) {
	t.Helper()
	gw := v.container
	switch vs.name {
	case "standalone-hpa":
		// The listens, timings and Secret of the overlay reach the pod.
		if cp := namedPort(gw, publicPortName); cp == nil || cp.ContainerPort != 8443 {
			t.Errorf("public port %v, want 8443 from server.listen", cp)
		}
		if cp := namedPort(gw, adminPortName); cp == nil || cp.ContainerPort != 9191 {
			t.Errorf("admin port %v, want 9191 from admin.listen", cp)
		}
		if g := podSpec(p).TerminationGracePeriodSeconds; g == nil || *g != 10+60+10 {
			t.Errorf("terminationGracePeriodSeconds %v, want drain 10s + shutdown 1m + 10s", g)
		}
		if got := gw.ReadinessProbe.TimeoutSeconds; got != 5 {
			t.Errorf("readiness timeoutSeconds %d, want admin.readiness_timeout 4s + 1", got)
		}
		if got := v.cfg.Upstream.MaxRequestBodyBytes; got != 16777216 {
			t.Errorf("upstream.max_request_body_bytes %d after Helm's float64 values, want 16777216", got)
		}
		if p.volume("secrets").Secret.SecretName != "rivet-gateway-operator" || p.volume("secrets").Secret.Items != nil {
			t.Errorf("secrets volume %+v: want the whole existing Secret", p.volume("secrets").Secret)
		}
		if r := replicas(p); r != 3 {
			t.Errorf("%d replicas, want the HPA's minReplicas 3", r)
		}
	case "standalone-monitoring", "sidecar-monitoring":
		if len(p.monitors) == 0 {
			t.Error("no ServiceMonitor")
		}
		_, annotated := p.deploy.Spec.Template.Annotations["prometheus.io/scrape"]
		if want := vs.name == "standalone-monitoring"; annotated != want {
			t.Errorf("prometheus.io/scrape annotation present %v, want %v", annotated, want)
		}
	}
	if vs.mode == "sidecar" || strings.HasPrefix(vs.name, "sidecar") {
		if p.deploy.Spec.Replicas == nil || *p.deploy.Spec.Replicas != 1 {
			t.Error("sidecar: want exactly 1 replica")
		}
	}
}

// TestChartAgreesWithKustomize: the chart with an example values file
// deploys what the kustomize pattern of the same name does: the same
// gateway configuration, and the same pod, containers, probes, security,
// resources, timings, mounts, Secret keys, Service and PDB, names and
// labels aside.
func TestChartAgreesWithKustomize(t *testing.T) {
	ch := mustChart(t)
	df := mustDockerfile(t)
	for _, vs := range chartSets {
		if vs.mode == "" {
			continue
		}
		t.Run(vs.name, func(t *testing.T) {
			hp := mustChartPattern(t, ch, vs)
			kp := mustPattern(t, vs.mode)
			hv, err := resolveGateway(hp, df, t.TempDir(), true)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := resolveGateway(kp, df, t.TempDir(), true)
			if err != nil {
				t.Fatal(err)
			}
			// The configuration, as the gateway decodes it (not the text:
			// the chart renders it from values, sorted).
			decode := func(v *gatewayView) gateway.Config {
				cfg := gateway.DefaultConfig()
				if err := config.Decode([]byte(v.configText), &cfg, lookupIn(v.env)); err != nil {
					t.Fatal(err)
				}
				return cfg
			}
			if h, k := decode(hv), decode(kv); !reflect.DeepEqual(h, k) {
				t.Errorf("the gateway config differs:\nchart:\n%s\nkustomize:\n%s", hv.configText, kv.configText)
			}
			if !reflect.DeepEqual(hv.env, kv.env) {
				t.Errorf("gateway env: chart %v, kustomize %v", hv.env, kv.env)
			}
			if !reflect.DeepEqual(hv.files, kv.files) {
				t.Errorf("referenced files: chart %v, kustomize %v", hv.files, kv.files)
			}

			hs, ks := podSpec(hp), podSpec(kp)
			same := func(what string, h, k any) {
				t.Helper()
				if !equality.Semantic.DeepEqual(h, k) {
					t.Errorf("%s differs:\nchart     %+v\nkustomize %+v", what, h, k)
				}
			}
			same("terminationGracePeriodSeconds", hs.TerminationGracePeriodSeconds, ks.TerminationGracePeriodSeconds)
			same("pod securityContext", hs.SecurityContext, ks.SecurityContext)
			same("automountServiceAccountToken", hs.AutomountServiceAccountToken, ks.AutomountServiceAccountToken)
			same("enableServiceLinks", hs.EnableServiceLinks, ks.EnableServiceLinks)
			same("replicas", hp.deploy.Spec.Replicas, kp.deploy.Spec.Replicas)
			same("strategy", hp.deploy.Spec.Strategy, kp.deploy.Spec.Strategy)
			same("topology spread", spreadKeys(hs), spreadKeys(ks))
			if len(hs.Containers) != len(ks.Containers) {
				t.Fatalf("%d containers, kustomize %d", len(hs.Containers), len(ks.Containers))
			}
			for i := range ks.Containers {
				h, k := hs.Containers[i], ks.Containers[i]
				// Names differ by release (Secret, ConfigMap), and the
				// image by the images: transformer vs values.
				h.Image, k.Image = imageName(h.Image), imageName(k.Image)
				h.Env, k.Env = envShape(h.Env), envShape(k.Env)
				same("container "+k.Name, h, k)
			}
			same("volumes", volumeShape(hs.Volumes), volumeShape(ks.Volumes))
			same("Service ports", hp.services[0].Spec.Ports, kp.services[0].Spec.Ports)
			same("Service type", hp.services[0].Spec.Type, kp.services[0].Spec.Type)
			if len(hp.pdbs) != len(kp.pdbs) {
				t.Errorf("%d PDBs, kustomize %d", len(hp.pdbs), len(kp.pdbs))
			} else if len(kp.pdbs) > 0 {
				same("PDB maxUnavailable", hp.pdbs[0].Spec.MaxUnavailable, kp.pdbs[0].Spec.MaxUnavailable)
			}
			for _, pvc := range kp.pvcs {
				for _, h := range hp.pvcs {
					same("PersistentVolumeClaim spec", h.Spec, pvc.Spec)
				}
			}
			if len(hp.pvcs) != len(kp.pvcs) {
				t.Errorf("%d PersistentVolumeClaims, kustomize %d", len(hp.pvcs), len(kp.pvcs))
			}
			hk, kk := hp.secretKeysOf(hp.volume("secrets")), kp.secretKeysOf(kp.volume("secrets"))
			same("Secret keys", hk, kk)
		})
	}
}

// spreadKeys is what the topology spread constraints spread over.
func spreadKeys(s *corev1.PodSpec) []string {
	var out []string
	for _, c := range s.TopologySpreadConstraints {
		out = append(out, c.TopologyKey+"/"+string(c.WhenUnsatisfiable)+"/"+strings.Join(c.MatchLabelKeys, ","))
	}
	return out
}

// envShape is an env list with Secret and ConfigMap names blanked (they
// are the release's), sorted.
func envShape(env []corev1.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env))
	for _, e := range env {
		e = *e.DeepCopy()
		if vf := e.ValueFrom; vf != nil && vf.SecretKeyRef != nil {
			vf.SecretKeyRef.Name = ""
		}
		if vf := e.ValueFrom; vf != nil && vf.ConfigMapKeyRef != nil {
			vf.ConfigMapKeyRef.Name = ""
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// volumeShape is a volume list with object names blanked and Secret items
// sorted.
func volumeShape(vols []corev1.Volume) []corev1.Volume {
	out := make([]corev1.Volume, 0, len(vols))
	for _, v := range vols {
		v = *v.DeepCopy()
		switch {
		case v.ConfigMap != nil:
			v.ConfigMap.Name = ""
		case v.Secret != nil:
			v.Secret.SecretName = ""
			sort.Slice(v.Secret.Items, func(i, j int) bool { return v.Secret.Items[i].Key < v.Secret.Items[j].Key })
		case v.PersistentVolumeClaim != nil:
			v.PersistentVolumeClaim.ClaimName = ""
		}
		out = append(out, v)
	}
	return out
}

// secretKeysOf lists the keys of the Secret behind a volume.
func (p *pattern) secretKeysOf(vol *corev1.Volume) []string {
	if vol == nil || vol.Secret == nil {
		return nil
	}
	return p.secretKeys(vol.Secret.SecretName)
}

// TestChartPlaceholdersAreRefused: installed with an example values file
// as it is (REPLACE_ME in every Secret value), the gateway must not start.
func TestChartPlaceholdersAreRefused(t *testing.T) {
	ch := mustChart(t)
	df := mustDockerfile(t)
	for _, vs := range chartSets {
		t.Run(vs.name, func(t *testing.T) {
			p := mustChartPattern(t, ch, vs)
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

// TestChartRefuses: values a `helm install` must refuse, each with a
// message that names the value.
func TestChartRefuses(t *testing.T) {
	ch := mustChart(t)
	cases := []struct {
		name, base, overlay, kube, want string
	}{
		{name: "misspelled value", base: "standalone", overlay: "standalone: {replica: 3}", want: "replica"},
		{name: "misspelled section", base: "standalone", overlay: "networkpolicy: {enabled: false}", want: "networkpolicy"},
		{name: "unknown mode", base: "standalone", overlay: "mode: sidecars", want: "mode"},
		{name: "no auth (chart defaults)", want: "auth"},
		{name: "sidecar with an HPA", base: "sidecar", overlay: "standalone: {autoscaling: {enabled: true}}", want: "sidecar pattern runs one pod"},
		{name: "sidecar upstream elsewhere", base: "sidecar", overlay: "config: {upstream: {url: 'https://api.rivet.dev'}}", want: "config.upstream.url"},
		{name: "listen from env", base: "standalone", overlay: "config: {server: {listen: '${GATEWAY_LISTEN:-:8080}'}}", want: "config.server.listen"},
		{name: "admin listener off", base: "standalone", overlay: "config: {admin: {listen: ''}}", want: "config.admin.listen"},
		{name: "drain in milliseconds", base: "standalone", overlay: "config: {server: {drain_delay: 500ms}}", want: "config.server.drain_delay"},
		{name: "secret value missing", base: "standalone", overlay: "secrets: {values: {params-authorization: null}}", want: "secrets.values.params-authorization"},
		{name: "HPA of one", base: "standalone", overlay: "standalone: {autoscaling: {enabled: true, minReplicas: 1}}", want: "minReplicas"},
		{name: "monitor without metrics", base: "standalone", overlay: "metrics: {podMonitor: {enabled: true}}\nconfig: {metrics: {enabled: false}}", want: "config.metrics.enabled"},
		{name: "empty scraper peer", base: "standalone", overlay: "networkPolicy: {metricsScrapers: [{}]}", want: "metricsScrapers"},
		{name: "Kubernetes 1.29", base: "sidecar", kube: "v1.29.9", want: "kubeVersion"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vs := valuesSet{name: tc.name, overlay: tc.overlay}
			if tc.base != "" {
				vs.files = []string{"ci/" + tc.base + "-values.yaml"}
			}
			vals, err := chartValues(vs)
			if err != nil {
				t.Fatal(err)
			}
			kube := chartKubeVersion
			if tc.kube != "" {
				kube = tc.kube
			}
			_, err = renderChart(ch, vals, kube)
			if err == nil {
				t.Fatalf("rendered without error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestChartLongNames: with the longest name a release can have, every
// object name stays valid (a Service name is a DNS label of 63 characters,
// suffixes included).
func TestChartLongNames(t *testing.T) {
	ch := mustChart(t)
	vs := chartSet(t, "standalone-monitoring")
	vs.overlay += "\nfullnameOverride: " + strings.Repeat("a", 62) + "b\n"
	p := mustChartPattern(t, ch, vs)
	if len(p.services) != 2 {
		t.Fatalf("%d Services, want the public and the metrics one", len(p.services))
	}
	for _, s := range p.services {
		t.Logf("Service %s (%d characters)", s.Name, len(s.Name))
	}
}

// TestChartRestartChecksum: the pod template changes (and an upgrade rolls
// the pods) exactly when a key the gateway only applies on restart
// changes; any other edit only changes the ConfigMap, which the running
// gateways reload.
func TestChartRestartChecksum(t *testing.T) {
	ch := mustChart(t)
	render := func(overlay string) (checksum, configText string) {
		t.Helper()
		p := mustChartPattern(t, ch, valuesSet{name: "checksum", files: []string{"ci/standalone-values.yaml"}, overlay: overlay})
		for _, cm := range p.configMaps {
			configText = cm.Data["config.yaml"]
		}
		return p.deploy.Spec.Template.Annotations["checksum/restart-config"], configText
	}
	base, baseConfig := render("")
	if base == "" {
		t.Fatal("no checksum/restart-config annotation")
	}
	for _, tc := range []struct {
		overlay string
		restart bool
	}{
		{"config: {cors: {allowed_origins: ['https://other.example.com']}}", false},
		{"config: {auth: {api_keys: {file_reload: 10s}}}", false},
		{"config: {params: {http: {timeout: 3s}}}", false},
		{"config: {server: {drain_delay: 6s}}", true},
		{"config: {server: {trusted_proxies: ['10.0.0.0/8']}}", true},
		{"config: {admin: {readiness_interval: 10s}}", true},
		{"config: {log: {level: debug}}", true},
		{"config: {log: {format: text}}", true},
		{"config: {metrics: {actor_names: [counter]}}", true},
		{"config: {tracing: {enabled: true, endpoint: 'http://otel:4318'}}", true},
	} {
		sum, text := render(tc.overlay)
		if text == baseConfig {
			t.Errorf("%s: the ConfigMap did not change", tc.overlay)
		}
		if changed := sum != base; changed != tc.restart {
			t.Errorf("%s: checksum changed %v, want %v (the gateway applies it on %s)", tc.overlay, changed, tc.restart, map[bool]string{true: "restart only", false: "reload"}[tc.restart])
		}
	}
}

// chartMutation is one drift of the chart a check must catch: a template
// edited (old -> new in the file), and/or a values overlay.
type chartMutation struct {
	name     string
	set      string // a chartSets name
	template string // under templates/
	old, new string
	overlay  string
	want     string
}

// TestChartChecksCatchDrift: every kind of check holds for the chart too.
// Each mutation of a real template (or of the values) renders, and the
// checks (or the strict decoding) must report it.
func TestChartChecksCatchDrift(t *testing.T) {
	cases := []chartMutation{
		{name: "misspelled field", set: "standalone", template: "deployment.yaml", old: "containerPort:", new: "containerPorts:", want: "unknown field"},
		{name: "subPath mount", set: "sidecar", template: "deployment.yaml", old: "mountPath: /etc/rivet-gateway\n", new: "mountPath: /etc/rivet-gateway\n              subPath: config.yaml\n", want: "uses subPath"},
		{name: "readiness on healthz", set: "standalone", template: "deployment.yaml", old: "path: /readyz", new: "path: /healthz", want: "readiness probe path"},
		{name: "readiness timeout fixed", set: "standalone-hpa", template: "deployment.yaml", old: "timeoutSeconds: {{ $t.readinessTimeout }}", new: "timeoutSeconds: 3", want: "must exceed admin.readiness_timeout"},
		{name: "grace fixed", set: "standalone-hpa", template: "deployment.yaml", old: "terminationGracePeriodSeconds: {{ $t.grace }}", new: "terminationGracePeriodSeconds: 45", want: "drain: terminationGracePeriodSeconds"},
		{name: "engine stops first", set: "sidecar", template: "_helpers.tpl", old: "$preStop := add $done 5", new: "$preStop := sub $done 5", want: "preStop sleep 30s"},
		{name: "admin port not derived", set: "standalone-hpa", template: "deployment.yaml", old: "containerPort: {{ $t.adminPort }}", new: "containerPort: 9090", want: "container port admin is 9090"},
		{name: "token file not projected", set: "standalone", template: "deployment.yaml", old: "{{- $files = append $files $secrets.tokenKey | uniq }}", new: "", want: "rivet-token: no such file"},
		{name: "no token default", set: "standalone", template: "_helpers.tpl", old: `{{- $hasToken := or (hasKey $up "token") (hasKey $up "token_file") -}}`, new: `{{- $hasToken := true -}}`, want: "upstream.token and token_file are empty"},
		{name: "service on the admin port", set: "standalone", template: "service.yaml", old: "targetPort: http", new: "targetPort: admin", want: "only the public port"},
		{name: "HPA target", set: "standalone-hpa", template: "hpa.yaml", old: "kind: Deployment\n    name: {{ include \"rivet-gateway.fullname\" . }}", new: "kind: Deployment\n    name: rivet-gateway", want: "not the Deployment"},
		{name: "replicas beside the HPA", set: "standalone-hpa", template: "deployment.yaml", old: "{{- if not .Values.standalone.autoscaling.enabled }}\n  replicas: {{ .Values.standalone.replicas }}\n  {{- end }}", new: "replicas: 2", want: "every upgrade would reset"},
		{name: "PodMonitor port", set: "standalone-monitoring", template: "podmonitor.yaml", old: "- port: admin", new: "- port: http", want: "is not the gateway's admin port"},
		{name: "PodMonitor path", set: "standalone-monitoring", template: "podmonitor.yaml", old: "path: {{ $t.metricsPath }}", new: "path: /metrics", want: "PodMonitor edge-rivet-gateway endpoint path"},
		{name: "ServiceMonitor path", set: "sidecar-monitoring", template: "servicemonitor.yaml", old: "path: {{ $t.metricsPath }}", new: "path: /metric", want: "ServiceMonitor edge-rivet-gateway endpoint path"},
		{name: "scrape annotation port", set: "standalone", template: "deployment.yaml", old: "prometheus.io/port: {{ $t.adminPort | quote }}", new: `prometheus.io/port: "8080"`, want: "prometheus.io/port"},
		{name: "admin open to all", set: "standalone", template: "networkpolicy.yaml", old: "      from:\n        {{- toYaml . | nindent 8 }}\n    {{- end }}\n{{- end }}", new: "    {{- end }}\n{{- end }}", want: "admits every source to the admin port"},
		{name: "admin in the clients' rule", set: "sidecar-monitoring", template: "networkpolicy.yaml", old: "        - port: http\n          protocol: TCP\n", new: "        - port: http\n          protocol: TCP\n        - port: admin\n          protocol: TCP\n", want: "both the public and the admin port"},
		{name: "policy on other pods", set: "standalone", template: "networkpolicy.yaml", old: "podSelector:\n    matchLabels:", new: "podSelector:\n    matchLabels:\n      app.kubernetes.io/component: metrics", want: "selects no pod"},
		{name: "rule for all ports", set: "standalone", template: "networkpolicy.yaml", old: "    - ports:\n        - port: http\n          protocol: TCP\n", new: "    - {}\n", want: "lists no ports"},
		{name: "scrapers from every namespace", set: "standalone", overlay: "networkPolicy: {metricsScrapers: [{namespaceSelector: {}}]}", want: "every pod of every namespace"},
		{name: "scrapers the whole namespace", set: "standalone", overlay: "networkPolicy: {metricsScrapers: [{podSelector: {}}]}", want: "every pod of the namespace"},
		{name: "scrapers anywhere", set: "standalone", overlay: "networkPolicy: {metricsScrapers: [{ipBlock: {cidr: 0.0.0.0/0}}]}", want: "every address"},
		{name: "scraped but closed", set: "standalone-monitoring", overlay: "networkPolicy: {metricsScrapers: []}", want: "no NetworkPolicy rule admits a scraper"},
		{name: "PDB blocks drains", set: "standalone", overlay: "standalone: {podDisruptionBudget: {maxUnavailable: 0}}", want: "allows no disruption"},
		{name: "single replica", set: "standalone", overlay: "standalone: {replicas: 1}", want: "runs 1 replica"},
		{name: "no spread", set: "standalone", overlay: "standalone: {topologySpread: false}", want: "without pod anti-affinity"},
		{name: "API key in the ConfigMap", set: "standalone", overlay: "config: {auth: {api_keys: {keys: [{id: backend, sha256: '" + strings.Repeat("a", 64) + "'}]}}}", want: "auth.api_keys.keys[0] (backend) is in the ConfigMap"},
		{name: "token in the ConfigMap", set: "standalone", overlay: "config: {upstream: {token: rvt_live_abc}}", want: "upstream.token is written in the ConfigMap"},
		{name: "secret file not mounted", set: "sidecar", overlay: "secrets: {files: [jwt-secret, api-keys.yaml]}", want: "params-authorization: no such file"},
		{name: "engine outlives grace", set: "sidecar", overlay: "sidecar: {engine: {shutdownSeconds: 5}}", want: "after its preStop sleep"},
		{name: "no memory limit", set: "standalone", overlay: "resources: {limits: {memory: null}}", want: "memory needs a request and a limit"},
		{name: "no drain delay", set: "standalone", overlay: "config: {server: {drain_delay: 0s}}", want: "server.drain_delay is 0s"},
	}
	for _, tc := range cases {
		t.Run(tc.set+"/"+tc.name, func(t *testing.T) {
			ch := mustChart(t)
			if tc.template != "" {
				f := templateFile(t, ch, tc.template)
				mutated := strings.Replace(string(f.Data), tc.old, tc.new, 1)
				if mutated == string(f.Data) {
					t.Fatalf("templates/%s has no %q to mutate", tc.template, tc.old)
				}
				f.Data = []byte(mutated)
			}
			vs := chartSet(t, tc.set)
			vs.overlay += "\n" + tc.overlay
			var errs []error
			p, err := loadChartPattern(ch, vs)
			if err != nil {
				errs = append(errs, err)
			} else {
				v, err := resolveGateway(p, mustDockerfile(t), t.TempDir(), true)
				if err != nil {
					errs = append(errs, err)
				} else {
					errs = checkPattern(p, v, mustDockerfile(t))
				}
			}
			expectError(t, errs, tc.want)
		})
	}
}

func templateFile(t *testing.T, ch *chart.Chart, name string) *common.File {
	t.Helper()
	for _, f := range ch.Templates {
		if f.Name == "templates/"+name {
			return f
		}
	}
	t.Fatalf("the chart has no templates/%s", name)
	return nil
}

func chartSet(t *testing.T, name string) valuesSet {
	t.Helper()
	i := slices.IndexFunc(chartSets, func(vs valuesSet) bool { return vs.name == name })
	if i < 0 {
		t.Fatalf("no values set %q", name)
	}
	return chartSets[i]
}
