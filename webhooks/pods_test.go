package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

const (
	rootRunAsNonRoot = `container "web" must set securityContext.runAsNonRoot=true (or pod spec.securityContext.runAsNonRoot)`
	rootEscalation   = `container "web" must set securityContext.allowPrivilegeEscalation=false`
)

func ctr(name string, sc *corev1.SecurityContext) corev1.Container {
	return corev1.Container{Name: name, Image: "example.com/" + name + ":1", SecurityContext: sc}
}

func template(spec corev1.PodSpec) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: spec}
}

var selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}

// Workload constructors: each wraps a pod spec the way its kind does.
func pod(spec corev1.PodSpec) client.Object { return &corev1.Pod{Spec: spec} }
func deployment(spec corev1.PodSpec) client.Object {
	return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Selector: selector, Template: template(spec)}}
}
func statefulSet(spec corev1.PodSpec) client.Object {
	return &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: selector, Template: template(spec)}}
}
func daemonSet(spec corev1.PodSpec) client.Object {
	return &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Selector: selector, Template: template(spec)}}
}
func replicaSet(spec corev1.PodSpec) client.Object {
	return &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Selector: selector, Template: template(spec)}}
}
func job(spec corev1.PodSpec) client.Object {
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{Spec: batchv1.JobSpec{Template: template(spec)}}
}
func cronJob(spec corev1.PodSpec) client.Object {
	spec.RestartPolicy = corev1.RestartPolicyOnFailure
	return &batchv1.CronJob{Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *", JobTemplate: batchv1.JobTemplateSpec{
		Spec: batchv1.JobSpec{Template: template(spec)}}}}
}

type admissionCase struct {
	name string
	obj  client.Object
	want []string // the violations; none means compliant
}

func admissionCases() []admissionCase {
	root := corev1.PodSpec{Containers: []corev1.Container{ctr("web", nil)}}
	good := corev1.PodSpec{Containers: []corev1.Container{ctr("web", nonRootSC())}}
	return []admissionCase{
		{"pod root by default", pod(root), []string{rootRunAsNonRoot, rootEscalation}},
		{"pod compliant", pod(good), nil},
		{"pod inherits pod-level runAsNonRoot", pod(corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(1000))},
			Containers:      []corev1.Container{ctr("web", &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false)})},
		}), nil},
		{"pod-level non-root overridden by container-level false", pod(corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			Containers: []corev1.Container{ctr("web", &corev1.SecurityContext{RunAsNonRoot: ptr.To(false),
				AllowPrivilegeEscalation: ptr.To(false)})},
		}), []string{`container "web" must not set securityContext.runAsNonRoot=false`}},
		{"pod-level runAsNonRoot false", pod(corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(false)},
			Containers:      []corev1.Container{ctr("web", &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false)})},
		}), []string{"pod must not set spec.securityContext.runAsNonRoot=false"}},
		{"runAsUser 0 in init container", pod(corev1.PodSpec{
			InitContainers: []corev1.Container{ctr("migrate", &corev1.SecurityContext{RunAsNonRoot: ptr.To(true),
				RunAsUser: ptr.To(int64(0)), AllowPrivilegeEscalation: ptr.To(false)})},
			Containers: good.Containers,
		}), []string{`init container "migrate" must not set securityContext.runAsUser=0`}},
		{"pod runAsUser 0", pod(corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(0))},
			Containers:      []corev1.Container{ctr("web", &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false)})},
		}), []string{"pod must not set spec.securityContext.runAsUser=0"}},
		{"privileged container", pod(corev1.PodSpec{Containers: []corev1.Container{ctr("web", &corev1.SecurityContext{
			RunAsNonRoot: ptr.To(true), Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true)})}}),
			[]string{`container "web" must not set securityContext.privileged=true`, rootEscalation}},
		{"allowPrivilegeEscalation true", pod(corev1.PodSpec{Containers: []corev1.Container{ctr("web", &corev1.SecurityContext{
			RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true)})}}), []string{rootEscalation}},
		{"root sidecar next to a compliant container", pod(corev1.PodSpec{Containers: []corev1.Container{
			ctr("web", nonRootSC()), ctr("proxy", &corev1.SecurityContext{RunAsUser: ptr.To(int64(0)), RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)})}}),
			[]string{`container "proxy" must not set securityContext.runAsUser=0`}},
		{"root native sidecar (restartable init container)", pod(corev1.PodSpec{
			InitContainers: []corev1.Container{func() corev1.Container {
				c := ctr("log-shipper", nil)
				c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
				return c
			}()},
			Containers: good.Containers,
		}), []string{
			`init container "log-shipper" must set securityContext.runAsNonRoot=true (or pod spec.securityContext.runAsNonRoot)`,
			`init container "log-shipper" must set securityContext.allowPrivilegeEscalation=false`,
		}},
		{"deployment root by default", deployment(root), []string{rootRunAsNonRoot, rootEscalation}},
		{"deployment compliant", deployment(good), nil},
		{"deployment pod-level runAsNonRoot false", deployment(corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(false)},
			Containers:      []corev1.Container{ctr("web", &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false)})},
		}), []string{"pod must not set spec.securityContext.runAsNonRoot=false"}},
		{"statefulset privileged", statefulSet(corev1.PodSpec{Containers: []corev1.Container{ctr("web", &corev1.SecurityContext{
			RunAsNonRoot: ptr.To(true), Privileged: ptr.To(true)})}}),
			[]string{`container "web" must not set securityContext.privileged=true`, rootEscalation}},
		{"daemonset runAsUser 0 in init container", daemonSet(corev1.PodSpec{
			InitContainers: []corev1.Container{ctr("setup", &corev1.SecurityContext{RunAsNonRoot: ptr.To(true),
				RunAsUser: ptr.To(int64(0)), AllowPrivilegeEscalation: ptr.To(false)})},
			Containers: good.Containers,
		}), []string{`init container "setup" must not set securityContext.runAsUser=0`}},
		{"replicaset allowPrivilegeEscalation unset", replicaSet(corev1.PodSpec{Containers: []corev1.Container{
			ctr("web", &corev1.SecurityContext{RunAsNonRoot: ptr.To(true)})}}), []string{rootEscalation}},
		{"job root by default", job(root), []string{rootRunAsNonRoot, rootEscalation}},
		{"job compliant", job(good), nil},
		{"cronjob template root", cronJob(root), []string{rootRunAsNonRoot, rootEscalation}},
		{"cronjob compliant", cronJob(good), nil},
	}
}

