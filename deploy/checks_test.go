package deploy_test

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rivet-gateway/rivet-gateway/gateway"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// drainMargin is the least time terminationGracePeriodSeconds leaves
// after a container's planned end (drain + shutdown, or a preStop sleep)
// before the SIGKILL.
const drainMargin = 10 * time.Second

// Paths of the gateway's admin listener the probes must use.
const (
	livenessPath  = "/healthz"
	readinessPath = "/readyz"
)

// checker collects problems, each prefixed with the area it concerns.
type checker struct{ errs []error }

func (c *checker) bad(area, format string, a ...any) {
	c.errs = append(c.errs, fmt.Errorf(area+": "+format, a...))
}

// checkPattern cross-checks a pattern's manifests against the gateway
// configuration they carry (v, loaded with the pod's env and files) and
// the Dockerfile. Every problem is returned.
func checkPattern(p *pattern, v *gatewayView, df *dockerfile) []error {
	c := &checker{}
	checkDeployment(c, p)
	checkSecurity(c, p, df)
	checkResources(c, p)
	checkPorts(c, p, v, df)
	checkProbes(c, v)
	checkAnnotations(c, p, v)
	checkMounts(c, p, v)
	checkDrain(c, p, v)
	checkUpstream(c, p, v)
	checkSecretsInConfig(c, v)
	checkServices(c, p, v)
	checkAvailability(c, p)
	checkMonitors(c, p, v)
	checkPodMonitors(c, p, v)
	checkAutoscalers(c, p)
	checkNetworkPolicies(c, p, v)
	checkPlaceholders(c, p)
	return c.errs
}

// replicas is how many pods the Deployment runs at least: its replicas,
// or the minReplicas of the HorizontalPodAutoscaler that owns the count.
func replicas(p *pattern) int32 {
	if r := p.deploy.Spec.Replicas; r != nil {
		return *r
	}
	for _, h := range p.hpas {
		if h.Spec.ScaleTargetRef.Name == p.deploy.Name && h.Spec.MinReplicas != nil {
			return *h.Spec.MinReplicas
		}
	}
	return 1 // the API default
}

func podLabels(p *pattern) labels.Set { return labels.Set(p.deploy.Spec.Template.Labels) }

// upstreams are the pod's containers other than the gateway.
func upstreams(p *pattern) []*corev1.Container {
	var out []*corev1.Container
	cs := p.deploy.Spec.Template.Spec.Containers
	for i := range cs {
		if cs[i].Name != gatewayContainer {
			out = append(out, &cs[i])
		}
	}
	return out
}

func checkDeployment(c *checker, p *pattern) {
	d := p.deploy
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	switch {
	case err != nil:
		c.bad("deployment", "selector: %v", err)
	case sel.Empty() || !sel.Matches(podLabels(p)):
		c.bad("deployment", "selector %v does not match the pod template labels %v", sel, podLabels(p))
	}
	seen := map[string]bool{}
	spec := &d.Spec.Template.Spec
	if len(spec.InitContainers) > 0 || len(spec.EphemeralContainers) > 0 {
		c.bad("deployment", "init/ephemeral containers are not modelled by these checks")
	}
	for i := range spec.Containers {
		ct := &spec.Containers[i]
		if seen[ct.Name] {
			c.bad("deployment", "container name %s used twice", ct.Name)
		}
		seen[ct.Name] = true
		if _, err := containerEnv(p, ct, true); err != nil {
			c.bad("env", "%v", err)
		}
		for _, vm := range ct.VolumeMounts {
			if p.volume(vm.Name) == nil {
				c.bad("mounts", "container %s mounts unknown volume %s", ct.Name, vm.Name)
			}
		}
		for _, pt := range ct.Ports {
			if !validPortName(pt.Name) {
				c.bad("ports", "container %s: port name %q is not a valid IANA service name (<= 15 chars, [a-z0-9-], a letter)", ct.Name, pt.Name)
			}
		}
	}
	if p.container(gatewayContainer) == nil {
		c.bad("deployment", "no container named %s", gatewayContainer)
	}
}

var portNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

