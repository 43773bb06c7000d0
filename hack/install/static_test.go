package install

import (
	"debug/buildinfo"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStaticBinaries builds both binaries with `make build-static`, the target the Dockerfile runs, and checks
// what the scratch images rely on: static executables (no interpreter, no dynamic section), built with CGO off and
// -trimpath, that report the version they were stamped with. No container engine is needed.
func TestStaticBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries")
	}
	const version = "v9.9.9-test"
	dir := t.TempDir()
	cmd := exec.Command("make", "-s", "build-static", "STATIC_DIR="+dir, "VERSION="+version, "API_IMG=packnow-api:"+version)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build-static: %v\n%s", err, out)
	}
	for _, b := range []struct {
		name, versionFlag, versionOut string
		// help is in the -h output: the manager's shows the API image stamped in by the build.
		help string
	}{
		{"manager", "--version", "packnow-operator " + version, `default "packnow-api:` + version + `"`},
		{"packnow-api", "-version", "packnow-api " + version, "-version"},
	} {
		t.Run(b.name, func(t *testing.T) {
			path := filepath.Join(dir, b.name)
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("%s has a %s program header: not static", b.name, p.Type)
				}
			}
			if f.Section(".dynamic") != nil {
				t.Errorf("%s has a .dynamic section: not static", b.name)
			}
			info, err := buildinfo.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
				t.Errorf("build settings %v, want CGO_ENABLED=0 and -trimpath", settings)
			}

			out, err := exec.Command(path, b.versionFlag).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != b.versionOut {
				t.Errorf("%s %s: %q, %v; want %q", b.name, b.versionFlag, out, err, b.versionOut)
			}
			out, err = exec.Command(path, "-h").CombinedOutput()
			if err != nil || !strings.Contains(string(out), b.help) {
				t.Errorf("%s -h: %v\n%s", b.name, err, out)
			}
		})
	}
}

// TestDockerBuildContext checks that the Dockerfile's build context, as .dockerignore cuts it, holds every
// package and embedded file of both binaries: a new top-level package missing from its allow-list would break
// only the image build, which no machine here runs. The test reads .dockerignore in the shape it has: "*", then
// "!path" lines that let paths in, then "**/" patterns that leave files out again.
func TestDockerBuildContext(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var allow, deny []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#") || l == "*":
		case strings.HasPrefix(l, "!"):
			allow = append(allow, strings.TrimSuffix(l[1:], "/"))
		case strings.HasPrefix(l, "**/"):
			deny = append(deny, strings.TrimSuffix(l[3:], "/"))
		default:
			t.Fatalf(".dockerignore line %q has a shape this test does not read", l)
		}
	}
	ctx := t.TempDir()
	for _, a := range allow {
		src := filepath.Join(root, a)
		err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			for _, pattern := range deny {
				if ok, _ := filepath.Match(pattern, d.Name()); ok {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
			}
			rel, _ := filepath.Rel(root, path)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(ctx, rel), 0o755)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(ctx, rel), data, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Error}}{{.}}{{end}}{{range .DepsErrors}}{{.}}{{end}}",
		".", "./app/cmd/packnow-api")
	cmd.Dir = ctx
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("the build context lacks something the binaries need (%v):\n%s", err, out)
	}
}
