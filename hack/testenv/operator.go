package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// OperatorUser adds a user holding only the ClusterRole that `make manifests` generates from the RBAC markers
// (config/rbac/role.yaml), so that tests running the operator as this user also prove the role sufficient.
func (s *APIServer) OperatorUser(name string) (*envtest.AuthenticatedUser, error) {
	role := &rbacv1.ClusterRole{}
	if err := readManifest(filepath.Join("config", "rbac", "role.yaml"), role); err != nil {
		return nil, err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}},
	}
	ctx := context.Background()
	if err := errors.Join(s.Client.Create(ctx, role), s.Client.Create(ctx, binding)); err != nil {
		return nil, err
	}
	// The admin's client limits, which envtest raises for speed.
	limits := &rest.Config{QPS: s.Config.QPS, Burst: s.Config.Burst}
	return s.Env.AddUser(envtest.User{Name: name}, limits)
}

// GrantLeaderElection gives user the Role of config/rbac/leader_election_role.yaml in namespace: what the
// operator needs besides its ClusterRole to hold the leader-election Lease there.
func (s *APIServer) GrantLeaderElection(ctx context.Context, namespace, user string) error {
	role := &rbacv1.Role{}
	if err := readManifest(filepath.Join("config", "rbac", "leader_election_role.yaml"), role); err != nil {
		return err
	}
	role.Namespace = namespace
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	return errors.Join(s.Client.Create(ctx, role), s.Client.Create(ctx, binding))
}

func readManifest(path string, into any) error {
	raw, err := os.ReadFile(filepath.Join(RepoRoot(), path))
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(raw, into)
}

// MarkRolledOut plays the Deployment controller, which envtest lacks: it reports every desired pod of the
// Deployment's latest spec updated, ready and available.
func MarkRolledOut(ctx context.Context, c client.Client, namespace, name string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
			return err
		}
		n := ptr.Deref(d.Spec.Replicas, 1)
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation,
			Replicas:           n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		}
		return c.Status().Update(ctx, d)
	})
}