func validPortName(s string) bool {
	return s == "" || (len(s) <= 15 && portNameRE.MatchString(s) && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") && !strings.Contains(s, "--"))
}

func checkSecurity(c *checker, p *pattern, df *dockerfile) {
	spec := &p.deploy.Spec.Template.Spec
	pod := spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		c.bad("security", "automountServiceAccountToken must be false (the gateway never calls the API server)")
	}
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		c.bad("security", "enableServiceLinks must be false: the container env must be exactly the listed one (config.yaml expands ${VAR}s from it)")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		c.bad("security", "host namespaces must not be shared")
	}
	for i := range spec.Containers {
		ct := &spec.Containers[i]
		sc := ct.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		nonRoot := firstBool(sc.RunAsNonRoot, pod.RunAsNonRoot)
		uid := firstInt(sc.RunAsUser, pod.RunAsUser)
		gid := firstInt(sc.RunAsGroup, pod.RunAsGroup)
		if nonRoot == nil || !*nonRoot {
			c.bad("security", "container %s: runAsNonRoot must be true", ct.Name)
		}
		if uid != nil && *uid == 0 {
			c.bad("security", "container %s: runAsUser 0", ct.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			c.bad("security", "container %s: readOnlyRootFilesystem must be true", ct.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			c.bad("security", "container %s: allowPrivilegeEscalation must be false", ct.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			c.bad("security", "container %s: privileged", ct.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			c.bad("security", "container %s: capabilities must drop ALL and add none", ct.Name)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = pod.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			c.bad("security", "container %s: seccompProfile must be RuntimeDefault", ct.Name)
		}
		if ct.Name == gatewayContainer {
			wantUID, wantGID, err := parseUser(df.user)
			switch {
			case err != nil:
			case uid == nil || *uid != int64(wantUID) || gid == nil || *gid != int64(wantGID):
				c.bad("security", "container %s: runAsUser/runAsGroup %s/%s, want the image's USER %s", ct.Name, ptrString(uid), ptrString(gid), df.user)
			}
		}
	}
}

func firstBool(a, b *bool) *bool {
	if a != nil {
		return a
	}
	return b
}

func firstInt(a, b *int64) *int64 {
	if a != nil {
		return a
	}
	return b
}

func ptrString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}

func checkResources(c *checker, p *pattern) {
	for _, ct := range p.deploy.Spec.Template.Spec.Containers {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := ct.Resources.Requests[r]
			lim, okLim := ct.Resources.Limits[r]
			switch {
			case !okReq || !okLim:
				c.bad("resources", "container %s: %s needs a request and a limit", ct.Name, r)
			case req.Cmp(lim) > 0:
				c.bad("resources", "container %s: %s request %s exceeds limit %s", ct.Name, r, req.String(), lim.String())
			}
		}
		if img := ct.Image; strings.Contains(img, "@sha256:") {
			continue
		} else if name := imageName(img); name == img || strings.HasSuffix(img, ":latest") {
			c.bad("images", "container %s: image %q is not pinned to a tag or digest", ct.Name, img)
		}
	}
}

// listenPort is the port of a listen address.
func listenPort(addr string) (host string, port int, err error) {
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(ps)
	return h, port, err
}

func mustPort(addr string) int {
	_, p, err := listenPort(addr)
	if err != nil {
		panic(err)
	}
	return p
}

func namedPort(ct *corev1.Container, name string) *corev1.ContainerPort {
	for i := range ct.Ports {
		if ct.Ports[i].Name == name {
			return &ct.Ports[i]
		}
	}
	return nil
}

func checkPorts(c *checker, p *pattern, v *gatewayView, df *dockerfile) {
	gw := v.container
	var declared []int
	for _, want := range []struct{ name, key, addr string }{
		{publicPortName, "server.listen", v.cfg.Server.Listen},
		{adminPortName, "admin.listen", v.cfg.Admin.Listen},
	} {
		host, port, err := listenPort(want.addr)
		if err != nil {
			c.bad("ports", "%s %q: %v", want.key, want.addr, err)
			continue
		}
		// The kubelet and Services reach the pod IP.
		if host != "" && host != "0.0.0.0" && host != "::" {
			c.bad("ports", "%s %q listens on %s only: the kubelet, Services and Prometheus reach the pod IP", want.key, want.addr, host)
		}
		cp := namedPort(gw, want.name)
		switch {
		case cp == nil:
			c.bad("ports", "container %s has no port named %q (%s)", gw.Name, want.name, want.key)
		case int(cp.ContainerPort) != port:
			c.bad("ports", "container port %s is %d but %s is %q", want.name, cp.ContainerPort, want.key, want.addr)
		default:
			declared = append(declared, int(cp.ContainerPort))
		}
	}
	// EXPOSE names the gateway's default ports (checkDockerfile); a pod
	// listening on those must declare exactly them. (The chart derives the
	// container ports from any other listen addresses.)
	def := gateway.DefaultConfig()
	if v.cfg.Server.Listen == def.Server.Listen && v.cfg.Admin.Listen == def.Admin.Listen {
		if got := slices.Sorted(slices.Values(df.expose)); !slices.Equal(got, slices.Sorted(slices.Values(declared))) {
			c.bad("ports", "Dockerfile EXPOSE %v differs from the container ports %v", got, declared)
		}
	}
}

// resolvePort finds the container port a probe or Service port names,
// by name or number, in the pod's containers.
func resolvePort(p *pattern, only *corev1.Container, port intstr.IntOrString) (*corev1.Container, *corev1.ContainerPort) {
	cs := p.deploy.Spec.Template.Spec.Containers
	for i := range cs {
		ct := &cs[i]
		if only != nil && ct.Name != only.Name {
			continue
		}
		for j := range ct.Ports {
			cp := &ct.Ports[j]
			if (port.Type == intstr.String && cp.Name == port.StrVal) || (port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
				return ct, cp
			}
		}
	}
	return nil, nil
}

func checkProbes(c *checker, v *gatewayView) {
	gw := v.container
	admin := namedPort(gw, adminPortName)
	probe := func(kind string, pr *corev1.Probe, path string, required bool) {
		if pr == nil {
			if required {
				c.bad("probes", "container %s has no %s probe", gw.Name, kind)
			}
			return
		}
		h := pr.HTTPGet
		if h == nil {
			c.bad("probes", "%s probe: want httpGet %s on the admin port", kind, path)
			return
		}
		if h.Path != path {
			c.bad("probes", "%s probe path %q, want %q", kind, h.Path, path)
		}
		var cp *corev1.ContainerPort
		for i := range gw.Ports {
			if (h.Port.Type == intstr.String && gw.Ports[i].Name == h.Port.StrVal) || (h.Port.Type == intstr.Int && gw.Ports[i].ContainerPort == h.Port.IntVal) {
				cp = &gw.Ports[i]
			}
		}
		if cp == nil || admin == nil || cp.ContainerPort != admin.ContainerPort {
			c.bad("probes", "%s probe port %s is not the admin port (admin.listen %q)", kind, h.Port.String(), v.cfg.Admin.Listen)
		}
		if h.Host != "" || (h.Scheme != "" && h.Scheme != corev1.URISchemeHTTP) {
			c.bad("probes", "%s probe: plain HTTP to the pod IP (no host, no HTTPS)", kind)
		}
	}
	probe("liveness", gw.LivenessProbe, livenessPath, true)
	probe("readiness", gw.ReadinessProbe, readinessPath, true)
	probe("startup", gw.StartupProbe, livenessPath, false)
	if pr := gw.ReadinessProbe; pr != nil {
		timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
		if timeout <= v.cfg.Admin.ReadinessTimeout {
			c.bad("probes", "readiness probe timeoutSeconds %v must exceed admin.readiness_timeout %v", timeout, v.cfg.Admin.ReadinessTimeout)
		}
	}
}

func checkAnnotations(c *checker, p *pattern, v *gatewayView) {
	a := p.deploy.Spec.Template.Annotations
	if !v.cfg.Metrics.Enabled {
		c.bad("annotations", "metrics.enabled is false: nothing to scrape")
	}
	if _, ok := a["prometheus.io/scrape"]; !ok && len(p.monitors)+len(p.podMonitors) > 0 {
		return // scraped by the Prometheus Operator instead
	}
	if a["prometheus.io/scrape"] != "true" {
		c.bad("annotations", "pod template: prometheus.io/scrape %q, want \"true\"", a["prometheus.io/scrape"])
	}
	if _, port, err := listenPort(v.cfg.Admin.Listen); err == nil && a["prometheus.io/port"] != strconv.Itoa(port) {
		c.bad("annotations", "pod template: prometheus.io/port %q, want the admin.listen port %d", a["prometheus.io/port"], port)
	}
	if a["prometheus.io/path"] != v.cfg.Metrics.Path {
		c.bad("annotations", "pod template: prometheus.io/path %q, want metrics.path %q", a["prometheus.io/path"], v.cfg.Metrics.Path)
	}
}

func checkMounts(c *checker, p *pattern, v *gatewayView) {
	for _, ct := range p.deploy.Spec.Template.Spec.Containers {
		for _, vm := range ct.VolumeMounts {
			if vm.SubPath != "" || vm.SubPathExpr != "" {
				c.bad("mounts", "container %s: volumeMount %s uses subPath: such a mount is never updated, so ConfigMap/Secret edits never reach the pod", ct.Name, vm.Name)
			}
		}
	}
	for i, m := range v.mounts {
		if m.source != "" && !m.ReadOnly {
			c.bad("mounts", "container %s: %s mounted at %s must be readOnly", v.container.Name, m.source, m.MountPath)
		}
		for j, o := range v.mounts {
			if i != j && strings.HasPrefix(o.MountPath, strings.TrimSuffix(m.MountPath, "/")+"/") {
				c.bad("mounts", "container %s: %s is mounted inside %s; keep ConfigMap/Secret mounts apart", v.container.Name, o.MountPath, m.MountPath)
			}
		}
	}
	for _, key := range slices.Sorted(mapKeys(v.files)) {
		f := v.files[key]
		m, rel := v.mountOf(f)
		switch {
		case m == nil:
			c.bad("files", "%s %s is not under any volume mount of container %s (the image has no such file)", key, f, v.container.Name)
		case m.source == "":
			c.bad("files", "%s %s is on volume %s, which is not a ConfigMap or Secret", key, f, m.Name)
		default:
			if _, ok := m.files[rel]; !ok {
				c.bad("files", "%s %s: %s mounted at %s has no key %q (or does not project it)", key, f, m.source, m.MountPath, rel)
			}
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// preStopSleep is a container's preStop sleep; ok is false for any other
// kind of preStop hook.
func preStopSleep(ct *corev1.Container) (d time.Duration, ok bool) {
	if ct.Lifecycle == nil || ct.Lifecycle.PreStop == nil {
		return 0, true
	}
	if s := ct.Lifecycle.PreStop.Sleep; s != nil {
		return time.Duration(s.Seconds) * time.Second, true
	}
	return 0, false
}

func checkDrain(c *checker, p *pattern, v *gatewayView) {
	spec := &p.deploy.Spec.Template.Spec
	grace := 30 * time.Second // the API default
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	drain, shutdown := v.cfg.Server.DrainDelay, v.cfg.Server.ShutdownTimeout
	if drain <= 0 {
		c.bad("drain", "server.drain_delay is %v: the pod would refuse connections before leaving the Service endpoints", drain)
	}
	gwPre, ok := preStopSleep(v.container)
	if !ok {
		c.bad("drain", "container %s: a preStop hook other than sleep (the image has no shell)", v.container.Name)
	}
	// When the gateway is done at the latest.
	gwDone := gwPre + drain + shutdown
	if grace < gwDone+drainMargin {
		c.bad("drain", "terminationGracePeriodSeconds %v < preStop %v + server.drain_delay %v + server.shutdown_timeout %v + %v margin", grace, gwPre, drain, shutdown, drainMargin)
	}
	for _, up := range upstreams(p) {
		sleep, ok := preStopSleep(up)
		switch {
		case !ok:
			c.bad("drain", "container %s: preStop must be a sleep action (lifecycle.preStop.sleep)", up.Name)
		case sleep < gwDone:
			c.bad("drain", "container %s: preStop sleep %v < the gateway's drain and shutdown %v: it would stop under open requests and WebSockets", up.Name, sleep, gwDone)
		case grace < sleep+drainMargin:
			c.bad("drain", "terminationGracePeriodSeconds %v leaves container %s under %v after its preStop sleep %v", grace, up.Name, drainMargin, sleep)
		}
	}
}

func checkUpstream(c *checker, p *pattern, v *gatewayView) {
	u := v.cfg.Upstream
	ups := upstreams(p)
	if len(ups) == 0 {
		// A remote engine: TLS, and a namespace token owned by the gateway.
		if !strings.HasPrefix(u.URL, "https://") {
			c.bad("upstream", "upstream.url %q: a remote engine must be reached over https", u.URL)
		}
		if u.Token == "" && u.TokenFile == "" {
			c.bad("upstream", "upstream.token and token_file are empty: a hosted engine needs the namespace token")
		}
		return
	}
	// The engine in the pod: upstream.url must be its guard address, on
	// loopback (nothing else in the cluster reaches it).
	for _, up := range ups {
		env, _ := containerEnv(p, up, true)
		host, port := env["RIVET__GUARD__HOST"], env["RIVET__GUARD__PORT"]
		if host == "" || port == "" {
			c.bad("upstream", "container %s: RIVET__GUARD__HOST/PORT unset; the engine's address must be explicit", up.Name)
			continue
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			c.bad("upstream", "container %s: the engine listens on %s, not loopback: it would be reachable around the gateway", up.Name, host)
		}
		if want := "http://" + net.JoinHostPort(host, port); strings.TrimSuffix(u.URL, "/") != want {
			c.bad("upstream", "upstream.url %q is not the engine container's guard address %s", u.URL, want)
		}
	}
}

// checkSecretsInConfig: secret values in the configuration come from a
// Secret (env from a secretKeyRef, or a mounted file), never from the
// ConfigMap's text. The env resolved with dummies makes each Secret value
// recognisable.
func checkSecretsInConfig(c *checker, v *gatewayView) {
	fromSecret := func(s string) bool {
		for _, e := range v.container.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && v.env[e.Name] != "" && strings.Contains(s, v.env[e.Name]) {
				return true
			}
		}
		return false
	}
	if t := v.cfg.Upstream.Token; t != "" && !fromSecret(t) {
		c.bad("secrets", "upstream.token is written in the ConfigMap; use ${VAR} with VAR from a secretKeyRef")
	}
	for i, is := range v.cfg.Auth.JWT.Issuers {
		if is.Secret != "" && !fromSecret(string(is.Secret)) {
			c.bad("secrets", "auth.jwt.issuers[%d].secret is written in the ConfigMap; use secret_file or ${VAR} from a Secret", i)
		}
	}
	for k, val := range v.cfg.Params.HTTP.Headers {
		lk := strings.ToLower(k)
		if (lk == "authorization" || strings.Contains(lk, "token") || strings.Contains(lk, "key") || strings.Contains(lk, "secret")) && !fromSecret(val) {
			c.bad("secrets", "params.http.headers.%s is written in the ConfigMap; use ${VAR} with VAR from a secretKeyRef", k)
		}
	}
	for i, k := range v.cfg.Auth.APIKeys.Keys {
		c.bad("secrets", "auth.api_keys.keys[%d] (%s) is in the ConfigMap; list keys in the api_keys.file Secret", i, k.ID)
	}
}

func checkServices(c *checker, p *pattern, v *gatewayView) {
	public := 0
	for _, s := range p.services {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels(p)) {
			c.bad("service", "Service %s selects no pod of the Deployment (selector %v)", s.Name, s.Spec.Selector)
			continue
		}
		if s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
			c.bad("service", "Service %s: type %s; expose the gateway through an Ingress or Gateway route", s.Name, s.Spec.Type)
		}
		headless := s.Spec.ClusterIP == corev1.ClusterIPNone
		for _, sp := range s.Spec.Ports {
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(sp.Port)
			}
			ct, cp := resolvePort(p, nil, target)
			switch {
			case ct == nil:
				c.bad("service", "Service %s port %s: targetPort %s is no container port of the pod", s.Name, sp.Name, target.String())
			case ct.Name != gatewayContainer:
				c.bad("service", "Service %s port %s exposes container %s: only the gateway may be reachable", s.Name, sp.Name, ct.Name)
			case cp.Name == publicPortName && !headless:
				public++
			case cp.Name == adminPortName && headless && scrapedByMonitor(p, s, sp.Name):
				// The ServiceMonitor's discovery Service.
			default:
				c.bad("service", "Service %s port %s targets %s (%d): only the public port %q may be exposed (admin only by a headless Service for a ServiceMonitor)", s.Name, sp.Name, cp.Name, cp.ContainerPort, publicPortName)
			}
		}
	}
	if public == 0 {
		c.bad("service", "no Service exposes the gateway's public port %q", publicPortName)
	}
}

