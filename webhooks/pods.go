package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// PodSecurityLabel on a Namespace puts it in scope of the pod webhook: enforce, warn or audit.
const PodSecurityLabel = "packnow.io/pod-security"

// Mode is what the pod webhook does with a violation.
type Mode string

const (
	ModeEnforce Mode = "enforce"
	ModeWarn    Mode = "warn"
	ModeAudit   Mode = "audit"
)

// Paths the pod webhooks are served on.
const (
	PodsPath      = "/validate-pods"
	WorkloadsPath = "/validate-workloads"
)

// The markers below generate config/webhook/manifests.yaml. The namespaceSelector limits the webhooks to
// namespaces that opted in with the label and keeps the control plane's and the operator's own namespaces out
// whatever their labels say, so that an outage of this webhook can never block them. sideEffects is NoneOnDryRun
// because audit mode records an Event, which it skips for dry-run requests.
//
// +kubebuilder:webhookconfiguration:mutating=false,name=validating-webhook-configuration
// +kubebuilder:webhook:path=/validate-pods,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,timeoutSeconds=5,matchPolicy=Equivalent,groups="",resources=pods;pods/ephemeralcontainers,verbs=create;update,versions=v1,name=pods.pod-security.packnow.io,admissionReviewVersions=v1,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"packnow.io/pod-security","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","packnow-system"]}]}}`
// +kubebuilder:webhook:path=/validate-workloads,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,timeoutSeconds=5,matchPolicy=Equivalent,groups=apps;batch,resources=deployments;statefulsets;daemonsets;replicasets;jobs;cronjobs,verbs=create;update,versions=v1,name=workloads.pod-security.packnow.io,admissionReviewVersions=v1,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"packnow.io/pod-security","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","packnow-system"]}]}}`
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// PodHandler admits Pods and the workloads that create them according to their namespace's pod security mode.
type PodHandler struct {
	Evaluator *PodEvaluator
	// Reader looks up Namespaces and PackNowApps, normally from the manager's cache.
	Reader client.Reader
	// Recorder records audit-mode violations as Events on the Namespace.
	Recorder recorder.EventRecorder
}

var _ admission.Handler = &PodHandler{}

// newPodObject returns an empty object of the kind the request carries, or nil for kinds without a pod spec.
func newPodObject(gvk metav1.GroupVersionKind) client.Object {
	switch (schema.GroupKind{Group: gvk.Group, Kind: gvk.Kind}) {
	case schema.GroupKind{Kind: "Pod"}:
		return &corev1.Pod{}
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		return &appsv1.Deployment{}
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		return &appsv1.StatefulSet{}
	case schema.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		return &appsv1.DaemonSet{}
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		return &appsv1.ReplicaSet{}
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		return &batchv1.Job{}
	case schema.GroupKind{Group: "batch", Kind: "CronJob"}:
		return &batchv1.CronJob{}
	}
	return nil
}

// podTemplate returns the metadata and spec of the pods the object is or creates.
func podTemplate(obj client.Object) (*metav1.ObjectMeta, *corev1.PodSpec) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.ObjectMeta, &o.Spec
	case *appsv1.Deployment:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *appsv1.ReplicaSet:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *batchv1.Job:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec
	}
	return nil, nil
}

// decodePodRequest decodes the request's object and reports whether it needs evaluating: an update that leaves
// the pods unchanged (labels, finalizers, scaling) is admitted, so that existing objects stay manageable.
func decodePodRequest(req admission.Request) (client.Object, bool, error) {
	obj := newPodObject(req.Kind)
	if obj == nil {
		return nil, false, nil
	}
	if err := decodeObject(req.Object, obj); err != nil {
		return nil, false, err
	}
	if req.Operation != admissionv1.Update {
		return obj, true, nil
	}
	old := newPodObject(req.Kind)
	if err := decodeObject(req.OldObject, old); err != nil {
		return nil, false, err
	}
	newMeta, newSpec := podTemplate(obj)
	oldMeta, oldSpec := podTemplate(old)
	if _, isPod := obj.(*corev1.Pod); isPod {
		// A pod's own metadata changes all the time; only its spec decides what runs.
		return obj, !equality.Semantic.DeepEqual(newSpec, oldSpec), nil
	}
	// A changed template (even only its annotations, as in kubectl rollout restart) creates new pods.
	return obj, !equality.Semantic.DeepEqual(newSpec, oldSpec) || !equality.Semantic.DeepEqual(newMeta, oldMeta), nil
}