// TestPodAdmission runs every case in an enforce, a warn and an audit namespace through the real API server.
func TestPodAdmission(t *testing.T) {
	startOperator(t, Options{CertManager: true})
	ctx := context.Background()
	c, warned := warningClient(t)
	events := apiServer(t).Client

	for _, mode := range []Mode{ModeEnforce, ModeWarn, ModeAudit} {
		ns := namespace(t, mode)
		for i, tc := range admissionCases() {
			t.Run(fmt.Sprintf("%s/%s", mode, tc.name), func(t *testing.T) {
				obj := tc.obj
				obj.SetName(fmt.Sprintf("case-%d", i))
				obj.SetNamespace(ns)
				resource := resourceOf(obj)
				before := testutil.ToFloat64(violations.WithLabelValues(ns, string(mode), resource))
				warned.take()

				err := c.Create(ctx, obj)
				gotWarnings := warned.take()

				violated := len(tc.want) > 0
				switch {
				case mode == ModeEnforce && violated:
					want := fmt.Sprintf(`admission webhook %q denied the request: violates PackNow pod security: %s`,
						webhookName(obj), strings.Join(tc.want, "; "))
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Fatalf("got error %v\nwant it to contain %s", err, want)
					}
				case err != nil:
					t.Fatalf("denied: %v", err)
				}

				var wantWarnings []string
				if mode == ModeWarn {
					for _, m := range tc.want {
						wantWarnings = append(wantWarnings, "would violate PackNow pod security: "+m)
					}
				}
				if !slices.Equal(gotWarnings, wantWarnings) {
					t.Errorf("warnings\n got %q\nwant %q", gotWarnings, wantWarnings)
				}

				wantCount := before
				if violated {
					wantCount++
				}
				if got := testutil.ToFloat64(violations.WithLabelValues(ns, string(mode), resource)); got != wantCount {
					t.Errorf("violations metric %v, want %v", got, wantCount)
				}

				if mode == ModeAudit && violated {
					note := fmt.Sprintf("%s %q violates PackNow pod security (audit): %s", kindOf(obj), obj.GetName(), strings.Join(tc.want, "; "))
					eventually(t, 30*time.Second, func() error { return findEvent(ctx, events, ns, note) })
				}
			})
		}
	}
}

