package testenv

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
)

// Versions of the edge providers whose CRDs the tests install, as the upstream projects ship them.
const (
	GatewayAPIModule = "sigs.k8s.io/gateway-api@v1.6.3"
	TraefikModule    = "github.com/traefik/traefik/v3@v3.7.13"
)

// EdgeCRDPaths are the upstream CRD files of the Gateway API standard channel and of Traefik, located in the
// Go module cache (`go mod download` fetches a module that is not there yet, without touching go.mod).
func EdgeCRDPaths() ([]string, error) {
	gateway, err := moduleDir(GatewayAPIModule)
	if err != nil {
		return nil, err
	}
	traefik, err := moduleDir(TraefikModule)
	if err != nil {
		return nil, err
	}
	standard := filepath.Join(gateway, "config", "crd", "standard")
	return []string{
		filepath.Join(standard, "gateway.networking.k8s.io_gatewayclasses.yaml"),
		filepath.Join(standard, "gateway.networking.k8s.io_gateways.yaml"),
		filepath.Join(standard, "gateway.networking.k8s.io_httproutes.yaml"),
		filepath.Join(standard, "gateway.networking.k8s.io_referencegrants.yaml"),
		filepath.Join(traefik, "docs", "content", "reference", "dynamic-configuration", "kubernetes-crd-definition-v1.yml"),
	}, nil
}

func moduleDir(module string) (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", module, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("go mod download %s: %w", module, err)
	}
	if m.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", module, m.Error)
	}
	return m.Dir, nil
}
