package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// getGenerated reads a generated Secret. The cache misses a Secret that was just created (the watch lags) or
// lost its managed-by label; the API server is asked before the caller concludes that the Secret is gone and
// generates a value that would overwrite a live password.
func (r *PackNowAppReconciler) getGenerated(ctx context.Context, app *packnowv1alpha1.PackNowApp, name string, s *corev1.Secret) (found bool, err error) {
	if found, err = get(ctx, r.Client, app, name, s); found || err != nil {
		return found, err
	}
	return get(ctx, r.APIReader, app, name, s)
}

// reconcileSecretKey keeps the SECRET_KEY Secret: it takes the rotation step that is due, otherwise re-applies
// the keys as they are, and generates a key only when there is none.
func (r *PackNowAppReconciler) reconcileSecretKey(ctx context.Context, app *packnowv1alpha1.PackNowApp) (secretKeyState, keyRotation, error) {
	name := secretKeySecretName(app)
	live := &corev1.Secret{}
	found, err := r.getGenerated(ctx, app, name, live)
	if err != nil {
		return secretKeyState{}, keyRotation{}, err
	}
	state, ok := secretKeyState{}, false
	if found {
		state, ok = secretKeyStateFrom(live)
	}
	if ok {
		return r.rotateSecretKey(ctx, app, live, state)
	}
	// A new key, also in the middle of a rotation: the key set is lost with the Secret.
	if state, err = newSecretKeyState(app.Spec.SecretKey.Length, r.Clock.Now(), app.Annotations[AnnotationRotateSecretKey]); err != nil {
		return secretKeyState{}, keyRotation{}, err
	}
	// A new key has no previous key to retire: a retire request present now is answered.
	state.handledRetire = app.Annotations[AnnotationRetirePreviousKey]
	if app.Status.Secrets.SecretKey == name {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, "SecretKeyRegenerated", "Generate",
			"Secret %s was deleted or lost %s: generated a new signing key; tokens signed with the old key "+
				"no longer verify, so users must sign in again", name, "SECRET_KEY")
	}
	_, err = applyIfChanged(ctx, r, app, live, found, desiredSecretKeySecret(app, state), corev1ac.ExtractSecret)
	return state, keyRotation{plan: planRotation(state, rotationPolicyOf(app), false)}, err
}

// reconcileCredential provides one credential Secret and returns its connection URL. With an existingSecret it
// only reads that Secret; problem names what is missing. Otherwise it keeps the generated Secret's password
// (rebuilding only the URL from the spec) and generates one only when there is none. recorded is the Secret
// the status names from the previous reconcile.
func (r *PackNowAppReconciler) reconcileCredential(ctx context.Context, app *packnowv1alpha1.PackNowApp, c credential, recorded string) (url, problem string, err error) {
	if c.existingSecret != "" {
		return r.readExistingSecret(ctx, app, c)
	}
	live := &corev1.Secret{}
	found, err := r.getGenerated(ctx, app, c.generatedName, live)
	if err != nil {
		return "", "", err
	}
	password := string(live.Data[keyPassword])
	if password == "" {
		if password, err = randomURLSafe(passwordLength); err != nil {
			return "", "", err
		}
		if recorded == c.generatedName {
			live.Namespace, live.Name = app.Namespace, c.generatedName
			r.Recorder.Eventf(app, live, corev1.EventTypeWarning, "PasswordRegenerated", "Generate",
				"Secret %s was deleted or lost its password: generated a new %s password, which the %s server "+
					"must be given before the API can connect", c.generatedName, c.what, c.what)
		}
	}
	desired := c.build(password)
	if _, err := applyIfChanged(ctx, r, app, live, found, desired, corev1ac.ExtractSecret); err != nil {
		return "", "", err
	}
	return string(desired.Data[c.urlKey]), "", nil
}

// readExistingSecret reads the user's Secret around the cache (it is not labelled as the operator's) and never
// writes it.
func (r *PackNowAppReconciler) readExistingSecret(ctx context.Context, app *packnowv1alpha1.PackNowApp, c credential) (url, problem string, err error) {
	s := &corev1.Secret{}
	err = r.APIReader.Get(ctx, client.ObjectKey{Namespace: app.Namespace, Name: c.existingSecret}, s)
	switch {
	case apierrors.IsNotFound(err):
		problem = fmt.Sprintf("Secret %s (%s existingSecret) not found", c.existingSecret, c.what)
	case err != nil:
		return "", "", fmt.Errorf("read Secret %s: %w", c.existingSecret, err)
	case len(s.Data[c.urlKey]) == 0:
		problem = fmt.Sprintf("Secret %s (%s existingSecret) has no key %s", c.existingSecret, c.what, c.urlKey)
	default:
		return string(s.Data[c.urlKey]), "", nil
	}
	r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, ReasonSecretMissing, "Read", "%s", problem)
	return "", problem, nil
}