// TestEphemeralContainer adds a root debug container to a running, compliant pod through the
// ephemeralcontainers subresource, as kubectl debug does.
func TestEphemeralContainer(t *testing.T) {
	startOperator(t, Options{CertManager: true})
	ctx := context.Background()
	c, warned := warningClient(t)
	want := []string{
		`ephemeral container "debugger" must set securityContext.runAsNonRoot=true (or pod spec.securityContext.runAsNonRoot)`,
		`ephemeral container "debugger" must set securityContext.allowPrivilegeEscalation=false`,
	}
	for _, mode := range []Mode{ModeEnforce, ModeWarn, ModeAudit} {
		t.Run(string(mode), func(t *testing.T) {
			ns := namespace(t, mode)
			p := compliantPod("debug-me", ns)
			if err := c.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debugger", Image: "example.com/busybox:1", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				ImagePullPolicy: corev1.PullIfNotPresent}}}
			warned.take()
			err := c.SubResource("ephemeralcontainers").Update(ctx, p)
			got := warned.take()
			switch mode {
			case ModeEnforce:
				if err == nil || !strings.Contains(err.Error(), "violates PackNow pod security: "+strings.Join(want, "; ")) {
					t.Fatalf("got %v, want a denial", err)
				}
			case ModeWarn:
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 2 || got[0] != "would violate PackNow pod security: "+want[0] || got[1] != "would violate PackNow pod security: "+want[1] {
					t.Errorf("warnings %q", got)
				}
			case ModeAudit:
				if err != nil {
					t.Fatal(err)
				}
				note := fmt.Sprintf("Pod %q violates PackNow pod security (audit): %s", "debug-me", strings.Join(want, "; "))
				eventually(t, 30*time.Second, func() error { return findEvent(ctx, apiServer(t).Client, ns, note) })
			}
		})
	}
}

// TestUpdatesOfExistingWorkloads: a workload created before its namespace was enforced can still be scaled and
// relabelled, but a new pod template is checked.
func TestUpdatesOfExistingWorkloads(t *testing.T) {
	startOperator(t, Options{CertManager: true})
	ctx := context.Background()
	c := apiServer(t).Client
	ns := namespace(t, "")
	d := deployment(corev1.PodSpec{Containers: []corev1.Container{ctr("web", nil)}}).(*appsv1.Deployment)
	d.Name, d.Namespace = "legacy", ns
	if err := c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	nsObj := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels[PodSecurityLabel] = string(ModeEnforce)
	if err := c.Update(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	// The API server sees the new label at once, the webhook's cache a moment later.
	eventually(t, 30*time.Second, func() error {
		probe := deployment(corev1.PodSpec{Containers: []corev1.Container{ctr("web", nil)}})
		probe.SetName("probe")
		probe.SetNamespace(ns)
		if err := c.Create(ctx, probe, client.DryRunAll); err == nil {
			return fmt.Errorf("not enforced yet")
		}
		return nil
	})

	d.Spec.Replicas = ptr.To(int32(3))
	d.Labels = map[string]string{"team": "a"}
	if err := c.Update(ctx, d); err != nil {
		t.Fatalf("scaling and relabelling an unchanged template: %v", err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "example.com/web:2"
	if err := c.Update(ctx, d); err == nil || !strings.Contains(err.Error(), rootRunAsNonRoot) {
		t.Fatalf("changing the template of a root deployment: got %v, want a denial", err)
	}
}

// TestRestrictedLevel: a PackNowApp brings its unlabelled namespace into scope (the operator labels it) and
// raises it to the full restricted profile; an administrator's label is left alone.
func TestRestrictedLevel(t *testing.T) {
	startOperator(t, Options{CertManager: true})
	ctx := context.Background()
	c := apiServer(t).Client
	ns := namespace(t, "")
	app, err := createApp(ctx, "shop", ns, `{"podSecurity": {"level": "Restricted"}}`)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		nsObj := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: ns}, nsObj); err != nil {
			return err
		}
		if nsObj.Labels[PodSecurityLabel] != "enforce" || nsObj.Annotations[PodSecurityOwnerAnnotation] != "packnowapp" {
			return fmt.Errorf("labels %v annotations %v", nsObj.Labels, nsObj.Annotations)
		}
		return nil
	})

	eventually(t, 30*time.Second, func() error {
		err = c.Create(ctx, compliantPod("nonroot-only", ns), client.DryRunAll)
		if err == nil {
			return fmt.Errorf("admitted")
		}
		return nil
	})
	for _, want := range []string{
		`container "web" must set securityContext.capabilities.drop=["ALL"]`,
		`pod or container "web" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("denial %q does not contain %q", err, want)
		}
	}
	p := compliantPod("restricted", ns)
	p.Spec.Containers[0].SecurityContext = restrictedSC()
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}

	// Deleting the app takes the operator's label with it.
	if err := c.Delete(ctx, app); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		nsObj := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: ns}, nsObj); err != nil {
			return err
		}
		if _, ok := nsObj.Labels[PodSecurityLabel]; ok {
			return fmt.Errorf("still labelled %v", nsObj.Labels)
		}
		return nil
	})

	// With several apps the strictest mode wins.
	several := namespace(t, "")
	for name, mode := range map[string]string{"a": "Audit", "b": "Warn"} {
		if _, err := createApp(ctx, name, several, `{"podSecurity": {"mode": "`+mode+`"}}`); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, func() error {
		nsObj := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: several}, nsObj); err != nil {
			return err
		}
		if got := nsObj.Labels[PodSecurityLabel]; got != "warn" {
			return fmt.Errorf("label %q, want warn", got)
		}
		return nil
	})

	// An administrator's label wins over the app's mode and stays when the app goes.
	admin := namespace(t, ModeWarn)
	if _, err := createApp(ctx, "shop", admin, `{}`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // give the labeller the chance to (wrongly) act
	nsObj := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: admin}, nsObj); err != nil {
		t.Fatal(err)
	}
	if nsObj.Labels[PodSecurityLabel] != "warn" {
		t.Errorf("administrator's label changed to %q", nsObj.Labels[PodSecurityLabel])
	}
}

// TestExcludedNamespaces: the control plane's namespaces are never sent to the webhook, even when labelled, and
// with the webhook down only enforced namespaces are blocked, by failurePolicy Fail.
func TestExcludedNamespaces(t *testing.T) {
	ctx := context.Background()
	c := apiServer(t).Client
	root := func(name, ns string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{ctr("web", nil)}}}
	}
	for _, name := range []string{"kube-system", "kube-public", "kube-node-lease", "packnow-system"} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
			t.Fatal(err)
		}
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[PodSecurityLabel] = string(ModeEnforce)
		if err := c.Update(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	enforced := namespace(t, ModeEnforce)
	unlabelled := namespace(t, "")

	// No webhook server is running.
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", "packnow-system", unlabelled} {
		if err := c.Create(ctx, root("root-"+randSuffix(), ns)); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}
	err := c.Create(ctx, root("root", enforced))
	want := `failed calling webhook "pods.pod-security.packnow.io"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("enforced namespace with the webhook down: got %v, want %q", err, want)
	}
}

