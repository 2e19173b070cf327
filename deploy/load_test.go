package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// kubeDir holds the kustomize patterns, relative to this package.
const kubeDir = "kubernetes"

// patternNames are the kustomize overlays under kubeDir, each one complete
// deployment of the gateway.
var patternNames = []string{"sidecar", "standalone"}

// monitoringComponent is the optional kustomize component adding a
// ServiceMonitor; it is checked together with each pattern.
const monitoringComponent = "components/monitoring"

// decodeStrict decodes one YAML document into v the way the API server's
// strict field validation does: duplicate keys, unknown fields and fields
// whose case differs from the API's (encoding/json would accept
// "ContainerPort") are all errors.
func decodeStrict(doc []byte, v any) error {
	j, err := sigsyaml.YAMLToJSONStrict(doc) // duplicate keys are errors
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the
// manifests use (k8s.io/api has no CRD types, and the operator's module is
// heavy). Decoded strictly, so a misspelled field fails; a field the
// manifests start to use must be added here, with the operator's JSON name.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port,omitempty"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// podMonitor is the part of monitoring.coreos.com/v1 PodMonitor the chart
// uses, decoded strictly like serviceMonitor.
type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel            string               `json:"jobLabel,omitempty"`
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port          string `json:"port,omitempty"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// apiTypes maps apiVersion/kind to the Go type a manifest decodes into.
// Anything else is an error: a kind the tests do not know is a kind they
// do not check.
var apiTypes = map[string]func() any{
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                               func() any { return new(corev1.Secret) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/PersistentVolumeClaim":                func() any { return new(corev1.PersistentVolumeClaim) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(serviceMonitor) },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return new(podMonitor) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
}

// object is one decoded manifest document.
type object struct {
	file string // relative to kubeDir
	doc  int    // index of the document in its file, from 0
	kind string // apiVersion/kind
	name string
	v    any // *corev1.ConfigMap, *appsv1.Deployment, ...
}

func (o object) String() string { return fmt.Sprintf("%s#%d (%s %s)", o.file, o.doc, o.kind, o.name) }

// splitDocs splits a multi-document YAML file, dropping documents that
// hold only comments.
func splitDocs(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if !onlyComments(d) {
			docs = append(docs, d)
		}
	}
}

func onlyComments(doc []byte) bool {
	for _, l := range strings.Split(string(doc), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && l != "---" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// decodeObject decodes one document into its API type, strictly.
func decodeObject(doc []byte) (kind, name string, v any, err error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
		return "", "", nil, err
	}
	kind = tm.APIVersion + "/" + tm.Kind
	newV, ok := apiTypes[kind]
	if !ok {
		return kind, "", nil, fmt.Errorf("unsupported apiVersion/kind %q", kind)
	}
	if tm.Metadata.Name == "" {
		return kind, "", nil, errors.New("metadata.name is empty")
	}
	v = newV()
	if err := decodeStrict(doc, v); err != nil {
		return kind, tm.Metadata.Name, nil, err
	}
	return kind, tm.Metadata.Name, v, nil
}

// decodeFile decodes every document of a manifest file.
func decodeFile(rel string, data []byte) ([]object, error) {
	docs, err := splitDocs(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: no document", rel)
	}
	var objs []object
	var errs []error
	for i, d := range docs {
		kind, name, v, err := decodeObject(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s#%d (%s %s): %w", rel, i, kind, name, err))
			continue
		}
		o := object{file: rel, doc: i, kind: kind, name: name, v: v}
		if err := validateObject(o); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o, err))
			continue
		}
		objs = append(objs, o)
	}
	return objs, errors.Join(errs...)
}

// validateObject runs the API server's syntax rules that apimachinery
// exports (the per-kind validation lives in k8s.io/kubernetes, too heavy a
// dependency): object names, labels, annotations, and the names of
// containers, ports, env vars, volumes and ConfigMap/Secret keys.
func validateObject(o object) error {
	acc, err := meta.Accessor(o.v)
	if err != nil {
		return err
	}
	nameFn := apivalidation.NameIsDNSSubdomain
	if _, ok := o.v.(*corev1.Service); ok {
		nameFn = apivalidation.NameIsDNS1035Label
	}
	errs := apivalidation.ValidateObjectMetaAccessor(acc, false, nameFn, field.NewPath("metadata"))
	strs := func(p *field.Path, value string, msgs []string) {
		for _, m := range msgs {
			errs = append(errs, field.Invalid(p, value, m))
		}
	}
	keys := func(p *field.Path, m map[string]string) {
		for k := range m {
			strs(p.Key(k), k, validation.IsConfigMapKey(k))
		}
	}
	switch v := o.v.(type) {
	case *corev1.ConfigMap:
		keys(field.NewPath("data"), v.Data)
	case *corev1.Secret:
		keys(field.NewPath("stringData"), v.StringData)
	case *appsv1.Deployment:
		tp := field.NewPath("spec", "template")
		errs = append(errs, metav1validation.ValidateLabels(v.Spec.Template.Labels, tp.Child("metadata", "labels"))...)
		errs = append(errs, apivalidation.ValidateAnnotations(v.Spec.Template.Annotations, tp.Child("metadata", "annotations"))...)
		sp := tp.Child("spec")
		for i, vol := range v.Spec.Template.Spec.Volumes {
			strs(sp.Child("volumes").Index(i).Child("name"), vol.Name, validation.IsDNS1123Label(vol.Name))
		}
		for i, c := range v.Spec.Template.Spec.Containers {
			cp := sp.Child("containers").Index(i)
			strs(cp.Child("name"), c.Name, validation.IsDNS1123Label(c.Name))
			for j, pt := range c.Ports {
				if pt.Name != "" {
					strs(cp.Child("ports").Index(j).Child("name"), pt.Name, validation.IsValidPortName(pt.Name))
				}
				strs(cp.Child("ports").Index(j).Child("containerPort"), fmt.Sprint(pt.ContainerPort), validation.IsValidPortNum(int(pt.ContainerPort)))
			}
			for j, e := range c.Env {
				strs(cp.Child("env").Index(j).Child("name"), e.Name, validation.IsEnvVarName(e.Name))
			}
		}
	case *corev1.Service:
		for i, pt := range v.Spec.Ports {
			strs(field.NewPath("spec", "ports").Index(i).Child("port"), fmt.Sprint(pt.Port), validation.IsValidPortNum(int(pt.Port)))
		}
	}
	return errs.ToAggregate()
}

// kustomization is the part of kustomize's Kustomization (and Component)
// the manifests use, decoded strictly. It deliberately has no
// configMapGenerator or secretGenerator: generated names carry a content
// hash, so an edit creates a new object and the running pods' mounted files
// are never updated in place, which defeats the gateway's reload on
// ConfigMap/Secret symlink swaps.
type kustomization struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Namespace  string           `json:"namespace,omitempty"`
	Resources  []string         `json:"resources,omitempty"`
	Components []string         `json:"components,omitempty"`
	Images     []kustomizeImage `json:"images,omitempty"`
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// readKustomization reads dir/kustomization.yaml (dir relative to
// kubeDir) and checks its kind, and that what it lists exists.
func readKustomization(dir string, wantKind string) (*kustomization, error) {
	rel := path.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(filepath.Join(kubeDir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := decodeStrict(data, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	want := map[string]string{"Kustomization": "kustomize.config.k8s.io/v1beta1", "Component": "kustomize.config.k8s.io/v1alpha1"}
	if k.Kind != wantKind || k.APIVersion != want[wantKind] {
		return nil, fmt.Errorf("%s: apiVersion/kind %s/%s, want %s/%s", rel, k.APIVersion, k.Kind, want[wantKind], wantKind)
	}
	var errs []error
	for _, r := range k.Resources {
		if err := checkRelative(dir, r); err != nil {
			errs = append(errs, fmt.Errorf("%s: resources: %w", rel, err))
		}
	}
	for _, c := range k.Components {
		p := path.Join(dir, c)
		if _, err := os.Stat(filepath.Join(kubeDir, filepath.FromSlash(p), "kustomization.yaml")); err != nil {
			errs = append(errs, fmt.Errorf("%s: components: %q has no kustomization.yaml", rel, c))
		}
	}
	for _, im := range k.Images {
		if im.Name == "" || (im.NewTag == "" && im.Digest == "") {
			errs = append(errs, fmt.Errorf("%s: images: %q must set newTag or digest", rel, im.Name))
		}
	}
	return &k, errors.Join(errs...)
}

// checkRelative reports a kustomize resource entry that is not a file or
// directory inside kubeDir.
func checkRelative(dir, r string) error {
	if strings.Contains(r, "://") {
		return fmt.Errorf("%q: remote resources are not allowed", r)
	}
	p := path.Join(dir, r)
	if p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("%q is outside %s", r, kubeDir)
	}
	if _, err := os.Stat(filepath.Join(kubeDir, filepath.FromSlash(p))); err != nil {
		return fmt.Errorf("%q does not exist", r)
	}
	return nil
}

// bundle is everything one kustomization builds (resources, nested
// kustomizations and components), decoded.
type bundle struct {
	dir    string
	files  []string // manifest files, relative to kubeDir
	objs   []object
	images []kustomizeImage
	added  map[string]bool // kustomization directories already added
}

// loadBundle loads dir's kustomization and, recursively, what it lists,
// plus the extra components (as if listed under components:).
func loadBundle(dir string, extraComponents ...string) (*bundle, error) {
	b := &bundle{dir: dir, added: map[string]bool{}}
	err := b.add(dir, "Kustomization", extraComponents)
	return b, err
}

func (b *bundle) add(dir, kind string, extraComponents []string) error {
	if b.added[dir] { // e.g. a component both listed and added as extra
		return nil
	}
	b.added[dir] = true
	k, err := readKustomization(dir, kind)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range k.Resources {
		p := path.Join(dir, r)
		fi, err := os.Stat(filepath.Join(kubeDir, filepath.FromSlash(p)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if fi.IsDir() {
			errs = append(errs, b.add(p, "Kustomization", nil))
			continue
		}
		data, err := os.ReadFile(filepath.Join(kubeDir, filepath.FromSlash(p)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs, err := decodeFile(p, data)
		errs = append(errs, err)
		b.files = append(b.files, p)
		b.objs = append(b.objs, objs...)
	}
	for _, c := range k.Components {
		errs = append(errs, b.add(path.Join(dir, c), "Component", nil))
	}
	for _, c := range extraComponents {
		errs = append(errs, b.add(c, "Component", nil))
	}
	b.images = append(b.images, k.Images...)
	return errors.Join(errs...)
}

// pattern is one deployment pattern: its objects by kind.
type pattern struct {
	name       string
	deploy     *appsv1.Deployment
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	pvcs       map[string]*corev1.PersistentVolumeClaim
	services   []*corev1.Service
	pdbs       []*policyv1.PodDisruptionBudget
	monitors   []*serviceMonitor
	// Only the Helm chart renders these.
	podMonitors []*podMonitor
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	netpols     []*networkingv1.NetworkPolicy
}

// loadPattern loads the overlay kubeDir/name, with the monitoring
// component added, and applies the kustomization's images: the objects as
// `kubectl apply -k` (with the component enabled) would create them.
func loadPattern(name string) (*pattern, error) {
	b, err := loadBundle(name, monitoringComponent)
	if err != nil {
		return nil, err
	}
	p, err := newPattern(name, b.objs)
	if p.deploy != nil {
		applyImages(&p.deploy.Spec.Template.Spec, b.images)
	}
	return p, err
}

// newPattern sorts decoded objects (of a kustomize build or a Helm render)
// into a pattern: one Deployment and what goes with it.
func newPattern(name string, objs []object) (*pattern, error) {
	p := &pattern{
		name:       name,
		configMaps: map[string]*corev1.ConfigMap{},
		secrets:    map[string]*corev1.Secret{},
		pvcs:       map[string]*corev1.PersistentVolumeClaim{},
	}
	seen := map[string]bool{}
	var errs []error
	for _, o := range objs {
		if id := o.kind + "/" + o.name; seen[id] {
			errs = append(errs, fmt.Errorf("%s: duplicate object", o))
		} else {
			seen[id] = true
		}
		switch v := o.v.(type) {
		case *appsv1.Deployment:
			if p.deploy != nil {
				errs = append(errs, fmt.Errorf("%s: more than one Deployment", o))
			}
			p.deploy = v
		case *corev1.ConfigMap:
			p.configMaps[o.name] = v
		case *corev1.Secret:
			p.secrets[o.name] = v
		case *corev1.PersistentVolumeClaim:
			p.pvcs[o.name] = v
		case *corev1.Service:
			p.services = append(p.services, v)
		case *policyv1.PodDisruptionBudget:
			p.pdbs = append(p.pdbs, v)
		case *serviceMonitor:
			p.monitors = append(p.monitors, v)
		case *podMonitor:
			p.podMonitors = append(p.podMonitors, v)
		case *autoscalingv2.HorizontalPodAutoscaler:
			p.hpas = append(p.hpas, v)
		case *networkingv1.NetworkPolicy:
			p.netpols = append(p.netpols, v)
		}
	}
	if p.deploy == nil {
		errs = append(errs, fmt.Errorf("%s: no Deployment", name))
	}
	return p, errors.Join(errs...)
}

// applyImages is kustomize's images transformer, for exact image names.
func applyImages(spec *corev1.PodSpec, images []kustomizeImage) {
	for i := range spec.Containers {
		c := &spec.Containers[i]
		name := imageName(c.Image)
		for _, im := range images {
			if im.Name != name {
				continue
			}
			if im.NewName != "" {
				name = im.NewName
			}
			switch {
			case im.Digest != "":
				c.Image = name + "@" + im.Digest
			case im.NewTag != "":
				c.Image = name + ":" + im.NewTag
			default:
				c.Image = name + strings.TrimPrefix(c.Image, imageName(c.Image))
			}
		}
	}
}

// imageName is an image reference without tag or digest.
func imageName(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// manifestFiles lists every YAML file under kubeDir, relative to it.
func manifestFiles() ([]string, error) {
	var files []string
	err := filepath.WalkDir(kubeDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			rel, err := filepath.Rel(kubeDir, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// container returns the named container of the pattern's pod, or nil.
func (p *pattern) container(name string) *corev1.Container {
	cs := p.deploy.Spec.Template.Spec.Containers
	if i := slices.IndexFunc(cs, func(c corev1.Container) bool { return c.Name == name }); i >= 0 {
		return &cs[i]
	}
	return nil
}

// volume returns the pod volume named name, or nil.
func (p *pattern) volume(name string) *corev1.Volume {
	vs := p.deploy.Spec.Template.Spec.Volumes
	if i := slices.IndexFunc(vs, func(v corev1.Volume) bool { return v.Name == name }); i >= 0 {
		return &vs[i]
	}
	return nil
}

// secretValue is key of Secret name (stringData wins over data, as on
// the API server).
func (p *pattern) secretValue(name, key string) (string, bool) {
	s := p.secrets[name]
	if s == nil {
		return "", false
	}
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	if v, ok := s.Data[key]; ok {
		return string(v), true
	}
	return "", false
}

// configMapValue is key of ConfigMap name.
func (p *pattern) configMapValue(name, key string) (string, bool) {
	cm := p.configMaps[name]
	if cm == nil {
		return "", false
	}
	if v, ok := cm.Data[key]; ok {
		return v, true
	}
	if v, ok := cm.BinaryData[key]; ok {
		return string(v), true
	}
	return "", false
}

// secretKeys lists the keys of Secret name.
func (p *pattern) secretKeys(name string) []string {
	s := p.secrets[name]
	if s == nil {
		return nil
	}
	var keys []string
	for k := range s.StringData {
		keys = append(keys, k)
	}
	for k := range s.Data {
		if _, dup := s.StringData[k]; !dup {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// configMapKeys lists the keys of ConfigMap name.
func (p *pattern) configMapKeys(name string) []string {
	cm := p.configMaps[name]
	if cm == nil {
		return nil
	}
	var keys []string
	for k := range cm.Data {
		keys = append(keys, k)
	}
	for k := range cm.BinaryData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
