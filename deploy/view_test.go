package deploy_test

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rivet-gateway/rivet-gateway/config"
	"github.com/rivet-gateway/rivet-gateway/gateway"
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
)

// gatewayContainer is the gateway's container name in the manifests' pods.
// Every other container of a pod is the gateway's upstream (the sidecar
// pattern's engine).
const gatewayContainer = "rivet-gateway"

// Container port names of the gateway.
const (
	publicPortName = "http"
	adminPortName  = "admin"
)

// placeholder marks every Secret value in the manifests.
const placeholder = "REPLACE_ME"

// dummyFor stands in for a Secret value that is only the placeholder: long
// enough for any HMAC secret (HS512 needs 64 bytes).
func dummyFor(key string) string {
	return "dummy-" + key + "-" + strings.Repeat("x", 64)
}

// mount is one volume mount of the gateway container, with the files it
// shows in the pod.
type mount struct {
	corev1.VolumeMount
	source string            // "configmap/NAME", "secret/NAME", or "" (not backed by one)
	files  map[string]string // path below the mount -> content
}

// gatewayView is the gateway container as the pod runs it: its env, the
// files of its ConfigMap/Secret mounts, written below root at their
// in-pod paths, and its configuration loaded from there.
type gatewayView struct {
	container  *corev1.Container
	env        map[string]string
	mounts     []mount
	root       string // the pod's file tree starts here
	configPath string // in the pod, e.g. /etc/rivet-gateway/config.yaml
	configText string // as in the ConfigMap
	localPath  string // configPath below root, with mount paths rewritten below root
	cfg        gateway.Config
	// files are the file paths the configuration references (secret_file,
	// api_keys.file, ...), in the pod, by YAML path.
	files map[string]string
}

// resolveGateway builds the gateway container's view below root. dummies
// replaces Secret values that are only the placeholder. The configuration
// is loaded like gateway.LoadConfig does, with the container's env as the
// only environment; an error there is returned with the view.
func resolveGateway(p *pattern, df *dockerfile, root string, dummies bool) (*gatewayView, error) {
	c := p.container(gatewayContainer)
	if c == nil {
		return nil, fmt.Errorf("no container %q in the Deployment", gatewayContainer)
	}
	v := &gatewayView{container: c, root: root}
	var err error
	if v.env, err = containerEnv(p, c, dummies); err != nil {
		return v, err
	}
	if v.mounts, err = materialize(p, c, root, dummies); err != nil {
		return v, err
	}
	if v.configPath, err = configPathOf(c, df); err != nil {
		return v, err
	}
	m, rel := v.mountOf(v.configPath)
	if m == nil || !strings.HasPrefix(m.source, "configmap/") {
		return v, fmt.Errorf("config %s: not in a ConfigMap volume mount of the gateway container", v.configPath)
	}
	text, ok := m.files[rel]
	if !ok {
		return v, fmt.Errorf("config %s: %s has no key projected at %q", v.configPath, m.source, rel)
	}
	v.configText = text
	// The config as the pod reads it, its file paths moved below root.
	// One pass, longest mount path first, so nothing is rewritten twice.
	var pairs []string
	for _, mp := range v.mountPathsLongestFirst() {
		pairs = append(pairs, mp+"/", filepath.ToSlash(filepath.Join(root, mp))+"/")
	}
	local := strings.NewReplacer(pairs...).Replace(text)
	v.localPath = filepath.Join(root, filepath.FromSlash(v.configPath)+".local")
	if err := os.WriteFile(v.localPath, []byte(local), 0o600); err != nil {
		return v, err
	}
	if v.files, err = referencedFiles(text, v.env); err != nil {
		return v, err
	}
	v.cfg, err = loadConfig(v.localPath, v.env)
	return v, err
}

