package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// OperatorUser adds a user called name that holds only the ClusterRole `make manifests` generates from the
// RBAC markers (config/rbac/role.yaml), so that whatever runs as it also proves the role sufficient. The
// user's client limits are the admin's, which envtest raises for speed.
func (s *APIServer) OperatorUser(ctx context.Context, name string) (*envtest.AuthenticatedUser, error) {
	raw, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(raw, role); err != nil {
		return nil, err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}},
	}
	if err := errors.Join(s.Client.Create(ctx, role), s.Client.Create(ctx, binding)); err != nil {
		return nil, err
	}
	return s.Env.AddUser(envtest.User{Name: name}, &rest.Config{QPS: s.Config.QPS, Burst: s.Config.Burst})
}