func scrapedByMonitor(p *pattern, s *corev1.Service, port string) bool {
	for _, m := range p.monitors {
		sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(s.Labels)) {
			continue
		}
		for _, e := range m.Spec.Endpoints {
			if e.Port == port {
				return true
			}
		}
	}
	return false
}

// checkAvailability: the standalone pattern runs 2+ spread replicas with a
// PodDisruptionBudget that still lets nodes drain; a pod holding a
// ReadWriteOnce volume (the sidecar engine's storage) runs alone and is
// replaced, not rolled.
func checkAvailability(c *checker, p *pattern) {
	d := p.deploy
	replicas := replicas(p)
	spec := &d.Spec.Template.Spec
	rwo := false
	for _, vol := range spec.Volumes {
		if vol.PersistentVolumeClaim == nil {
			continue
		}
		if pvc := p.pvcs[vol.PersistentVolumeClaim.ClaimName]; pvc != nil && slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteOnce) {
			rwo = true
		}
	}
	if rwo {
		if replicas != 1 || d.Spec.Strategy.Type != "Recreate" {
			c.bad("replicas", "a pod with a ReadWriteOnce volume (one engine's storage) needs replicas: 1 and strategy Recreate, got %d and %q", replicas, d.Spec.Strategy.Type)
		}
	}
	if len(upstreams(p)) == 0 && replicas < 2 {
		c.bad("replicas", "the gateway alone runs %d replica(s); want 2+", replicas)
	}
	for _, pdb := range p.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(podLabels(p)) {
			c.bad("pdb", "PodDisruptionBudget %s selects no pod of the Deployment", pdb.Name)
		}
		allowsOne := false
		if mu := pdb.Spec.MaxUnavailable; mu != nil {
			n, err := intstr.GetScaledValueFromIntOrPercent(mu, int(replicas), true)
			allowsOne = err == nil && n >= 1
		}
		if ma := pdb.Spec.MinAvailable; ma != nil {
			n, err := intstr.GetScaledValueFromIntOrPercent(ma, int(replicas), true)
			allowsOne = err == nil && n < int(replicas)
		}
		if !allowsOne {
			c.bad("pdb", "PodDisruptionBudget %s allows no disruption with %d replicas: node drains would block", pdb.Name, replicas)
		}
	}
	if replicas >= 2 {
		if len(p.pdbs) == 0 {
			c.bad("pdb", "%d replicas without a PodDisruptionBudget", replicas)
		}
		spread := spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil
		for _, tsc := range spec.TopologySpreadConstraints {
			sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
			if err == nil && !sel.Empty() && sel.Matches(podLabels(p)) && tsc.TopologyKey == "kubernetes.io/hostname" {
				spread = true
			}
		}
		if !spread {
			c.bad("replicas", "%d replicas without pod anti-affinity or a topology spread over kubernetes.io/hostname matching the pods", replicas)
		}
	}
}

