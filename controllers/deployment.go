package controllers

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// nonRootID is the user and group the API runs as: "nonroot" of distroless images.
const nonRootID = 65532

const (
	containerName = "api"
	portName      = "http"
	tmpVolume     = "tmp"
)

// deploymentInputs are what the Deployment needs beyond the spec: values the reconciler resolved.
type deploymentInputs struct {
	// image is spec.image or the operator's default.
	image string
	// databaseSecret and redisSecret hold DATABASE_URL and REDIS_URL: generated or the user's existingSecret.
	databaseSecret string
	redisSecret    string
	// secretKeyHash and credentialsHash change with the Secrets' values and so roll the pods when they do.
	secretKeyHash   string
	credentialsHash string
}

// desiredReplicas is spec.replicas; the API server defaults it, so nil only comes from a hand-built object.
func desiredReplicas(app *packnowv1alpha1.PackNowApp) int32 {
	return ptr.Deref(app.Spec.Replicas, 1)
}

// desiredDeployment runs the API locked down to pass Pod Security "restricted": non-root, no privilege
// escalation, no capabilities, RuntimeDefault seccomp, read-only root filesystem and no service-account token.
func desiredDeployment(app *packnowv1alpha1.PackNowApp, in deploymentInputs) *appsv1ac.DeploymentApplyConfiguration {
	return appsv1ac.Deployment(apiName(app), app.Namespace).
		WithLabels(labels(app)).
		WithOwnerReferences(ownerReference(app)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(desiredReplicas(app)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(app))).
			// A new pod must be ready before an old one goes, so a rollout never lowers capacity.
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType(appsv1.RollingUpdateDeploymentStrategyType).
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxUnavailable(intstr.FromInt32(0)).
					WithMaxSurge(intstr.FromString("25%")))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(labels(app)).
				WithAnnotations(map[string]string{
					AnnotationSecretKeyHash:   in.secretKeyHash,
					AnnotationCredentialsHash: in.credentialsHash,
				}).
				WithSpec(podSpec(app, in))))
}

func podSpec(app *packnowv1alpha1.PackNowApp, in deploymentInputs) *corev1ac.PodSpecApplyConfiguration {
	return corev1ac.PodSpec().
		WithServiceAccountName(apiName(app)).
		WithAutomountServiceAccountToken(false).
		// The API needs no Service environment variables; with many Services in a namespace they only add noise.
		WithEnableServiceLinks(false).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(nonRootID).
			WithRunAsGroup(nonRootID).
			WithFSGroup(nonRootID).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithTopologySpreadConstraints(corev1ac.TopologySpreadConstraint().
			WithMaxSkew(1).
			WithTopologyKey(corev1.LabelHostname).
			// Prefer spreading, but never leave a pod pending on a single-node cluster.
			WithWhenUnsatisfiable(corev1.ScheduleAnyway).
			WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(app))).
			// Spread each ReplicaSet on its own, so a rollout's new pods are spread too.
			WithMatchLabelKeys(appsv1.DefaultDeploymentUniqueLabelKey)).
		WithContainers(apiContainer(app, in)).
		WithVolumes(corev1ac.Volume().
			WithName(tmpVolume).
			WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("64Mi"))))
}

func apiContainer(app *packnowv1alpha1.PackNowApp, in deploymentInputs) *corev1ac.ContainerApplyConfiguration {
	return corev1ac.Container().
		WithName(containerName).
		WithImage(in.image).
		WithPorts(corev1ac.ContainerPort().WithName(portName).WithContainerPort(appPort).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(apiEnv(app, in)...).
		WithResources(resources(app.Spec.Resources)).
		WithLivenessProbe(httpProbe("/healthz", 10)).
		WithReadinessProbe(httpProbe("/readyz", 5)).
		// The app exits at start with one line naming a bad variable; this puts that line in the pod status.
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
		WithSecurityContext(corev1ac.SecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(nonRootID).
			WithRunAsGroup(nonRootID).
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(tmpVolume).WithMountPath("/tmp"))
}

func httpProbe(path string, periodSeconds int32) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().
		WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString(portName))).
		WithPeriodSeconds(periodSeconds).
		WithTimeoutSeconds(2).
		WithFailureThreshold(3)
}

// resources are the spec's, or small defaults with a memory limit when the spec sets none.
func resources(spec corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	if len(spec.Requests) == 0 && len(spec.Limits) == 0 && len(spec.Claims) == 0 {
		return corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("100m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")})
	}
	r := corev1ac.ResourceRequirements()
	if len(spec.Requests) > 0 {
		r.WithRequests(spec.Requests)
	}
	if len(spec.Limits) > 0 {
		r.WithLimits(spec.Limits)
	}
	for _, c := range spec.Claims {
		claim := corev1ac.ResourceClaim().WithName(c.Name)
		if c.Request != "" {
			claim.WithRequest(c.Request)
		}
		r.WithClaims(claim)
	}
	return r
}

// securityPatch is a JSON patch that puts the pod's and the API container's security settings back to the
// desired ones, or nil when they match. Server-side apply alone cannot: it takes back the fields the operator
// applied, but keeps fields someone else added, such as capabilities.add, privileged or hostNetwork.
func securityPatch(live *appsv1.Deployment, desired *appsv1ac.DeploymentApplyConfiguration) ([]byte, error) {
	want, err := toDeployment(desired)
	if err != nil {
		return nil, err
	}
	livePod, wantPod := live.Spec.Template.Spec, want.Spec.Template.Spec
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	var ops []op
	if !equality.Semantic.DeepEqual(livePod.SecurityContext, wantPod.SecurityContext) {
		ops = append(ops, op{"add", "/spec/template/spec/securityContext", wantPod.SecurityContext})
	}
	for _, host := range []struct {
		path string
		on   bool
	}{
		{"/spec/template/spec/hostNetwork", livePod.HostNetwork},
		{"/spec/template/spec/hostPID", livePod.HostPID},
		{"/spec/template/spec/hostIPC", livePod.HostIPC},
	} {
		if host.on {
			ops = append(ops, op{"replace", host.path, false})
		}
	}
	for i, c := range livePod.Containers {
		if c.Name == containerName && !equality.Semantic.DeepEqual(c.SecurityContext, wantPod.Containers[0].SecurityContext) {
			path := fmt.Sprintf("/spec/template/spec/containers/%d", i)
			// The test fails the patch if the containers moved since the Deployment was read.
			ops = append(ops,
				op{"test", path + "/name", containerName},
				op{"add", path + "/securityContext", wantPod.Containers[0].SecurityContext})
		}
	}
	if len(ops) == 0 {
		return nil, nil
	}
	return json.Marshal(ops)
}

func toDeployment(applyConfig *appsv1ac.DeploymentApplyConfiguration) (*appsv1.Deployment, error) {
	raw, err := json.Marshal(applyConfig)
	if err != nil {
		return nil, err
	}
	d := &appsv1.Deployment{}
	return d, json.Unmarshal(raw, d)
}
