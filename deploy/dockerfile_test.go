package deploy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/version"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/rivet-gateway/rivet-gateway/gateway"
)

// The image the Dockerfile must produce.
const (
	finalImage      = "gcr.io/distroless/static-debian12:nonroot"
	gatewayPackage  = "./cmd/rivet-gateway"
	imageBinaryPath = "/rivet-gateway"
	// testVersion is passed as VERSION when the Dockerfile's build is
	// replayed; `-version` must print it back.
	testVersion = "v0.0.0-deploytest"
)

// dockerfile is what the tests need of deploy/Dockerfile.
type dockerfile struct {
	globalArgs map[string]string
	stages     []*stage

	// Of the final stage.
	user       string
	expose     []int
	entrypoint []string
	cmd        []string
	copies     []string // COPY lines, as written

	build *goBuild // the `go build` RUN
}

type stage struct {
	image, name string
	args        map[string]string // ARG NAME[=default] declared in the stage
}

// goBuild is the `go build` of a RUN line, with the stage's build args
// replaced by the replay values (VERSION=testVersion, the host's
// TARGETOS/TARGETARCH).
type goBuild struct {
	stage  *stage
	env    map[string]string // NAME=VALUE words before `go`
	args   []string          // after `go`: build, flags, package
	output string            // -o
}

// parseDockerfile parses the instructions the tests check. Continuation
// lines are joined and comment lines dropped, as docker does.
func parseDockerfile(text string) (*dockerfile, error) {
	df := &dockerfile{globalArgs: map[string]string{}}
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "#") || (t == "" && cur.Len() > 0) {
			continue
		}
		if strings.HasSuffix(strings.TrimRight(l, " \t"), "\\") {
			cur.WriteString(strings.TrimSuffix(strings.TrimRight(l, " \t"), "\\"))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(l)
		if s := strings.TrimSpace(cur.String()); s != "" {
			lines = append(lines, s)
		}
		cur.Reset()
	}
	var errs []error
	var st *stage
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		instr, rest = strings.ToUpper(instr), strings.TrimSpace(rest)
		if st == nil && instr != "FROM" && instr != "ARG" {
			errs = append(errs, fmt.Errorf("%s before the first FROM", instr))
			continue
		}
		switch instr {
		case "ARG":
			name, def, _ := strings.Cut(rest, "=")
			if st == nil {
				df.globalArgs[name] = def
			} else {
				st.args[name] = def
			}
		case "FROM":
			f := strings.Fields(rest)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			if len(f) == 0 {
				errs = append(errs, errors.New("FROM without image"))
				continue
			}
			image := os.Expand(f[0], func(k string) string { return df.globalArgs[k] })
			st = &stage{image: image, args: map[string]string{}}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			df.stages = append(df.stages, st)
			// Instructions below describe the final stage only.
			df.user, df.expose, df.entrypoint, df.cmd, df.copies = "", nil, nil, nil, nil
		case "USER":
			df.user = rest
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					errs = append(errs, fmt.Errorf("EXPOSE %s: %v", p, err))
				}
				df.expose = append(df.expose, n)
			}
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				errs = append(errs, fmt.Errorf("%s must be in exec (JSON) form: %v", instr, err))
			}
			if instr == "ENTRYPOINT" {
				df.entrypoint = v
			} else {
				df.cmd = v
			}
		case "COPY":
			df.copies = append(df.copies, strings.Join(strings.Fields(rest), " "))
		case "RUN":
			b, err := parseGoBuild(rest, st)
			if err != nil {
				errs = append(errs, fmt.Errorf("RUN %s: %w", rest, err))
			}
			if b != nil {
				if df.build != nil {
					errs = append(errs, errors.New("more than one RUN with go build"))
				}
				df.build = b
			}
		}
	}
	return df, errors.Join(errs...)
}

