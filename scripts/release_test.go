package scripts

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// cycloneDX is the part of a CycloneDX JSON BOM the test reads.
type cycloneDX struct {
	BOMFormat   string `json:"bomFormat"`
	SpecVersion string `json:"specVersion"`
	Metadata    struct {
		Component struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			PURL    string `json:"purl"`
		} `json:"component"`
		Properties []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"properties"`
	} `json:"metadata"`
	Components []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Hashes  []struct {
			Alg     string `json:"alg"`
			Content string `json:"content"`
		} `json:"hashes"`
	} `json:"components"`
}

// TestRelease runs release.sh as `make release` does, for the host's
// target only (the others are the same build cross-compiled), into a temp
// dir, twice: the version is git's, the binary is static and prints it,
// the SBOM lists exactly the modules linked into the binary, SHA256SUMS
// holds every artefact's hash, and the second run is byte-identical.
func TestRelease(t *testing.T) {
	for _, tool := range []string{"git", "bash", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	version := strings.TrimSpace(string(out))
	target := runtime.GOOS + "/" + runtime.GOARCH
	bin := "rivet-gateway-" + version + "-" + runtime.GOOS + "-" + runtime.GOARCH

	release := func(dist string) string {
		t.Helper()
		cmd := exec.Command("bash", "release.sh")
		cmd.Env = append(os.Environ(), "DIST="+dist, "TARGETS="+target, "VERSION=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("release.sh: %v\n%s", err, out)
		}
		return filepath.Join(dist, version)
	}
	dir := release(t.TempDir())

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"SHA256SUMS", bin, bin + ".cdx.json"}; !slices.Equal(names, want) {
		t.Fatalf("%s holds %v, want %v", dir, names, want)
	}

	// The binary: the version from git, static, built as the Dockerfile does.
	path := filepath.Join(dir, bin)
	got, err := exec.Command(path, "-version").Output()
	if err != nil || strings.TrimSpace(string(got)) != "rivet-gateway "+version {
		t.Errorf("%s -version: %q, %v; want %q", bin, got, err, "rivet-gateway "+version)
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" || settings["GOOS"] != runtime.GOOS || settings["GOARCH"] != runtime.GOARCH {
		t.Errorf("build settings %v: want CGO_ENABLED=0, -trimpath, %s", settings, target)
	}
	if bi.Path != "github.com/rivet-gateway/rivet-gateway/cmd/rivet-gateway" {
		t.Errorf("built %s", bi.Path)
	}
	if runtime.GOOS == "linux" {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("program header %v: the binary is dynamically linked", p.Type)
			}
		}
		if f.Section(".symtab") != nil {
			t.Error("the binary has a symbol table: not built with -s")
		}
		f.Close()
	}

	// SHA256SUMS: `sha256sum -c` format, every other artefact, right.
	sums := map[string]string{}
	sumsFile, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(sumsFile))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("SHA256SUMS line %q: want <hex>  <name>", sc.Text())
		}
		sums[name] = sum
	}
	for _, name := range []string{bin, bin + ".cdx.json"} {
		if sums[name] != fileSHA256(t, filepath.Join(dir, name)) {
			t.Errorf("SHA256SUMS has %q for %s, want %s", sums[name], name, fileSHA256(t, filepath.Join(dir, name)))
		}
	}
	if len(sums) != 2 {
		t.Errorf("SHA256SUMS lists %d files, want 2", len(sums))
	}

	// The SBOM: of this binary, naming every module linked into it.
	var bom cycloneDX
	data, err := os.ReadFile(filepath.Join(dir, bin+".cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.6" {
		t.Errorf("SBOM format %s %s, want CycloneDX 1.6", bom.BOMFormat, bom.SpecVersion)
	}
	if c := bom.Metadata.Component; c.Name != "github.com/rivet-gateway/rivet-gateway" || c.Version != version || !strings.Contains(c.PURL, "goos="+runtime.GOOS) {
		t.Errorf("SBOM component %+v, want the gateway at %s for %s", c, version, target)
	}
	binHash := ""
	for _, p := range bom.Metadata.Properties {
		if p.Name == "cdx:gomod:binary:hash:SHA-256" {
			binHash = p.Value
		}
	}
	if binHash != sums[bin] {
		t.Errorf("the SBOM describes a binary with SHA-256 %q, the release's is %s", binHash, sums[bin])
	}
	inBOM := map[string]string{}
	for _, c := range bom.Components {
		inBOM[c.Name] = c.Version
		if len(c.Hashes) == 0 {
			t.Errorf("SBOM component %s has no hash", c.Name)
		}
	}
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		if inBOM[d.Path] != m.Version {
			t.Errorf("module %s %s is linked in, the SBOM says %q", d.Path, m.Version, inBOM[d.Path])
		}
	}
	if len(inBOM) != len(bi.Deps) || len(bi.Deps) == 0 {
		t.Errorf("the SBOM lists %d modules, the binary links %d", len(inBOM), len(bi.Deps))
	}

	// Reproducible: a second run gives the same bytes.
	again, err := os.ReadFile(filepath.Join(release(t.TempDir()), "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, sumsFile) {
		t.Errorf("a second release.sh run differs:\n%s\nfirst:\n%s", again, sumsFile)
	}
}

// TestReleaseRefuses: release.sh stops before building on a version that
// cannot name files and on a target Go does not know.
func TestReleaseRefuses(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	for _, env := range [][]string{
		{"VERSION=v1/evil", "TARGETS=linux/amd64"},
		{"VERSION=v1.0.0", "TARGETS=linux/amd65"},
	} {
		dist := t.TempDir()
		cmd := exec.Command("bash", "release.sh")
		cmd.Env = append(os.Environ(), append(env, "DIST="+dist)...)
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 {
			t.Errorf("%v: exit %d (%v), want 2\n%s", env, code, err, out)
		}
		if entries, _ := os.ReadDir(dist); len(entries) > 0 {
			t.Errorf("%v: wrote %v", env, entries)
		}
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
