package controllers

import (
	"slices"
	"strconv"
	"strings"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/app/keyring"
)

// appPort is where the API listens (LISTEN_ADDR) and what its probes, Service and NetworkPolicy target.
const appPort = 8000

// apiEnv is the API container's environment (CONVENTIONS, "App environment"): keys and connection URLs come
// from Secrets, everything else is derived from the spec. Pointer fields the API server left unset are left out
// so that the app's own default applies.
func apiEnv(app *packnowv1alpha1.PackNowApp, in deploymentInputs) []*corev1ac.EnvVarApplyConfiguration {
	s := app.Spec
	env := []*corev1ac.EnvVarApplyConfiguration{
		secretEnv(keyring.EnvCurrent, secretKeySecretName(app), keyring.EnvCurrent, false),
		// NEXT and PREVIOUS exist only during a rotation.
		secretEnv(keyring.EnvNext, secretKeySecretName(app), keyring.EnvNext, true),
		secretEnv(keyring.EnvPrevious, secretKeySecretName(app), keyring.EnvPrevious, true),
		secretEnv(keyDatabaseURL, in.databaseSecret, keyDatabaseURL, false),
		secretEnv(keyRedisURL, in.redisSecret, keyRedisURL, false),
		plainEnv("DEBUG", strconv.FormatBool(s.Debug)),
		plainEnv("ALLOWED_ORIGINS", strings.Join(s.CORS.AllowedOrigins, ",")),
		plainEnv("ALLOWED_HOSTS", strings.Join(allowedHosts(app), ",")),
		plainEnv("ACCESS_TOKEN_EXPIRE_MINUTES", strconv.Itoa(int(s.Auth.AccessTokenTTL.Minutes()))),
		plainEnv("REFRESH_TOKEN_EXPIRE_DAYS", strconv.Itoa(int(s.Auth.RefreshTokenTTL.Hours()/24))),
		plainEnv("ALGORITHM", s.Auth.Algorithm),
		plainEnv("RATE_LIMIT_PER_MINUTE", strconv.Itoa(int(s.RateLimit.RequestsPerMinute))),
		plainEnv("RATE_LIMIT_BURST", strconv.Itoa(int(s.RateLimit.Burst))),
		plainEnv("CORS_ALLOWED_METHODS", strings.Join(s.CORS.AllowedMethods, ",")),
		plainEnv("CORS_MAX_AGE", strconv.Itoa(int(s.CORS.MaxAgeSeconds))),
	}
	if v := s.CORS.AllowCredentials; v != nil {
		env = append(env, plainEnv("CORS_ALLOW_CREDENTIALS", strconv.FormatBool(*v)))
	}
	h := s.SecurityHeaders
	if v := h.HSTS.MaxAgeSeconds; v != nil {
		env = append(env, plainEnv("HSTS_MAX_AGE", strconv.Itoa(int(*v))))
	}
	if v := h.HSTS.IncludeSubDomains; v != nil {
		env = append(env, plainEnv("HSTS_INCLUDE_SUBDOMAINS", strconv.FormatBool(*v)))
	}
	return append(env,
		plainEnv("HSTS_PRELOAD", strconv.FormatBool(h.HSTS.Preload)),
		plainEnv("CONTENT_SECURITY_POLICY", h.ContentSecurityPolicy),
		plainEnv("FRAME_OPTIONS", h.FrameOptions),
		plainEnv("REFERRER_POLICY", h.ReferrerPolicy),
		plainEnv("PERMISSIONS_POLICY", h.PermissionsPolicy),
		plainEnv("LISTEN_ADDR", ":"+strconv.Itoa(appPort)),
	)
}

// allowedHosts are the spec's hosts, the public hostnames and every name the Service answers to in the cluster.
func allowedHosts(app *packnowv1alpha1.PackNowApp) []string {
	svc := apiName(app)
	hosts := slices.Clone(app.Spec.AllowedHosts)
	if app.Spec.Ingress != nil {
		hosts = append(hosts, app.Spec.Ingress.Hosts...)
	}
	hosts = append(hosts,
		svc,
		svc+"."+app.Namespace,
		svc+"."+app.Namespace+".svc",
		svc+"."+app.Namespace+".svc.cluster.local",
	)
	seen := map[string]bool{}
	return slices.DeleteFunc(hosts, func(h string) bool {
		dup := seen[h]
		seen[h] = true
		return dup
	})
}

// plainEnv leaves an empty value out, as the API server does when it stores the object; applying "" would make
// the applied and the stored configuration differ forever.
func plainEnv(name, value string) *corev1ac.EnvVarApplyConfiguration {
	e := corev1ac.EnvVar().WithName(name)
	if value != "" {
		e.WithValue(value)
	}
	return e
}

func secretEnv(name, secret, key string, optional bool) *corev1ac.EnvVarApplyConfiguration {
	ref := corev1ac.SecretKeySelector().WithName(secret).WithKey(key)
	if optional {
		ref.WithOptional(true)
	}
	return corev1ac.EnvVar().WithName(name).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(ref))
}
