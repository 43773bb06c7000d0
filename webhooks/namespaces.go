package webhooks

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// PodSecurityOwnerAnnotation marks a pod security label that the operator set for the namespace's PackNowApps
// rather than an administrator; only such a label follows the apps' spec.podSecurity.mode and goes with them.
const PodSecurityOwnerAnnotation = "packnow.io/pod-security-set-by"

const podSecurityOwner = "packnowapp"

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;patch

// NamespaceLabeler brings namespaces that hold a PackNowApp into the pod webhook's scope. The webhook
// configurations select namespaces by the packnow.io/pod-security label, so that an outage of the operator
// blocks only namespaces that opted in; a namespace without the label gets it here, set to the strictest mode
// of its PackNowApps. A label an administrator set is left alone.
type NamespaceLabeler struct {
	Client client.Client
}

// SetupWithManager watches Namespaces and the PackNowApps in them.
func (r *NamespaceLabeler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("pod-security-namespace").
		For(&corev1.Namespace{}).
		Watches(&packnowv1alpha1.PackNowApp{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: o.GetNamespace()}}}
			})).
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *NamespaceLabeler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, req.NamespacedName, ns); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var apps packnowv1alpha1.PackNowAppList
	if err := r.Client.List(ctx, &apps, client.InNamespace(ns.Name)); err != nil {
		return reconcile.Result{}, err
	}
	var want Mode
	for _, app := range apps.Items {
		if app.DeletionTimestamp.IsZero() {
			want = stricter(want, modeOf(app.Spec.PodSecurity.Mode))
		}
	}

	label, labelled := ns.Labels[PodSecurityLabel]
	owned := ns.Annotations[PodSecurityOwnerAnnotation] == podSecurityOwner
	if labelled && !owned {
		return reconcile.Result{}, nil
	}
	patch := client.MergeFrom(ns.DeepCopy())
	switch {
	case want == "" && owned:
		delete(ns.Labels, PodSecurityLabel)
		delete(ns.Annotations, PodSecurityOwnerAnnotation)
	case want != "" && (!labelled || label != string(want)):
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		if ns.Annotations == nil {
			ns.Annotations = map[string]string{}
		}
		ns.Labels[PodSecurityLabel] = string(want)
		ns.Annotations[PodSecurityOwnerAnnotation] = podSecurityOwner
	default:
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, r.Client.Patch(ctx, ns, patch)
}

// modeOf maps a PackNowApp's mode to the label value; the API server defaults an empty mode to Enforce.
func modeOf(m packnowv1alpha1.PodSecurityMode) Mode {
	switch m {
	case packnowv1alpha1.PodSecurityWarn:
		return ModeWarn
	case packnowv1alpha1.PodSecurityAudit:
		return ModeAudit
	default:
		return ModeEnforce
	}
}

// stricter returns the stricter of two modes; "" is no mode.
func stricter(a, b Mode) Mode {
	rank := map[Mode]int{"": 0, ModeAudit: 1, ModeWarn: 2, ModeEnforce: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
