package install

import (
	"debug/buildinfo"
	"debug/elf"
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
