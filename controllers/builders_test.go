package controllers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// testApp is a PackNowApp as the API server returns it for the README's example: every default filled in.
func testApp() *packnowv1alpha1.PackNowApp {
	return &packnowv1alpha1.PackNowApp{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "shop", UID: "8d5c1f0e-uid", Generation: 1},
		Spec: packnowv1alpha1.PackNowAppSpec{
			Replicas: ptr.To[int32](2),
			Auth: packnowv1alpha1.AuthSpec{
				AccessTokenTTL:  metav1.Duration{Duration: 15 * time.Minute},
				RefreshTokenTTL: metav1.Duration{Duration: 168 * time.Hour},
				Algorithm:       "HS256",
			},
			SecretKey: packnowv1alpha1.SecretKeySpec{
				RotationPeriod: metav1.Duration{Duration: 2160 * time.Hour},
				Length:         64,
			},
			Database: packnowv1alpha1.DatabaseSpec{
				Host: "postgres.shop.svc", Port: 5432, Name: "packnow", User: "packnow", SSLMode: "require",
				RetainOnDelete: ptr.To(true),
			},
			Redis: packnowv1alpha1.RedisSpec{Host: "redis.shop.svc", Port: 6379, RetainOnDelete: ptr.To(true)},
			CORS: packnowv1alpha1.CORSSpec{
				AllowedOrigins:   []string{"https://app.packnow.example"},
				AllowedMethods:   []string{"GET", "POST", "PUT", "DELETE", "PATCH"},
				AllowCredentials: ptr.To(true),
				MaxAgeSeconds:    600,
			},
			RateLimit: packnowv1alpha1.RateLimitSpec{RequestsPerMinute: 60, Burst: 10},
			SecurityHeaders: packnowv1alpha1.SecurityHeadersSpec{
				HSTS:                  packnowv1alpha1.HSTSSpec{MaxAgeSeconds: ptr.To[int32](31536000), IncludeSubDomains: ptr.To(true)},
				ContentSecurityPolicy: "default-src 'none'; frame-ancestors 'none'",
				FrameOptions:          "DENY",
				ReferrerPolicy:        "strict-origin-when-cross-origin",
				PermissionsPolicy:     "geolocation=(), microphone=(), camera=(), payment=()",
			},
			AllowedHosts: []string{"api.packnow.example"},
		},
	}
}

// toObject turns an apply configuration into the typed object the API server would receive.
func toObject[T any](t *testing.T, applyConfig any) *T {
	t.Helper()
	raw, err := json.Marshal(applyConfig)
	if err != nil {
		t.Fatal(err)
	}
	obj := new(T)
	if err := json.Unmarshal(raw, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestEveryChildCarriesTheLabelsAndItsOwnership(t *testing.T) {
	app := testApp()
	notRetained := testApp()
	notRetained.Spec.Database.RetainOnDelete = ptr.To(false)
	notRetained.Spec.Redis.RetainOnDelete = ptr.To(false)
	state, err := newSecretKeyState(64, time.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		applied   any
		wantOwner bool
	}{
		{"Deployment", desiredDeployment(app, deploymentInputs{image: "img"}), true},
		{"Service", desiredService(app), true},
		{"ServiceAccount", desiredServiceAccount(app), true},
		{"PodDisruptionBudget", desiredPodDisruptionBudget(app), true},
		{"NetworkPolicy", desiredNetworkPolicy(app, 5432, 6379), true},
		{"SECRET_KEY Secret", desiredSecretKeySecret(app, state), true},
		{"retained Postgres Secret", desiredPostgresSecret(app, "pw"), false},
		{"retained Redis Secret", desiredRedisSecret(app, "pw"), false},
		{"Postgres Secret with retainOnDelete false", desiredPostgresSecret(notRetained, "pw"), true},
		{"Redis Secret with retainOnDelete false", desiredRedisSecret(notRetained, "pw"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := toObject[metav1.PartialObjectMetadata](t, tc.applied)
			want := map[string]string{
				"app.kubernetes.io/name":       "packnow-api",
				"app.kubernetes.io/instance":   "demo",
				"app.kubernetes.io/component":  "api",
				"app.kubernetes.io/managed-by": "packnow-operator",
			}
			for k, v := range want {
				if meta.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, meta.Labels[k], v)
				}
			}
			if meta.Namespace != "shop" {
				t.Errorf("namespace %q, want the app's", meta.Namespace)
			}
			switch {
			case tc.wantOwner && len(meta.OwnerReferences) != 1:
				t.Fatalf("owner references %v, want the app as controller", meta.OwnerReferences)
			case tc.wantOwner:
				ref := meta.OwnerReferences[0]
				if ref.Kind != "PackNowApp" || ref.Name != "demo" || ref.UID != app.UID || !ptr.Deref(ref.Controller, false) {
					t.Errorf("owner reference %+v, want the app as controller", ref)
				}
			case len(meta.OwnerReferences) != 0:
				t.Errorf("a retained Secret has owner references %v: the garbage collector would delete it", meta.OwnerReferences)
			}
		})
	}
}

func TestServiceForwardsPort80ToTheAppPort(t *testing.T) {
	svc := toObject[corev1.Service](t, desiredService(testApp()))
	if svc.Name != "demo-api" || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Fatalf("Service %s of type %s, want demo-api ClusterIP", svc.Name, svc.Spec.Type)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("ports %+v, want one", svc.Spec.Ports)
	}
	p := svc.Spec.Ports[0]
	if p.Name != "http" || p.Port != 80 || p.TargetPort.IntValue() != 8000 || p.Protocol != corev1.ProtocolTCP {
		t.Errorf("port %+v, want http 80/TCP -> 8000", p)
	}
	if got := svc.Spec.Selector; len(got) != 3 || got["app.kubernetes.io/instance"] != "demo" {
		t.Errorf("selector %v, want the app's pods", got)
	}
	if got := serviceURL(testApp()); got != "http://demo-api.shop.svc" {
		t.Errorf("service URL %q", got)
	}
}

func TestServiceAccountMountsNoToken(t *testing.T) {
	sa := toObject[corev1.ServiceAccount](t, desiredServiceAccount(testApp()))
	if sa.Name != "demo-api" || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount %s automount %v, want demo-api with automount false", sa.Name, sa.AutomountServiceAccountToken)
	}
}

func TestChangeEventTellsRepairsFromSpecChanges(t *testing.T) {
	for _, tc := range []struct {
		name               string
		observed, current  int64
		found              bool
		wantReason, wantIn string
	}{
		{"first reconcile", 0, 1, false, "Created", "created"},
		{"spec changed, child missing", 1, 2, false, "Created", "created"},
		{"spec changed, child differs", 1, 2, true, "Updated", "updated"},
		{"spec unchanged, child deleted", 2, 2, false, "Repaired", "re-created"},
		{"spec unchanged, child edited", 2, 2, true, "Repaired", "restored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := testApp()
			app.Generation, app.Status.ObservedGeneration = tc.current, tc.observed
			reason, note := changeEvent(app, tc.found)
			if reason != tc.wantReason || !strings.Contains(note, tc.wantIn) {
				t.Errorf("%s %q, want %s %q", reason, note, tc.wantReason, tc.wantIn)
			}
		})
	}
}
