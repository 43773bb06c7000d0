package controllers

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/app/keyring"
)

// secretKeyState is what the SECRET_KEY Secret records: the key set, when the current key started signing, when
// the next one was staged and which manual rotation request was last answered. Rotation (stage, promote,
// retire) moves from one state to the next; each state is one write of the Secret, so the Secret alone says
// where a rotation stands.
type secretKeyState struct {
	keys      keyring.Set
	rotatedAt time.Time
	// stagedAt is set while keys.Next is.
	stagedAt time.Time
	// handledRequest is the value of the app's packnow.io/rotate-secret-key annotation when the last rotation
	// was staged or the key generated; a different value requests a rotation.
	handledRequest string
	// handledRetire is the value of the app's packnow.io/retire-previous-key annotation last answered; a
	// different value retires the previous key at once.
	handledRetire string
}

// newSecretKeyState generates a first signing key of length characters. A rotation requested before the key
// existed is answered by the new key itself.
func newSecretKeyState(length int32, now time.Time, request string) (secretKeyState, error) {
	key, err := generateKey(length)
	if err != nil {
		return secretKeyState{}, err
	}
	return secretKeyState{keys: keyring.Set{Current: key}, rotatedAt: wholeSecond(now), handledRequest: request}, nil
}

func generateKey(length int32) (string, error) {
	return randomURLSafe(int(max(length, keyring.MinKeyLength)))
}

// wholeSecond is t as stored in an RFC 3339 annotation, so that what is written reads back equal.
func wholeSecond(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// secretKeyStateFrom reads a SECRET_KEY Secret; ok is false when it holds no signing key.
func secretKeyStateFrom(s *corev1.Secret) (state secretKeyState, ok bool) {
	current := string(s.Data[keyring.EnvCurrent])
	if current == "" {
		return secretKeyState{}, false
	}
	state = secretKeyState{
		keys: keyring.Set{
			Current:  current,
			Next:     string(s.Data[keyring.EnvNext]),
			Previous: string(s.Data[keyring.EnvPrevious]),
		},
		rotatedAt:      annotationTime(s, AnnotationRotatedAt),
		handledRequest: s.Annotations[AnnotationRotateSecretKeyHandled],
		handledRetire:  s.Annotations[AnnotationRetirePreviousKeyHandled],
	}
	if state.keys.Next != "" {
		state.stagedAt = annotationTime(s, AnnotationStagedAt)
	}
	return state, true
}

// annotationTime reads an RFC 3339 annotation of the Secret; a missing or unreadable one falls back to the
// Secret's creation, the latest time its first key can have been written.
func annotationTime(s *corev1.Secret, key string) time.Time {
	if t, err := time.Parse(time.RFC3339, s.Annotations[key]); err == nil {
		return t.UTC()
	}
	return s.CreationTimestamp.UTC()
}

// desiredSecretKeySecret is <name>-secret-key holding the key set. Keys and annotations absent from the state
// are left out, so that applying it drops them.
func desiredSecretKeySecret(app *packnowv1alpha1.PackNowApp, state secretKeyState) *corev1ac.SecretApplyConfiguration {
	data := map[string][]byte{keyring.EnvCurrent: []byte(state.keys.Current)}
	if state.keys.Next != "" {
		data[keyring.EnvNext] = []byte(state.keys.Next)
	}
	if state.keys.Previous != "" {
		data[keyring.EnvPrevious] = []byte(state.keys.Previous)
	}
	annotations := map[string]string{AnnotationRotatedAt: state.rotatedAt.UTC().Format(time.RFC3339)}
	if state.keys.Next != "" {
		annotations[AnnotationStagedAt] = state.stagedAt.UTC().Format(time.RFC3339)
	}
	if state.handledRequest != "" {
		annotations[AnnotationRotateSecretKeyHandled] = state.handledRequest
	}
	if state.handledRetire != "" {
		annotations[AnnotationRetirePreviousKeyHandled] = state.handledRetire
	}
	return corev1ac.Secret(secretKeySecretName(app), app.Namespace).
		WithLabels(labels(app)).
		WithAnnotations(annotations).
		WithOwnerReferences(ownerReference(app)).
		WithType(corev1.SecretTypeOpaque).
		WithData(data)
}

// secretKeyHash changes whenever any of the three keys changes and reveals none of them.
func secretKeyHash(keys keyring.Set) string {
	return hashValues(keys.Current, keys.Next, keys.Previous)
}

// hashValues is a SHA-256 over the values, each prefixed with its length so that ("ab", "c") and ("a", "bc")
// differ. It goes into annotations in place of secret values.
func hashValues(values ...string) string {
	h := sha256.New()
	for _, v := range values {
		_ = binary.Write(h, binary.BigEndian, uint64(len(v)))
		h.Write([]byte(v))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// secretKeyStatus reports the key set by id and its schedule; the next rotation is due rotationPeriod after the
// current key started signing.
func secretKeyStatus(app *packnowv1alpha1.PackNowApp, state secretKeyState) packnowv1alpha1.SecretKeyStatus {
	phase := packnowv1alpha1.PhaseStable
	switch {
	case state.keys.Next != "":
		phase = packnowv1alpha1.PhaseStaged
	case state.keys.Previous != "":
		phase = packnowv1alpha1.PhasePromoted
	}
	return packnowv1alpha1.SecretKeyStatus{
		CurrentKeyID:     keyring.KeyID(state.keys.Current),
		LastRotationTime: &metav1.Time{Time: state.rotatedAt},
		NextRotationTime: &metav1.Time{Time: state.rotatedAt.Add(app.Spec.SecretKey.RotationPeriod.Duration)},
		Phase:            phase,
	}
}
