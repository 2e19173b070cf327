package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	helmengine "helm.sh/helm/v4/pkg/engine"
	corev1 "k8s.io/api/core/v1"
)

// chartDir is the Helm chart, relative to this package.
const chartDir = "helm/rivet-gateway"

// The release the tests render: a name other than the chart's, so that
// nothing relies on the objects being called rivet-gateway.
const (
	chartRelease   = "edge"
	chartNamespace = "rivet"
)

// chartKubeVersion is the oldest Kubernetes the chart declares
// (Chart.yaml kubeVersion); the renders use it, so the manifests hold
// nothing a newer cluster alone would accept.
const chartKubeVersion = "v1.30.0"

// valuesSet is one way of installing the chart: `helm install -f` of each
// file (relative to chartDir) in order, then overlay (YAML), as a further
// -f. existingSecret stands for a Secret the operator created (the chart
// renders none): its keys and values, as the test models them.
type valuesSet struct {
	name           string
	mode           string // the kustomize pattern it must agree with, if any
	files          []string
	overlay        string
	existingSecret map[string]string
}

// loadChart loads the chart directory the way `helm install DIR` does.
func loadChart() (*chart.Chart, error) {
	return loader.Load(chartDir)
}

// chartValues merges the values files and the overlay the way `helm
// install -f a -f b` does (later files win, maps merge).
func chartValues(vs valuesSet) (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range vs.files {
		data, err := os.ReadFile(filepath.Join(chartDir, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		v, err := loader.LoadValues(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		vals = loader.MergeMaps(vals, v)
	}
	if vs.overlay != "" {
		v, err := loader.LoadValues(strings.NewReader(vs.overlay))
		if err != nil {
			return nil, fmt.Errorf("overlay: %w", err)
		}
		vals = loader.MergeMaps(vals, v)
	}
	return vals, nil
}

// renderChart is `helm template` (helm.sh/helm/v4/pkg/action's
// client-only install, without the cluster client that package builds
// in): kubeVersion checked against Chart.yaml, the values against
// values.schema.json, then Helm's engine renders every template. NOTES.txt
// must render but is not a manifest. The result is the manifests with a
// `# Source:` line each, as `helm template` prints them (ordered by
// template name here, not by kind: nothing checked depends on the order).
func renderChart(ch *chart.Chart, vals map[string]any, kubeVersion string) (string, error) {
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		return "", err
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	if c := ch.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, caps.KubeVersion.String()) {
		return "", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", c, caps.KubeVersion.Version)
	}
	opts := common.ReleaseOptions{Name: chartRelease, Namespace: chartNamespace, Revision: 1, IsInstall: true}
	top, err := util.ToRenderValuesWithSchemaValidation(ch, vals, opts, caps, false)
	if err != nil {
		return "", err
	}
	files, err := helmengine.Render(ch, top)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	for _, name := range slices.Sorted(maps.Keys(files)) {
		base := path.Base(name)
		switch {
		case base == "NOTES.txt":
			if strings.TrimSpace(files[name]) == "" {
				return "", fmt.Errorf("%s renders empty", name)
			}
		case strings.HasPrefix(base, "_"), strings.TrimSpace(files[name]) == "":
			// Partials, and templates switched off by the values.
		default:
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, strings.TrimSpace(files[name]))
		}
	}
	return out.String(), nil
}

// lintChart is `helm lint --strict` with vals: warnings are failures.
func lintChart(vals map[string]any) error {
	kv, err := common.ParseKubeVersion(chartKubeVersion)
	if err != nil {
		return err
	}
	res := lint.RunAll(chartDir, vals, chartNamespace, lint.WithKubeVersion(kv))
	var errs []error
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			errs = append(errs, m)
		}
	}
	return errors.Join(errs...)
}

var sourceRE = regexp.MustCompile(`(?m)^# Source: (\S+)$`)

// decodeRender decodes every document of a rendered chart strictly, each
// named after the template it came from.
func decodeRender(set string, manifest string) ([]object, error) {
	docs, err := splitDocs([]byte(manifest))
	if err != nil {
		return nil, err
	}
	var objs []object
	var errs []error
	for _, d := range docs {
		src := "?"
		if m := sourceRE.FindSubmatch(d); m != nil {
			src = string(m[1])
		}
		o, err := decodeFile(set+":"+src, d)
		errs = append(errs, err)
		objs = append(objs, o...)
	}
	if len(objs) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: the chart rendered nothing", set))
	}
	return objs, errors.Join(errs...)
}

// loadChartPattern renders the chart with vs and sorts the objects into a
// pattern, the operator's Secret (existingSecret) added to them.
func loadChartPattern(ch *chart.Chart, vs valuesSet) (*pattern, error) {
	vals, err := chartValues(vs)
	if err != nil {
		return nil, err
	}
	manifest, err := renderChart(ch, vals, chartKubeVersion)
	if err != nil {
		return nil, err
	}
	objs, err := decodeRender(vs.name, manifest)
	if err != nil {
		return nil, err
	}
	p, err := newPattern("chart/"+vs.name, objs)
	if err != nil {
		return nil, err
	}
	if vs.existingSecret != nil {
		name := vals["secrets"].(map[string]any)["existingSecret"].(string)
		if p.secrets[name] != nil {
			return nil, fmt.Errorf("secrets.existingSecret %s, and the chart renders a Secret of that name", name)
		}
		s := &corev1.Secret{}
		s.Name = name
		s.StringData = vs.existingSecret
		p.secrets[name] = s
	}
	return p, nil
}
