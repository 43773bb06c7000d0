package controllers

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the builders' output")

var testInputs = deploymentInputs{
	image:           "packnow-api:v1.2.3",
	databaseSecret:  "demo-postgres",
	redisSecret:     "demo-redis",
	secretKeyHash:   "secret-key-hash",
	credentialsHash: "credentials-hash",
}

// TestDeploymentGolden pins the whole Deployment; review a diff in testdata/deployment.yaml like code
// (go test ./controllers -run Golden -update rewrites it).
func TestDeploymentGolden(t *testing.T) {
	assertGolden(t, "deployment.yaml", desiredDeployment(testApp(), testInputs))
}

// assertGolden compares obj as YAML with testdata/<file>; -update rewrites the file.
func assertGolden(t *testing.T, file string, obj any) {
	t.Helper()
	got, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("differs from %s (rerun with -update and review the diff):\n%s", golden, got)
	}
}

// The pod must be admitted in a namespace that enforces Pod Security "restricted": the upstream checks decide.
func TestDeploymentPassesPodSecurityRestricted(t *testing.T) {
	evaluator, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := toObject[appsv1.Deployment](t, desiredDeployment(testApp(), testInputs))
	restricted := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	for _, r := range evaluator.EvaluatePod(restricted, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec) {
		if !r.Allowed {
			t.Errorf("restricted forbids it: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
}

func TestDeploymentRollsWithoutLosingCapacity(t *testing.T) {
	d := toObject[appsv1.Deployment](t, desiredDeployment(testApp(), testInputs))
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.String() == "0" {
		t.Errorf("rolling update %+v, want maxUnavailable 0 and a surge", ru)
	}
	spread := d.Spec.Template.Spec.TopologySpreadConstraints
	if len(spread) != 1 || spread[0].TopologyKey != corev1.LabelHostname || spread[0].WhenUnsatisfiable != corev1.ScheduleAnyway ||
		spread[0].LabelSelector.MatchLabels[LabelInstance] != "demo" {
		t.Errorf("topology spread %+v, want the app's pods spread across nodes, best effort", spread)
	}
	if got := d.Spec.Selector.MatchLabels; len(got) != 3 || got[LabelManagedBy] != "" {
		t.Errorf("selector %v, want name, instance and component only (a selector cannot change later)", got)
	}
}

func TestDeploymentPodTemplateFollowsSecretValues(t *testing.T) {
	d := toObject[appsv1.Deployment](t, desiredDeployment(testApp(), testInputs))
	a := d.Spec.Template.Annotations
	if a[AnnotationSecretKeyHash] != "secret-key-hash" || a[AnnotationCredentialsHash] != "credentials-hash" {
		t.Errorf("pod template annotations %v, want both hashes", a)
	}
}

func TestDeploymentImageAndReplicas(t *testing.T) {
	app := testApp()
	app.Spec.Replicas = ptr.To[int32](5)
	d := toObject[appsv1.Deployment](t, desiredDeployment(app, testInputs))
	if ptr.Deref(d.Spec.Replicas, 0) != 5 || d.Spec.Template.Spec.Containers[0].Image != "packnow-api:v1.2.3" {
		t.Errorf("replicas %v image %q", d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
}

func TestResources(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec corev1.ResourceRequirements
		want string
	}{
		{"none: small defaults with a memory limit", corev1.ResourceRequirements{},
			"limits:memory=256Mi requests:cpu=100m,memory=64Mi"},
		{"the spec's, as written", corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		}, "limits:memory=1Gi requests:cpu=1"},
		{"limits only: no defaults mixed in", corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
		}, "limits:memory=512Mi requests:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := toObject[corev1.ResourceRequirements](t, resources(tc.spec))
			if got := "limits:" + list(r.Limits) + " requests:" + list(r.Requests); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func list(l corev1.ResourceList) string {
	var parts []string
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := l[name]; ok {
			parts = append(parts, string(name)+"="+q.String())
		}
	}
	return strings.Join(parts, ",")
}

func TestEnv(t *testing.T) {
	app := testApp()
	app.Spec.Ingress = &packnowv1alpha1.IngressSpec{Hosts: []string{"api.packnow.example", "eu.packnow.example"}}
	app.Spec.Auth.RefreshTokenTTL.Duration = 30 * 24 * time.Hour
	env := map[string]corev1.EnvVar{}
	for _, e := range toObject[corev1.Container](t, corev1ac.Container().WithEnv(apiEnv(app, testInputs)...)).Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("%s is set twice", e.Name)
		}
		env[e.Name] = e
	}

	secretRefs := map[string]struct {
		secret, key string
		optional    bool
	}{
		"SECRET_KEY":          {"demo-secret-key", "SECRET_KEY", false},
		"SECRET_KEY_NEXT":     {"demo-secret-key", "SECRET_KEY_NEXT", true},
		"SECRET_KEY_PREVIOUS": {"demo-secret-key", "SECRET_KEY_PREVIOUS", true},
		"DATABASE_URL":        {"demo-postgres", "DATABASE_URL", false},
		"REDIS_URL":           {"demo-redis", "REDIS_URL", false},
	}
	for name, want := range secretRefs {
		e := env[name]
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s = %+v, want it from a Secret, never inline", name, e)
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != want.secret || ref.Key != want.key || ptr.Deref(ref.Optional, false) != want.optional {
			t.Errorf("%s from %s/%s optional %v, want %s/%s optional %v", name, ref.Name, ref.Key, ref.Optional, want.secret, want.key, want.optional)
		}
	}

	plain := map[string]string{
		"DEBUG":                       "false",
		"ALLOWED_ORIGINS":             "https://app.packnow.example",
		"ALLOWED_HOSTS":               "api.packnow.example,eu.packnow.example,demo-api,demo-api.shop,demo-api.shop.svc,demo-api.shop.svc.cluster.local",
		"ACCESS_TOKEN_EXPIRE_MINUTES": "15",
		"REFRESH_TOKEN_EXPIRE_DAYS":   "30",
		"ALGORITHM":                   "HS256",
		"RATE_LIMIT_PER_MINUTE":       "60",
		"RATE_LIMIT_BURST":            "10",
		"CORS_ALLOWED_METHODS":        "GET,POST,PUT,DELETE,PATCH",
		"CORS_ALLOW_CREDENTIALS":      "true",
		"CORS_MAX_AGE":                "600",
		"HSTS_MAX_AGE":                "31536000",
		"HSTS_INCLUDE_SUBDOMAINS":     "true",
		"HSTS_PRELOAD":                "false",
		"CONTENT_SECURITY_POLICY":     "default-src 'none'; frame-ancestors 'none'",
		"FRAME_OPTIONS":               "DENY",
		"REFERRER_POLICY":             "strict-origin-when-cross-origin",
		"PERMISSIONS_POLICY":          "geolocation=(), microphone=(), camera=(), payment=()",
		"LISTEN_ADDR":                 ":8000",
	}
	for name, want := range plain {
		if got := env[name]; got.Value != want || got.ValueFrom != nil {
			t.Errorf("%s = %q (from %v), want %q", name, got.Value, got.ValueFrom, want)
		}
	}
	if len(env) != len(secretRefs)+len(plain) {
		t.Errorf("%d variables, want exactly the %d listed", len(env), len(secretRefs)+len(plain))
	}
}

func TestEnvNamesTheExistingSecrets(t *testing.T) {
	in := testInputs
	in.databaseSecret, in.redisSecret = "team-db", "team-cache"
	for _, e := range apiEnv(testApp(), in) {
		switch *e.Name {
		case "DATABASE_URL":
			if *e.ValueFrom.SecretKeyRef.Name != "team-db" {
				t.Errorf("DATABASE_URL from %s", *e.ValueFrom.SecretKeyRef.Name)
			}
		case "REDIS_URL":
			if *e.ValueFrom.SecretKeyRef.Name != "team-cache" {
				t.Errorf("REDIS_URL from %s", *e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
}

func TestEnvLeavesUnsetPointersToTheApp(t *testing.T) {
	app := testApp()
	app.Spec.CORS.AllowCredentials = nil
	app.Spec.SecurityHeaders.HSTS = packnowv1alpha1.HSTSSpec{}
	app.Spec.CORS.AllowedOrigins = nil
	for _, e := range apiEnv(app, testInputs) {
		switch *e.Name {
		case "CORS_ALLOW_CREDENTIALS", "HSTS_MAX_AGE", "HSTS_INCLUDE_SUBDOMAINS":
			t.Errorf("%s is set although the spec has no value", *e.Name)
		case "ALLOWED_ORIGINS":
			// An empty value is left out: the stored object would drop it and never match what was applied.
			if e.Value != nil {
				t.Errorf("ALLOWED_ORIGINS = %q, want no value", *e.Value)
			}
		}
	}
}

func TestSecurityPatch(t *testing.T) {
	desired := desiredDeployment(testApp(), testInputs)
	for _, tc := range []struct {
		name  string
		edit  func(*appsv1.Deployment)
		paths []string
	}{
		{"as desired", func(*appsv1.Deployment) {}, nil},
		{"capability added", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"SYS_ADMIN"}
		}, []string{"/spec/template/spec/containers/0/name", "/spec/template/spec/containers/0/securityContext"}},
		{"container moved and made privileged", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].SecurityContext.Privileged = ptr.To(true)
			d.Spec.Template.Spec.Containers = append([]corev1.Container{{Name: "sidecar"}}, d.Spec.Template.Spec.Containers...)
		}, []string{"/spec/template/spec/containers/1/name", "/spec/template/spec/containers/1/securityContext"}},
		{"pod securityContext and host namespaces", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}}
			d.Spec.Template.Spec.HostPID = true
			d.Spec.Template.Spec.HostIPC = true
		}, []string{"/spec/template/spec/securityContext", "/spec/template/spec/hostPID", "/spec/template/spec/hostIPC"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := toObject[appsv1.Deployment](t, desired)
			tc.edit(live)
			patch, err := securityPatch(live, desired)
			if err != nil {
				t.Fatal(err)
			}
			var ops []struct{ Op, Path string }
			if patch != nil {
				if err := json.Unmarshal(patch, &ops); err != nil {
					t.Fatal(err)
				}
			}
			var paths []string
			for _, op := range ops {
				paths = append(paths, op.Path)
			}
			if strings.Join(paths, " ") != strings.Join(tc.paths, " ") {
				t.Errorf("patch touches %v, want %v", paths, tc.paths)
			}
		})
	}
}