func checkMonitors(c *checker, p *pattern, v *gatewayView) {
	for _, m := range p.monitors {
		sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		if err != nil || sel.Empty() {
			c.bad("servicemonitor", "ServiceMonitor %s: bad or empty selector", m.Name)
			continue
		}
		var selected int
		for _, s := range p.services {
			if !sel.Matches(labels.Set(s.Labels)) {
				continue
			}
			selected++
			for _, e := range m.Spec.Endpoints {
				i := slices.IndexFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == e.Port })
				if i < 0 {
					c.bad("servicemonitor", "ServiceMonitor %s selects Service %s, which has no port %q", m.Name, s.Name, e.Port)
					continue
				}
				if _, cp := resolvePort(p, v.container, s.Spec.Ports[i].TargetPort); cp == nil || cp.Name != adminPortName {
					c.bad("servicemonitor", "ServiceMonitor %s endpoint %q does not reach the admin port", m.Name, e.Port)
				}
			}
		}
		if selected == 0 {
			c.bad("servicemonitor", "ServiceMonitor %s selects no Service", m.Name)
		}
		if len(m.Spec.Endpoints) == 0 {
			c.bad("servicemonitor", "ServiceMonitor %s has no endpoints", m.Name)
		}
		for _, e := range m.Spec.Endpoints {
			path := e.Path
			if path == "" {
				path = "/metrics" // the operator's default
			}
			if path != v.cfg.Metrics.Path {
				c.bad("servicemonitor", "ServiceMonitor %s endpoint path %q, want metrics.path %q", m.Name, path, v.cfg.Metrics.Path)
			}
		}
	}
}

