package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/app/keyring"
)

var generatedAt = time.Date(2026, 12, 3, 16, 30, 0, 0, time.UTC)

func TestNewSecretKeyHasTheSpecLength(t *testing.T) {
	for _, length := range []int32{64, 100, 512} {
		state, err := newSecretKeyState(length, generatedAt.Add(123*time.Millisecond), "")
		if err != nil {
			t.Fatal(err)
		}
		if k := state.keys.Current; len(k) != int(length) || !urlSafe.MatchString(k) {
			t.Errorf("length %d: key of %d characters, URL-safe %v", length, len(k), urlSafe.MatchString(k))
		}
		if state.keys.Next != "" || state.keys.Previous != "" {
			t.Errorf("a first key comes with next %q / previous %q", state.keys.Next, state.keys.Previous)
		}
		// Whole seconds: the time is stored as RFC 3339 and must read back equal, or status would churn.
		if !state.rotatedAt.Equal(generatedAt) {
			t.Errorf("rotatedAt %s, want %s", state.rotatedAt, generatedAt)
		}
	}
}

func TestSecretKeySecretReadsBackItsState(t *testing.T) {
	app := testApp()
	for _, keys := range []keyring.Set{
		{Current: strings.Repeat("c", 64)},
		{Current: strings.Repeat("c", 64), Next: strings.Repeat("n", 64)},
		{Current: strings.Repeat("c", 64), Previous: strings.Repeat("p", 64)},
	} {
		want := secretKeyState{keys: keys, rotatedAt: generatedAt}
		secret := toObject[corev1.Secret](t, desiredSecretKeySecret(app, want))
		if secret.Name != "demo-secret-key" || secret.Type != corev1.SecretTypeOpaque {
			t.Errorf("Secret %s of type %s", secret.Name, secret.Type)
		}
		if secret.Annotations[AnnotationRotatedAt] != "2026-12-03T16:30:00Z" {
			t.Errorf("rotated-at %q", secret.Annotations[AnnotationRotatedAt])
		}
		for name, v := range secret.Data {
			if len(v) == 0 {
				t.Errorf("%s is present but empty: applying it would not drop the key", name)
			}
		}
		got, ok := secretKeyStateFrom(secret)
		if !ok || got.keys != want.keys || !got.rotatedAt.Equal(want.rotatedAt) {
			t.Errorf("read back %+v (ok %v), want %+v", got, ok, want)
		}
	}
}

func TestSecretKeyStateFromAnIncompleteSecret(t *testing.T) {
	created := metav1.NewTime(generatedAt.Add(-time.Hour))
	noAnnotation := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{CreationTimestamp: created},
		Data:       map[string][]byte{"SECRET_KEY": []byte(strings.Repeat("k", 64))},
	}
	if got, ok := secretKeyStateFrom(noAnnotation); !ok || !got.rotatedAt.Equal(created.Time) {
		t.Errorf("without rotated-at: %v (ok %v), want the creation time %s", got.rotatedAt, ok, created)
	}
	if _, ok := secretKeyStateFrom(&corev1.Secret{Data: map[string][]byte{"SECRET_KEY_NEXT": []byte("x")}}); ok {
		t.Error("a Secret without SECRET_KEY reads as holding a signing key")
	}
}

func TestSecretKeyHash(t *testing.T) {
	base := keyring.Set{Current: "current-key", Next: "next-key", Previous: "previous-key"}
	seen := map[string]keyring.Set{secretKeyHash(base): base}
	for _, changed := range []keyring.Set{
		{Current: "other", Next: base.Next, Previous: base.Previous},
		{Current: base.Current, Previous: base.Previous},
		{Current: base.Current, Next: base.Next},
		// The same characters split differently between the keys.
		{Current: "current-keynext-key", Previous: base.Previous},
	} {
		h := secretKeyHash(changed)
		if other, dup := seen[h]; dup {
			t.Errorf("%+v and %+v hash alike", changed, other)
		}
		seen[h] = changed
	}
	if h := secretKeyHash(base); secretKeyHash(base) != h || strings.Contains(h, "current-key") {
		t.Errorf("hash %q is unstable or shows the key", h)
	}
}

func TestSecretKeyStatus(t *testing.T) {
	app := testApp()
	key := strings.Repeat("k", 64)
	for _, tc := range []struct {
		keys keyring.Set
		want packnowv1alpha1.KeyRotationPhase
	}{
		{keyring.Set{Current: key}, packnowv1alpha1.PhaseStable},
		{keyring.Set{Current: key, Next: "n"}, packnowv1alpha1.PhaseStaged},
		{keyring.Set{Current: key, Previous: "p"}, packnowv1alpha1.PhasePromoted},
	} {
		st := secretKeyStatus(app, secretKeyState{keys: tc.keys, rotatedAt: generatedAt})
		if st.Phase != tc.want || st.CurrentKeyID != keyring.KeyID(key) {
			t.Errorf("%+v: phase %s kid %s, want %s and the current key's id", tc.keys, st.Phase, st.CurrentKeyID, tc.want)
		}
		if !st.LastRotationTime.Time.Equal(generatedAt) || !st.NextRotationTime.Time.Equal(generatedAt.Add(90*24*time.Hour)) {
			t.Errorf("rotation times %s / %s, want %s and 90 days later", st.LastRotationTime, st.NextRotationTime, generatedAt)
		}
	}
}
