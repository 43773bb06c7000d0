package webhooks

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
)

// nonRootSC is a container security context that passes the non-root level.
func nonRootSC() *corev1.SecurityContext {
	return &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)}
}

// restrictedSC additionally passes the restricted profile.
func restrictedSC() *corev1.SecurityContext {
	sc := nonRootSC()
	sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
	sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	return sc
}

func TestEvaluate(t *testing.T) {
	e, err := NewPodEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		level Level
		spec  corev1.PodSpec
		want  []string
	}{{
		name: "root by default",
		spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}},
		want: []string{
			`container "web" must set securityContext.runAsNonRoot=true (or pod spec.securityContext.runAsNonRoot)`,
			`container "web" must set securityContext.allowPrivilegeEscalation=false`,
		},
	}, {
		name: "compliant",
		spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", SecurityContext: nonRootSC()}}},
	}, {
		name: "pod-level runAsNonRoot is inherited",
		spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			Containers:      []corev1.Container{{Name: "web", SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false)}}},
		},
	}, {
		name: "pod-level non-root overridden by container-level false",
		spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			Containers: []corev1.Container{{Name: "web", SecurityContext: &corev1.SecurityContext{
				RunAsNonRoot: ptr.To(false), AllowPrivilegeEscalation: ptr.To(false)}}},
		},
		want: []string{`container "web" must not set securityContext.runAsNonRoot=false`},
	}, {
		name: "pod-level false is reported once, not per container",
		spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(false)},
			Containers: []corev1.Container{
				{Name: "a", SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false)}},
				{Name: "b", SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false)}},
			},
		},
		want: []string{"pod must not set spec.securityContext.runAsNonRoot=false"},
	}, {
		name: "runAsUser 0 in init container",
		spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", SecurityContext: &corev1.SecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(0)), AllowPrivilegeEscalation: ptr.To(false)}}},
			Containers: []corev1.Container{{Name: "web", SecurityContext: nonRootSC()}},
		},
		want: []string{`init container "migrate" must not set securityContext.runAsUser=0`},
	}, {
		name: "pod runAsUser 0 with a container that overrides it",
		spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(0))},
			Containers: []corev1.Container{{Name: "web", SecurityContext: &corev1.SecurityContext{
				RunAsUser: ptr.To(int64(1000)), AllowPrivilegeEscalation: ptr.To(false)}}},
		},
		want: []string{"pod must not set spec.securityContext.runAsUser=0"},
	}, {
		name: "ephemeral container as root",
		spec: corev1.PodSpec{
			Containers:          []corev1.Container{{Name: "web", SecurityContext: nonRootSC()}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger"}}},
		},
		want: []string{
			`ephemeral container "debugger" must set securityContext.runAsNonRoot=true (or pod spec.securityContext.runAsNonRoot)`,
			`ephemeral container "debugger" must set securityContext.allowPrivilegeEscalation=false`,
		},
	}, {
		name: "privileged",
		spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot: ptr.To(true), Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)}}}},
		want: []string{`container "web" must not set securityContext.privileged=true`},
	}, {
		name: "allowPrivilegeEscalation true",
		spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true)}}}},
		want: []string{`container "web" must set securityContext.allowPrivilegeEscalation=false`},
	}, {
		name: "user namespace relaxes the user checks",
		spec: corev1.PodSpec{HostUsers: ptr.To(false), Containers: []corev1.Container{{Name: "web", SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr.To(int64(0)), AllowPrivilegeEscalation: ptr.To(false)}}}},
	}, {
		name: "non-root level ignores the rest of restricted",
		spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "web", SecurityContext: nonRootSC()}}},
	}, {
		name:  "restricted level adds the library's messages",
		level: LevelRestricted,
		spec:  corev1.PodSpec{Containers: []corev1.Container{{Name: "web", SecurityContext: nonRootSC()}}},
		want: []string{
			`container "web" must set securityContext.capabilities.drop=["ALL"]`,
			`pod or container "web" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`,
		},
	}, {
		name:  "restricted level compliant",
		level: LevelRestricted,
		spec:  corev1.PodSpec{Containers: []corev1.Container{{Name: "web", SecurityContext: restrictedSC()}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Evaluate(tt.level, &metav1.ObjectMeta{}, &tt.spec)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			assertAgreesWithLibrary(t, tt.level, &tt.spec, got)
		})
	}
}

// assertAgreesWithLibrary checks that the per-container wording never changes the library's verdict on the
// whole pod.
func assertAgreesWithLibrary(t *testing.T, level Level, spec *corev1.PodSpec, msgs []string) {
	t.Helper()
	checks := []policy.Check{policy.CheckRunAsNonRoot(), policy.CheckRunAsUser(), policy.CheckPrivileged(), policy.CheckAllowPrivilegeEscalation()}
	if level == LevelRestricted {
		checks = policy.DefaultChecks()
	}
	eval, err := policy.NewEvaluator(checks, nil)
	if err != nil {
		t.Fatal(err)
	}
	libAllowed := allowed(eval.EvaluatePod(latestRestricted, &metav1.ObjectMeta{}, spec))
	if libAllowed != (len(msgs) == 0) {
		t.Errorf("library allows: %v, our messages: %q", libAllowed, msgs)
	}
}