// checkPlaceholders: no real secret is committed; every Secret value is
// (or contains) the placeholder.
func checkPlaceholders(c *checker, p *pattern) {
	for name, s := range p.secrets {
		for _, k := range p.secretKeys(name) {
			if v, _ := p.secretValue(name, k); !strings.Contains(v, placeholder) {
				c.bad("placeholders", "Secret %s key %s holds no %s placeholder: never commit a secret", s.Name, k, placeholder)
			}
		}
	}
}

// checkPodMonitors: each PodMonitor selects the pods and scrapes
// metrics.path on the gateway's admin port.
func checkPodMonitors(c *checker, p *pattern, v *gatewayView) {
	for _, m := range p.podMonitors {
		sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(podLabels(p)) {
			c.bad("podmonitor", "PodMonitor %s selects no pod of the Deployment", m.Name)
		}
		if len(m.Spec.PodMetricsEndpoints) == 0 {
			c.bad("podmonitor", "PodMonitor %s has no podMetricsEndpoints", m.Name)
		}
		for _, e := range m.Spec.PodMetricsEndpoints {
			if cp := namedPort(v.container, e.Port); cp == nil || cp.Name != adminPortName {
				c.bad("podmonitor", "PodMonitor %s endpoint port %q is not the gateway's admin port %q", m.Name, e.Port, adminPortName)
			}
			path := e.Path
			if path == "" {
				path = "/metrics" // the operator's default
			}
			if path != v.cfg.Metrics.Path {
				c.bad("podmonitor", "PodMonitor %s endpoint path %q, want metrics.path %q", m.Name, path, v.cfg.Metrics.Path)
			}
		}
	}
}