// loadConfig is gateway.LoadConfig with env as the only environment.
func loadConfig(path string, env map[string]string) (gateway.Config, error) {
	cfg := gateway.DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	if err := config.Decode(data, &cfg, lookupIn(env)); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// containerEnv is the environment Kubernetes gives c: literal values, and
// Secret/ConfigMap keys (which must exist unless optional).
func containerEnv(p *pattern, c *corev1.Container, dummies bool) (map[string]string, error) {
	env := map[string]string{}
	var errs []error
	if len(c.EnvFrom) > 0 {
		errs = append(errs, fmt.Errorf("container %s: envFrom is not modelled by these tests; list variables under env", c.Name))
	}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			errs = append(errs, fmt.Errorf("container %s: env %s set twice", c.Name, e.Name))
		}
		switch vf := e.ValueFrom; {
		case vf == nil:
			if strings.Contains(e.Value, "$(") {
				errs = append(errs, fmt.Errorf("container %s: env %s: $(VAR) references are not modelled", c.Name, e.Name))
			}
			env[e.Name] = e.Value
		case vf.SecretKeyRef != nil:
			ref := vf.SecretKeyRef
			val, ok := p.secretValue(ref.Name, ref.Key)
			if !ok {
				if ref.Optional == nil || !*ref.Optional {
					errs = append(errs, fmt.Errorf("container %s: env %s: Secret %s has no key %q", c.Name, e.Name, ref.Name, ref.Key))
				}
				continue
			}
			if dummies && val == placeholder {
				val = dummyFor(ref.Key)
			}
			env[e.Name] = val
		case vf.ConfigMapKeyRef != nil:
			ref := vf.ConfigMapKeyRef
			val, ok := p.configMapValue(ref.Name, ref.Key)
			if !ok {
				if ref.Optional == nil || !*ref.Optional {
					errs = append(errs, fmt.Errorf("container %s: env %s: ConfigMap %s has no key %q", c.Name, e.Name, ref.Name, ref.Key))
				}
				continue
			}
			env[e.Name] = val
		default:
			errs = append(errs, fmt.Errorf("container %s: env %s: only value, secretKeyRef and configMapKeyRef are modelled", c.Name, e.Name))
		}
	}
	return env, errors.Join(errs...)
}

// materialize writes the files of c's ConfigMap and Secret mounts below
// root, at their in-pod paths.
func materialize(p *pattern, c *corev1.Container, root string, dummies bool) ([]mount, error) {
	var mounts []mount
	var errs []error
	for _, vm := range c.VolumeMounts {
		m := mount{VolumeMount: vm, files: map[string]string{}}
		vol := p.volume(vm.Name)
		switch {
		case vol == nil:
			errs = append(errs, fmt.Errorf("container %s: volumeMount %s: no such volume", c.Name, vm.Name))
		case vol.ConfigMap != nil:
			name := vol.ConfigMap.Name
			m.source = "configmap/" + name
			if p.configMaps[name] == nil && (vol.ConfigMap.Optional == nil || !*vol.ConfigMap.Optional) {
				errs = append(errs, fmt.Errorf("volume %s: no ConfigMap %s", vol.Name, name))
			}
			errs = append(errs, project(m.files, vol.Name, vol.ConfigMap.Items, p.configMapKeys(name), func(k string) (string, bool) {
				return p.configMapValue(name, k)
			}))
		case vol.Secret != nil:
			name := vol.Secret.SecretName
			m.source = "secret/" + name
			if p.secrets[name] == nil && (vol.Secret.Optional == nil || !*vol.Secret.Optional) {
				errs = append(errs, fmt.Errorf("volume %s: no Secret %s", vol.Name, name))
			}
			errs = append(errs, project(m.files, vol.Name, vol.Secret.Items, p.secretKeys(name), func(k string) (string, bool) {
				v, ok := p.secretValue(name, k)
				if ok && dummies && v == placeholder {
					v = dummyFor(k)
				}
				return v, ok
			}))
		case vol.PersistentVolumeClaim != nil:
			if p.pvcs[vol.PersistentVolumeClaim.ClaimName] == nil {
				errs = append(errs, fmt.Errorf("volume %s: no PersistentVolumeClaim %s", vol.Name, vol.PersistentVolumeClaim.ClaimName))
			}
		}
		for rel, content := range m.files {
			f := filepath.Join(root, filepath.FromSlash(path.Join(vm.MountPath, rel)))
			if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
				return nil, err
			}
			if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
				return nil, err
			}
		}
		mounts = append(mounts, m)
	}
	return mounts, errors.Join(errs...)
}

