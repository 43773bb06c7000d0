package webhooks

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Level is the set of pod checks a namespace is held to.
type Level int

const (
	// LevelNonRoot runs the restricted profile's runAsNonRoot and runAsUser checks plus privileged and
	// allowPrivilegeEscalation.
	LevelNonRoot Level = iota
	// LevelRestricted runs the whole Pod Security Standards restricted profile.
	LevelRestricted
)

// nonRootCheck is one library check with the wording that names the field a user has to change.
type nonRootCheck struct {
	eval policy.Evaluator
	// set reports whether the container sets the checked field itself (rather than inheriting the pod's).
	set func(*corev1.SecurityContext) bool
	// pod is the message when the pod-level field fails; empty when the check has no pod-level field.
	pod string
	// explicit and implicit are the messages for a container that sets a bad value, or leaves a required one unset.
	explicit, implicit string
}

// PodEvaluator evaluates pod specs with the k8s.io/pod-security-admission checks and words the result per
// container and field, which the library's aggregated messages do not.
type PodEvaluator struct {
	nonRoot []nonRootCheck
	// rest is the restricted profile without the non-root checks, whose messages are used as they are.
	rest policy.Evaluator
}

var latestRestricted = psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}

// NewPodEvaluator builds the evaluators from the library's default checks.
func NewPodEvaluator() (*PodEvaluator, error) {
	type spec struct {
		check                   func() policy.Check
		set                     func(*corev1.SecurityContext) bool
		pod, explicit, implicit string
	}
	specs := []spec{{
		check:    policy.CheckRunAsNonRoot,
		set:      func(sc *corev1.SecurityContext) bool { return sc.RunAsNonRoot != nil },
		pod:      "pod must not set spec.securityContext.runAsNonRoot=false",
		explicit: "%s must not set securityContext.runAsNonRoot=false",
		implicit: "%s must set securityContext.runAsNonRoot=true (or pod spec.securityContext.runAsNonRoot)",
	}, {
		check:    policy.CheckRunAsUser,
		set:      func(sc *corev1.SecurityContext) bool { return sc.RunAsUser != nil },
		pod:      "pod must not set spec.securityContext.runAsUser=0",
		explicit: "%s must not set securityContext.runAsUser=0",
	}, {
		check:    policy.CheckPrivileged,
		set:      func(sc *corev1.SecurityContext) bool { return sc.Privileged != nil },
		explicit: "%s must not set securityContext.privileged=true",
	}, {
		check:    policy.CheckAllowPrivilegeEscalation,
		set:      func(sc *corev1.SecurityContext) bool { return sc.AllowPrivilegeEscalation != nil },
		explicit: "%s must set securityContext.allowPrivilegeEscalation=false",
		implicit: "%s must set securityContext.allowPrivilegeEscalation=false",
	}}

	e := &PodEvaluator{}
	ids := map[policy.CheckID]bool{}
	for _, s := range specs {
		c := s.check()
		ids[c.ID] = true
		eval, err := policy.NewEvaluator([]policy.Check{c}, nil)
		if err != nil {
			return nil, fmt.Errorf("pod security check %s: %w", c.ID, err)
		}
		e.nonRoot = append(e.nonRoot, nonRootCheck{eval: eval, set: s.set, pod: s.pod, explicit: s.explicit, implicit: s.implicit})
	}
	rest := slices.DeleteFunc(policy.DefaultChecks(), func(c policy.Check) bool { return ids[c.ID] })
	eval, err := policy.NewEvaluator(rest, nil)
	if err != nil {
		return nil, fmt.Errorf("pod security restricted checks: %w", err)
	}
	e.rest = eval
	return e, nil
}

// Evaluate returns one message per violation, naming the container and the field to set; none means allowed.
func (e *PodEvaluator) Evaluate(level Level, meta *metav1.ObjectMeta, spec *corev1.PodSpec) []string {
	var msgs []string
	// The pod-level fields on their own, with no containers to inherit them.
	podOnly := &corev1.PodSpec{SecurityContext: spec.SecurityContext, HostUsers: spec.HostUsers, OS: spec.OS}
	podFailed := make([]bool, len(e.nonRoot))
	for i, c := range e.nonRoot {
		if !allowed(c.eval.EvaluatePod(latestRestricted, meta, podOnly)) {
			podFailed[i] = true
			msgs = append(msgs, c.pod)
		}
	}

	visit := func(kind string, ctr *corev1.Container) {
		// The container alone, with the pod-level values it inherits folded into its own security context,
		// so that the library's verdict is about this container only.
		sc := effectiveSecurityContext(spec.SecurityContext, ctr.SecurityContext)
		single := &corev1.PodSpec{HostUsers: spec.HostUsers, OS: spec.OS, Containers: []corev1.Container{{Name: ctr.Name, SecurityContext: sc}}}
		for i, c := range e.nonRoot {
			if allowed(c.eval.EvaluatePod(latestRestricted, meta, single)) {
				continue
			}
			own := ctr.SecurityContext != nil && c.set(ctr.SecurityContext)
			if !own && podFailed[i] {
				continue // the pod-level message already names the fix
			}
			format := c.explicit
			if !own && c.implicit != "" {
				format = c.implicit
			}
			msgs = append(msgs, fmt.Sprintf(format, fmt.Sprintf("%s %q", kind, ctr.Name)))
		}
	}
	for i := range spec.InitContainers {
		visit("init container", &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		visit("container", &spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		visit("ephemeral container", (*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}

	if level == LevelRestricted {
		for _, r := range e.rest.EvaluatePod(latestRestricted, meta, spec) {
			switch {
			case r.Allowed:
			case r.ForbiddenDetail != "":
				msgs = append(msgs, r.ForbiddenDetail)
			default:
				msgs = append(msgs, r.ForbiddenReason)
			}
		}
	}
	return msgs
}

// effectiveSecurityContext is the container's security context with the user fields it inherits from the pod.
func effectiveSecurityContext(pod *corev1.PodSecurityContext, ctr *corev1.SecurityContext) *corev1.SecurityContext {
	sc := &corev1.SecurityContext{}
	if ctr != nil {
		*sc = *ctr
	}
	if pod != nil {
		if sc.RunAsNonRoot == nil {
			sc.RunAsNonRoot = pod.RunAsNonRoot
		}
		if sc.RunAsUser == nil {
			sc.RunAsUser = pod.RunAsUser
		}
	}
	return sc
}

func allowed(results []policy.CheckResult) bool {
	for _, r := range results {
		if !r.Allowed {
			return false
		}
	}
	return true
}