// parseGoBuild returns the `go build` command of a RUN, or nil.
func parseGoBuild(run string, st *stage) (*goBuild, error) {
	if !strings.Contains(run, "go build") {
		return nil, nil
	}
	vars := map[string]string{"VERSION": testVersion, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH}
	words, err := shellWords(run, vars)
	if err != nil {
		return nil, err
	}
	for len(words) > 0 && strings.HasPrefix(words[0], "--") { // --mount=...
		words = words[1:]
	}
	for seg := range splitWords(words, "&&") {
		b := &goBuild{stage: st, env: map[string]string{}}
		i := 0
		for ; i < len(seg) && envAssign.MatchString(seg[i]); i++ {
			k, v, _ := strings.Cut(seg[i], "=")
			b.env[k] = v
		}
		if i+1 >= len(seg) || seg[i] != "go" || seg[i+1] != "build" {
			continue
		}
		b.args = slices.Clone(seg[i+1:])
		for j, a := range b.args {
			if a == "-o" && j+1 < len(b.args) {
				b.output = b.args[j+1]
			}
		}
		return b, nil
	}
	return nil, nil
}

var envAssign = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func splitWords(words []string, sep string) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		start := 0
		for i, w := range words {
			if w == sep {
				if !yield(words[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(words[start:])
	}
}

// shellWords splits a shell command into words: quotes, backslashes and
// $VAR / ${VAR} (from vars; an unknown one is an error).
func shellWords(s string, vars map[string]string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in := false
	expand := func(i int) (int, error) { // s[i] == '$'; returns the last index consumed
		if i+1 < len(s) && s[i+1] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return 0, errors.New("unterminated ${")
			}
			name := s[i+2 : i+end]
			v, ok := vars[name]
			if !ok {
				return 0, fmt.Errorf("${%s} is not a build arg the test knows", name)
			}
			cur.WriteString(v)
			return i + end, nil
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j == i+1 {
			cur.WriteByte('$')
			return i, nil
		}
		v, ok := vars[s[i+1:j]]
		if !ok {
			return 0, fmt.Errorf("$%s is not a build arg the test knows", s[i+1:j])
		}
		cur.WriteString(v)
		return j - 1, nil
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated '")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			in = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				switch {
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
					i++
					cur.WriteByte(s[i])
				case s[i] == '$':
					n, err := expand(i)
					if err != nil {
						return nil, err
					}
					i = n
				default:
					cur.WriteByte(s[i])
				}
			}
			if i >= len(s) {
				return nil, errors.New(`unterminated "`)
			}
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == '$':
			n, err := expand(i)
			if err != nil {
				return nil, err
			}
			i = n
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// checkDockerfile checks the Dockerfile on its own: two stages, a static
// non-root distroless image, the gateway's default ports, and a go build
// with the flags a static, reproducible, versioned binary needs.
func checkDockerfile(df *dockerfile, goModGo string) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("Dockerfile: "+format, a...)) }
	if len(df.stages) != 2 {
		bad("want 2 stages (build, final), got %d", len(df.stages))
		return errs
	}
	build, final := df.stages[0], df.stages[1]
	if tag, ok := strings.CutPrefix(build.image, "golang:"); !ok || !strings.HasSuffix(tag, "-bookworm") {
		bad("build stage FROM %q: want golang:<version>-bookworm", build.image)
	} else if v := "go" + strings.TrimSuffix(tag, "-bookworm"); !version.IsValid(v) || version.Compare(v, "go"+goModGo) < 0 {
		bad("build stage Go %q is older than go.mod's go %s (or not a version)", strings.TrimSuffix(tag, "-bookworm"), goModGo)
	}
	if build.name == "" {
		bad("build stage has no name (FROM ... AS build)")
	}
	if final.image != finalImage {
		bad("final stage FROM %q, want %q", final.image, finalImage)
	}
	if _, ok := build.args["VERSION"]; !ok {
		bad("build stage declares no ARG VERSION")
	}
	// The build.
	b := df.build
	if b == nil || b.stage != build {
		bad("no RUN ... go build in the build stage")
	} else {
		if b.env["CGO_ENABLED"] != "0" {
			bad("go build without CGO_ENABLED=0 (the final image has no libc)")
		}
		if !slices.Contains(b.args, "-trimpath") {
			bad("go build without -trimpath")
		}
		i := slices.Index(b.args, "-ldflags")
		var ld []string
		if i >= 0 && i+1 < len(b.args) {
			ld = strings.Fields(b.args[i+1])
		}
		for _, f := range []string{"-s", "-w"} {
			if !slices.Contains(ld, f) {
				bad("go build -ldflags %q lacks %s", ld, f)
			}
		}
		if j := slices.Index(ld, "-X"); j < 0 || j+1 >= len(ld) || ld[j+1] != "main.version="+testVersion {
			bad("go build -ldflags %q does not set -X main.version=${VERSION}", ld)
		}
		if b.args[len(b.args)-1] != gatewayPackage {
			bad("go build does not build %s last: %q", gatewayPackage, b.args)
		}
		if !strings.HasPrefix(b.output, "/") {
			bad("go build -o %q: want an absolute path", b.output)
		}
		want := fmt.Sprintf("--from=%s %s %s", build.name, b.output, imageBinaryPath)
		if !slices.Contains(df.copies, want) {
			bad("final stage has no COPY %s (got %q)", want, df.copies)
		}
	}
	// The final image.
	uid, gid, err := parseUser(df.user)
	switch {
	case err != nil:
		bad("USER %q: %v", df.user, err)
	case uid == 0 || gid == 0:
		bad("USER %q runs as root", df.user)
	}
	def := gateway.DefaultConfig()
	want := []int{mustPort(def.Server.Listen), mustPort(def.Admin.Listen)}
	if got := slices.Sorted(slices.Values(df.expose)); !slices.Equal(got, want) {
		bad("EXPOSE %v, want server.listen and admin.listen defaults %v", got, want)
	}
	if !slices.Equal(df.entrypoint, []string{imageBinaryPath}) {
		bad("ENTRYPOINT %q, want [%q]", df.entrypoint, imageBinaryPath)
	}
	if len(df.cmd) != 2 || df.cmd[0] != "-config" || !strings.HasPrefix(df.cmd[1], "/") {
		bad("CMD %q, want [\"-config\", \"/absolute/config.yaml\"]", df.cmd)
	}
	return errs
}