// checkAutoscalers: a HorizontalPodAutoscaler scales the Deployment (and
// owns its replica count), never below 2, never a pod holding an engine,
// on resources the containers request.
func checkAutoscalers(c *checker, p *pattern) {
	for _, h := range p.hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != p.deploy.Name {
			c.bad("hpa", "HorizontalPodAutoscaler %s scales %s %s/%s, not the Deployment %s", h.Name, ref.APIVersion, ref.Kind, ref.Name, p.deploy.Name)
		}
		if p.deploy.Spec.Replicas != nil {
			c.bad("hpa", "the Deployment sets replicas and HorizontalPodAutoscaler %s scales it: every upgrade would reset the count", h.Name)
		}
		minR := int32(1)
		if h.Spec.MinReplicas != nil {
			minR = *h.Spec.MinReplicas
		}
		if minR < 2 {
			c.bad("hpa", "HorizontalPodAutoscaler %s minReplicas %d: want 2+, so a drain or rollout always leaves a replica", h.Name, minR)
		}
		if h.Spec.MaxReplicas < minR {
			c.bad("hpa", "HorizontalPodAutoscaler %s maxReplicas %d < minReplicas %d", h.Name, h.Spec.MaxReplicas, minR)
		}
		if len(upstreams(p)) > 0 {
			c.bad("hpa", "HorizontalPodAutoscaler %s scales a pod with an engine container (one engine per ReadWriteOnce volume)", h.Name)
		}
		if len(h.Spec.Metrics) == 0 {
			c.bad("hpa", "HorizontalPodAutoscaler %s has no metrics", h.Name)
		}
		for _, m := range h.Spec.Metrics {
			if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil {
				c.bad("hpa", "HorizontalPodAutoscaler %s: metric type %s is not modelled by these checks", h.Name, m.Type)
				continue
			}
			if m.Resource.Target.Type == autoscalingv2.UtilizationMetricType {
				for _, ct := range p.deploy.Spec.Template.Spec.Containers {
					if _, ok := ct.Resources.Requests[m.Resource.Name]; !ok {
						c.bad("hpa", "HorizontalPodAutoscaler %s scales on %s utilization, but container %s requests no %s", h.Name, m.Resource.Name, ct.Name, m.Resource.Name)
					}
				}
			}
		}
	}
}

