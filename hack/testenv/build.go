package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build compiles the command in pkg (a path relative to the repository root, "." for the manager) from this
// checkout into dir/name, so that a test or benchmark runs the binary a release would ship, as a process of its own:
// built as the images build it (make build-static), since the symbol tables of a default build are also mapped into
// the process and would count in its measured memory.
func Build(dir, pkg, name string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}