// parseUser parses a numeric USER uid[:gid]. Names are refused: the
// kubelet cannot check runAsNonRoot against a user name.
func parseUser(u string) (uid, gid int, err error) {
	us, gs, hasGroup := strings.Cut(u, ":")
	if uid, err = strconv.Atoi(us); err != nil {
		return 0, 0, fmt.Errorf("uid must be numeric")
	}
	gid = uid
	if hasGroup {
		if gid, err = strconv.Atoi(gs); err != nil {
			return 0, 0, fmt.Errorf("gid must be numeric")
		}
	}
	return uid, gid, nil
}

// readDockerfile reads and parses deploy/Dockerfile.
func readDockerfile() (*dockerfile, string, error) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		return nil, "", err
	}
	df, err := parseDockerfile(string(b))
	return df, string(b), err
}

// goModGoVersion is the go directive of the module's go.mod.
func goModGoVersion() (string, error) {
	b, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		return "", errors.New("go.mod has no go directive")
	}
	return string(m[1]), nil
}

// replayBuild runs the Dockerfile's `go build` on this machine, from the
// repository root (the build context), writing the binary to out.
func replayBuild(b *goBuild, out string) ([]byte, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, err
	}
	args := slices.Clone(b.args)
	if i := slices.Index(args, "-o"); i >= 0 {
		args[i+1] = out
	} else {
		return nil, errors.New("go build has no -o")
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = ".."
	cmd.Env = os.Environ()
	for k, v := range b.env {
		cmd.Env = append(cmd.Env, k+"="+v) // the last value of a key wins
	}
	return cmd.CombinedOutput()
}