// checkNetworkPolicies: when NetworkPolicies select the gateway's pods,
// their ingress rules (which add up) admit clients to the public port,
// admit only named scrapers to the admin port, and name the ports they
// open. Kubelet probes are not modelled: they come from the node, which
// CNI plugins admit on their own.
func checkNetworkPolicies(c *checker, p *pattern, v *gatewayView) {
	var covering []*networkingv1.NetworkPolicy
	for _, np := range p.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		switch {
		case err != nil || sel.Empty() || !sel.Matches(podLabels(p)):
			c.bad("networkpolicy", "NetworkPolicy %s selects no pod of the Deployment (podSelector %v)", np.Name, sel)
		case !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress):
			c.bad("networkpolicy", "NetworkPolicy %s has no Ingress policyType: it restricts nothing coming in", np.Name)
		default:
			covering = append(covering, np)
		}
	}
	if len(covering) == 0 {
		return
	}
	public, scrapers := false, 0
	for _, np := range covering {
		for i, r := range np.Spec.Ingress {
			rule := fmt.Sprintf("NetworkPolicy %s ingress[%d]", np.Name, i)
			if len(r.Ports) == 0 {
				c.bad("networkpolicy", "%s lists no ports: it admits its sources to every port, admin included", rule)
			}
			opens := map[string]bool{}
			for _, pp := range r.Ports {
				if pp.Port == nil || pp.EndPort != nil {
					c.bad("networkpolicy", "%s opens a port range or every port; name the gateway's ports", rule)
					continue
				}
				_, cp := resolvePort(p, v.container, *pp.Port)
				switch {
				case cp == nil:
					c.bad("networkpolicy", "%s port %s is no port of container %s", rule, pp.Port.String(), v.container.Name)
				case cp.Name == publicPortName:
					public, opens[cp.Name] = true, true
				case cp.Name == adminPortName:
					opens[cp.Name] = true
					if len(r.From) == 0 {
						c.bad("networkpolicy", "%s admits every source to the admin port; only metrics scrapers may reach it", rule)
					}
					for j, peer := range r.From {
						if why := openPeer(peer); why != "" {
							c.bad("networkpolicy", "%s from[%d] admits %s to the admin port; only metrics scrapers may reach it", rule, j, why)
						}
					}
					scrapers += len(r.From)
				default:
					c.bad("networkpolicy", "%s opens port %s (%d), which is neither %q nor %q", rule, cp.Name, cp.ContainerPort, publicPortName, adminPortName)
				}
			}
			if opens[publicPortName] && opens[adminPortName] {
				c.bad("networkpolicy", "%s admits the same sources to both the public and the admin port: clients would reach the admin port; give the scrapers a rule of their own", rule)
			}
		}
	}
	if !public {
		c.bad("networkpolicy", "no NetworkPolicy rule admits clients to the public port %q", publicPortName)
	}
	scraped := len(p.monitors)+len(p.podMonitors) > 0 || p.deploy.Spec.Template.Annotations["prometheus.io/scrape"] == "true"
	if scraped && scrapers == 0 {
		c.bad("networkpolicy", "the metrics are scraped, but no NetworkPolicy rule admits a scraper to the admin port")
	}
}

// openPeer says what a NetworkPolicy peer admits when that is more than
// some pods: every address, every pod of the namespace, or of the cluster.
func openPeer(peer networkingv1.NetworkPolicyPeer) string {
	empty := func(s *metav1.LabelSelector) bool {
		return s != nil && len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
	}
	switch {
	case peer.IPBlock != nil:
		if _, bits, ok := strings.Cut(peer.IPBlock.CIDR, "/"); ok && bits == "0" {
			return "every address (" + peer.IPBlock.CIDR + ")"
		}
	case peer.PodSelector == nil && peer.NamespaceSelector == nil:
		return "nothing it names (an empty peer)"
	case empty(peer.NamespaceSelector) && (peer.PodSelector == nil || empty(peer.PodSelector)):
		return "every pod of every namespace"
	case peer.NamespaceSelector == nil && empty(peer.PodSelector):
		return "every pod of the namespace"
	}
	return ""
}
