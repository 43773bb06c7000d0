package testenv

import (
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// WebhookHost is the name the API server calls local webhook servers by; a certificate for the webhooks must
// carry it (envtest's own does).
const WebhookHost = "localhost"

// WebhookOptions installs the generated webhook configurations (config/webhook/manifests.yaml) so that the API
// server calls a webhook server on this machine over TLS, at LocalServingHost:LocalServingPort, trusting the
// certificate envtest writes to LocalServingCertDir.
func WebhookOptions() *envtest.WebhookInstallOptions {
	return &envtest.WebhookInstallOptions{
		Paths:                        []string{filepath.Join(RepoRoot(), "config", "webhook", "manifests.yaml")},
		LocalServingHostExternalName: WebhookHost,
	}
}