// project fills files with the keys a ConfigMap/Secret volume shows: all
// of them, or the listed items (which must exist).
func project(files map[string]string, vol string, items []corev1.KeyToPath, keys []string, get func(string) (string, bool)) error {
	if len(items) == 0 {
		for _, k := range keys {
			files[k], _ = get(k)
		}
		return nil
	}
	var errs []error
	for _, it := range items {
		v, ok := get(it.Key)
		if !ok {
			errs = append(errs, fmt.Errorf("volume %s: items: no key %q", vol, it.Key))
			continue
		}
		files[it.Path] = v
	}
	return errors.Join(errs...)
}

// mountOf returns the mount holding the in-pod path p and p's path below
// it, or nil.
func (v *gatewayView) mountOf(p string) (*mount, string) {
	var best *mount
	for i := range v.mounts {
		m := &v.mounts[i]
		if strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = m
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, strings.TrimPrefix(p, strings.TrimSuffix(best.MountPath, "/")+"/")
}

func (v *gatewayView) mountPathsLongestFirst() []string {
	var ps []string
	for _, m := range v.mounts {
		ps = append(ps, strings.TrimSuffix(m.MountPath, "/"))
	}
	sort.Slice(ps, func(i, j int) bool { return len(ps[i]) > len(ps[j]) })
	return ps
}

// configPathOf is the -config the container runs with: from its args, or
// the image's CMD.
func configPathOf(c *corev1.Container, df *dockerfile) (string, error) {
	if len(c.Command) > 0 {
		return "", fmt.Errorf("container %s: command overrides the image's ENTRYPOINT %v; leave it unset", c.Name, df.entrypoint)
	}
	args := c.Args
	if len(args) == 0 {
		args = df.cmd
	}
	for i, a := range args {
		switch {
		case (a == "-config" || a == "--config") && i+1 < len(args):
			return args[i+1], nil
		case strings.HasPrefix(a, "-config="), strings.HasPrefix(a, "--config="):
			return a[strings.Index(a, "=")+1:], nil
		}
	}
	return "", fmt.Errorf("container %s: no -config in args %q", c.Name, args)
}

// referencedFiles lists every file the configuration names: the values of
// keys called "file" or "*_file", anywhere (so a file key added later is
// covered too), expanded with env.
func referencedFiles(text string, env map[string]string) (map[string]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, err
	}
	files := map[string]string{}
	var errs []error
	var walk func(n *yaml.Node, at string)
	walk = func(n *yaml.Node, at string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, at)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, val := n.Content[i].Value, n.Content[i+1]
				p := strings.TrimPrefix(at+"."+k, ".")
				if strings.HasSuffix(k, "_files") && val.Kind == yaml.MappingNode {
					// params.http.header_files: name → file.
					for j := 0; j+1 < len(val.Content); j += 2 {
						fp := p + "." + val.Content[j].Value
						f, err := config.Expand(val.Content[j+1].Value, lookupIn(env))
						if err != nil {
							errs = append(errs, fmt.Errorf("%s: %w", fp, err))
						}
						if f != "" {
							files[fp] = f
						}
					}
					continue
				}
				if (k == "file" || strings.HasSuffix(k, "_file")) && val.Kind == yaml.ScalarNode {
					f, err := config.Expand(val.Value, lookupIn(env))
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", p, err))
					}
					if f != "" {
						files[p] = f
					}
					continue
				}
				walk(val, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", at, i))
			}
		}
	}
	walk(&doc, "")
	return files, errors.Join(errs...)
}