// decodeObject decodes an object the API server sent, as the API server's own JSON decoder would (case-sensitive).
// The request's kind has already chosen the Go type, so one pass suffices: admission.Decoder parses every object
// twice, the first time only to find its apiVersion and kind, and decoding is most of a review's cost.
func decodeObject(raw runtime.RawExtension, obj client.Object) error {
	if len(raw.Raw) == 0 {
		return errors.New("the request carries no object")
	}
	return kjson.UnmarshalCaseSensitivePreserveInts(raw.Raw, obj)
}

// Handle implements admission.Handler.
func (h *PodHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	obj, evaluate, err := decodePodRequest(req)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if !evaluate {
		return admission.Allowed("")
	}
	pol, inScope, err := h.policyFor(ctx, req.Namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if !inScope {
		return admission.Allowed("")
	}
	meta, spec := podTemplate(obj)
	msgs := h.Evaluator.Evaluate(pol.level, meta, spec)
	return h.respond(req, pol, msgs).WithWarnings(pol.warnings...)
}

func (h *PodHandler) respond(req admission.Request, pol namespacePolicy, msgs []string) admission.Response {
	if len(msgs) == 0 {
		return admission.Allowed("")
	}
	dryRun := req.DryRun != nil && *req.DryRun
	if !dryRun {
		violations.WithLabelValues(req.Namespace, string(pol.mode), req.Resource.Resource).Inc()
	}
	switch pol.mode {
	case ModeWarn:
		warnings := make([]string, len(msgs))
		for i, m := range msgs {
			warnings[i] = "would violate PackNow pod security: " + m
		}
		return admission.Allowed("").WithWarnings(warnings...)
	case ModeAudit:
		if !dryRun {
			// The reviewed object is the related one; it also keeps events about different objects apart.
			related := &corev1.ObjectReference{Kind: req.Kind.Kind, APIVersion: schema.GroupVersion{Group: req.Kind.Group, Version: req.Kind.Version}.String(),
				Namespace: req.Namespace, Name: req.Name}
			h.Recorder.Eventf(pol.namespace, related, corev1.EventTypeWarning, "PodSecurityViolation", "Admit",
				"%s %q violates PackNow pod security (audit): %s", req.Kind.Kind, objectName(req), strings.Join(msgs, "; "))
		}
		return admission.Allowed("")
	default:
		return admission.Denied("violates PackNow pod security: " + strings.Join(msgs, "; "))
	}
}

// objectName is the name of the object under review; generateName objects have none yet.
func objectName(req admission.Request) string {
	if req.Name != "" {
		return req.Name
	}
	return "(generated name)"
}

// namespacePolicy is how pods in one namespace are admitted.
type namespacePolicy struct {
	namespace *corev1.Namespace
	mode      Mode
	level     Level
	// warnings explain a policy that could not be read as written.
	warnings []string
}

// policyFor reads the namespace's mode from its label, which puts it in scope, and its level from the
// PackNowApps in it: Restricted if any of them asks for it.
func (h *PodHandler) policyFor(ctx context.Context, namespace string) (namespacePolicy, bool, error) {
	ns := &corev1.Namespace{}
	if err := h.Reader.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return namespacePolicy{}, false, nil
		}
		return namespacePolicy{}, false, fmt.Errorf("reading namespace %q: %w", namespace, err)
	}
	value, ok := ns.Labels[PodSecurityLabel]
	if !ok {
		return namespacePolicy{}, false, nil
	}
	pol := namespacePolicy{namespace: ns, level: LevelNonRoot}
	switch m := Mode(value); m {
	case ModeEnforce, ModeWarn, ModeAudit:
		pol.mode = m
	default:
		// Fail closed, as upstream Pod Security does for a label it cannot read.
		pol.mode = ModeEnforce
		pol.warnings = append(pol.warnings, fmt.Sprintf("namespace %q: label %s=%q is not enforce, warn or audit; enforcing", namespace, PodSecurityLabel, value))
	}
	// Only read, so the cache's objects need no copy: a review then allocates nothing per PackNowApp.
	var apps packnowv1alpha1.PackNowAppList
	if err := h.Reader.List(ctx, &apps, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return namespacePolicy{}, false, fmt.Errorf("listing PackNowApps in %q: %w", namespace, err)
	}
	for _, app := range apps.Items {
		if app.Spec.PodSecurity.Level == packnowv1alpha1.PodSecurityRestricted {
			pol.level = LevelRestricted
		}
	}
	return pol, true, nil
}
