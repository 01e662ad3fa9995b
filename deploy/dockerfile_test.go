package deploy

import (
	"encoding/json"
	"fmt"
	"go/build"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	repoRoot   = ".."
	modulePath = "github.com/pingmcp/pingmcp"
	mainPkg    = "./cmd/pingmcp"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

type stage struct {
	base, name string
	instrs     []instruction
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func parseDockerfile(text string) ([]stage, error) {
	var stages []stage
	var logical strings.Builder
	flush := func() error {
		line := strings.TrimSpace(logical.String())
		logical.Reset()
		if line == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			st := stage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				return nil
			}
			return fmt.Errorf("%s before FROM", in.cmd)
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
		return nil
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			logical.WriteString(cont + " ")
			continue
		}
		logical.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return stages, flush()
}

func readDockerfile(t *testing.T) []stage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	return stages
}

// dockerfileUser is the numeric user the final image runs as.
func dockerfileUser() (int64, error) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		return 0, err
	}
	stages, err := parseDockerfile(string(raw))
	if err != nil || len(stages) == 0 {
		return 0, fmt.Errorf("Dockerfile: %v", err)
	}
	final := stages[len(stages)-1]
	users := final.all("USER")
	if len(users) == 0 {
		return 0, fmt.Errorf("Dockerfile: the final stage sets no USER")
	}
	user, _, _ := strings.Cut(users[len(users)-1], ":")
	uid, err := strconv.ParseInt(user, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("Dockerfile: USER %q is not numeric, so Kubernetes' runAsNonRoot cannot check it", user)
	}
	return uid, nil
}

var goBuildFlag = regexp.MustCompile(`-ldflags[ =]["']-s -w["']`)

// TestDockerfile checks that the image builds the main package the tests
// build, statically, and runs it as a non-root user.
func TestDockerfile(t *testing.T) {
	stages := readDockerfile(t)
	build0, final := stages[0], stages[len(stages)-1]

	goMod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + string(goVersion[1]); build0.base != want && !strings.HasPrefix(build0.base, want+"-") && !strings.HasPrefix(build0.base, want+".") {
		t.Errorf("build stage FROM %s, want %s (go.mod says go %s)", build0.base, want, goVersion[1])
	}

	var out string
	for _, run := range build0.all("RUN") {
		if !strings.Contains(run, "go build") {
			continue
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
			if !strings.Contains(run, want) {
				t.Errorf("go build without %s: %s", want, run)
			}
		}
		if !goBuildFlag.MatchString(run) {
			t.Errorf(`go build without -ldflags "-s -w": %s`, run)
		}
		f := strings.Fields(run)
		if i := slices.Index(f, "-o"); i >= 0 && i+1 < len(f) {
			out = f[i+1]
		}
		if f[len(f)-1] != mainPkg {
			t.Errorf("go build builds %s, want %s", f[len(f)-1], mainPkg)
		}
	}
	if out == "" {
		t.Fatal("the build stage runs no `go build -o <binary>`")
	}
	pkg, err := build.ImportDir(filepath.Join(repoRoot, mainPkg), 0)
	if err != nil || pkg.Name != "main" {
		t.Errorf("%s is not a main package: %v", mainPkg, err)
	}

	var binary string
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		if len(f) == 3 && f[0] == "--from="+build0.name && f[1] == out {
			binary = f[2]
		}
	}
	if binary == "" {
		t.Fatalf("the final stage copies no %s from stage %q", out, build0.name)
	}
	entry := final.all("ENTRYPOINT")
	var argv []string
	if len(entry) != 1 || json.Unmarshal([]byte(entry[0]), &argv) != nil || len(argv) != 1 || argv[0] != binary {
		t.Errorf("ENTRYPOINT %q, want exactly [%q] in exec form (the manifests give the command as args)", entry, binary)
	}
	switch {
	case strings.HasPrefix(final.base, "gcr.io/distroless/static"):
	case final.base == "scratch":
		if !slices.ContainsFunc(final.all("COPY"), func(c string) bool { return strings.Contains(c, "ca-certificates") }) {
			t.Error("a scratch image needs CA certificates to reach PingFederate over HTTPS")
		}
	default:
		t.Errorf("final stage FROM %s: want distroless static or scratch", final.base)
	}
	uid, err := dockerfileUser()
	if err != nil {
		t.Fatal(err)
	}
	if uid == 0 {
		t.Error("the image runs as root")
	}
}

// dockerignore is the exclusion list of a build context, with Docker's
// semantics: a path is excluded when a pattern matches it or one of its
// parent directories; "**" matches any number of directories; "!" re-includes;
// the last matching pattern wins.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func parseDockerignore(text string) dockerignore {
	var d dockerignore
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		negate := strings.HasPrefix(line, "!")
		p := path.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), negate})
	}
	return d
}

func (d dockerignore) excludes(file string) bool {
	excluded := false
	for _, p := range d {
		for dir := file; dir != "." && dir != "/"; dir = path.Dir(dir) {
			if p.re.MatchString(dir) {
				excluded = !p.negate
				break
			}
		}
	}
	return excluded
}

// buildInputs lists the files `go build ./cmd/pingmcp` reads from the module:
// go.mod, go.sum and the sources of every package of the module it imports.
func buildInputs() ([]string, error) {
	files := []string{"go.mod", "go.sum"}
	seen := map[string]bool{}
	var visit func(rel string) error
	visit = func(rel string) error {
		if seen[rel] {
			return nil
		}
		seen[rel] = true
		pkg, err := build.ImportDir(filepath.Join(repoRoot, rel), 0)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		for _, f := range slices.Concat(pkg.GoFiles, pkg.CgoFiles, pkg.SFiles, pkg.HFiles, pkg.EmbedPatterns) {
			files = append(files, path.Join(rel, f))
		}
		for _, imp := range pkg.Imports {
			if sub, ok := strings.CutPrefix(imp, modulePath+"/"); ok {
				if err := visit(sub); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return files, visit(strings.TrimPrefix(mainPkg, "./"))
}

func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignore := parseDockerignore(string(raw))
	inputs, err := buildInputs()
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 10 {
		t.Fatalf("found only %d build inputs: %v", len(inputs), inputs)
	}
	for _, f := range inputs {
		if ignore.excludes(f) {
			t.Errorf(".dockerignore excludes %s, which the build needs", f)
		}
	}
	for _, f := range []string{".git/HEAD", ".cache/go-build/x", "test-results/report.xml", "cmd/pingmcp/pingmcp.test", "e2e/oauthclient/node_modules/x/index.js", "pingmcp"} {
		if !ignore.excludes(f) {
			t.Errorf(".dockerignore lets %s into the build context", f)
		}
	}
}

func TestDockerignoreMatching(t *testing.T) {
	d := parseDockerignore("# comment\n.git\n**/*.test\n/bin\ndocs\n!docs/keep.md\n")
	for _, tc := range []struct {
		file string
		want bool
	}{
		{".git/objects/ab", true},
		{"sub/.git", false},
		{"a/b/c.test", true},
		{"c.test", true},
		{"bin/x", true},
		{"cmd/bin/x", false},
		{"docs/a.md", true},
		{"docs/keep.md", false},
		{"go.mod", false},
	} {
		if got := d.excludes(tc.file); got != tc.want {
			t.Errorf("excludes(%q) = %v, want %v", tc.file, got, tc.want)
		}
	}
}