// createApp creates a PackNowApp from the JSON of its spec, merged over a database and a Redis host, the way a
// user's manifest arrives: fields left out get the CRD's defaults.
func createApp(ctx context.Context, name, ns, specJSON string) (*packnowv1alpha1.PackNowApp, error) {
	return createAppWith(ctx, env.Client, name, ns, specJSON) // env is up: every caller has started the operator
}

func createAppWith(ctx context.Context, c client.Client, name, ns, specJSON string) (*packnowv1alpha1.PackNowApp, error) {
	spec := map[string]any{
		"database": map[string]any{"host": "postgres.example.com"},
		"redis":    map[string]any{"host": "redis.example.com"},
	}
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(packnowv1alpha1.GroupVersion.WithKind("PackNowApp"))
	u.SetName(name)
	u.SetNamespace(ns)
	if err := c.Create(ctx, u); err != nil {
		return nil, err
	}
	app := &packnowv1alpha1.PackNowApp{}
	return app, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, app)
}

func resourceOf(obj client.Object) string {
	return strings.ToLower(kindOf(obj)) + "s"
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *corev1.Pod:
		return "Pod"
	case *appsv1.Deployment:
		return "Deployment"
	case *appsv1.StatefulSet:
		return "StatefulSet"
	case *appsv1.DaemonSet:
		return "DaemonSet"
	case *appsv1.ReplicaSet:
		return "ReplicaSet"
	case *batchv1.Job:
		return "Job"
	case *batchv1.CronJob:
		return "CronJob"
	}
	return fmt.Sprintf("%T", obj)
}

func webhookName(obj client.Object) string {
	if _, ok := obj.(*corev1.Pod); ok {
		return "pods.pod-security.packnow.io"
	}
	return "workloads.pod-security.packnow.io"
}

// findEvent looks for the audit Event about namespace ns with the given note.
func findEvent(ctx context.Context, c client.Client, ns, note string) error {
	var list eventsv1.EventList
	if err := c.List(ctx, &list); err != nil {
		return err
	}
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Namespace" && e.Regarding.Name == ns {
			if e.Note == note && e.Type == corev1.EventTypeWarning && e.Reason == "PodSecurityViolation" {
				return nil
			}
			notes = append(notes, e.Note)
		}
	}
	return fmt.Errorf("no event %q about namespace %s; found %q", note, ns, notes)
}

// TestUnreadableLabel: a mistyped mode fails closed, as upstream Pod Security does, and says so.
func TestUnreadableLabel(t *testing.T) {
	startOperator(t, Options{CertManager: true})
	ctx := context.Background()
	c, warned := warningClient(t)
	ns := namespace(t, "Enforce")
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "root", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{ctr("web", nil)}}}
	err := c.Create(ctx, p)
	if err == nil || !strings.Contains(err.Error(), rootRunAsNonRoot) {
		t.Fatalf("got %v, want a denial", err)
	}
	want := []string{fmt.Sprintf(`namespace %q: label packnow.io/pod-security="Enforce" is not enforce, warn or audit; enforcing`, ns)}
	if got := warned.take(); !slices.Equal(got, want) {
		t.Errorf("warnings\n got %q\nwant %q", got, want)
	}
}
