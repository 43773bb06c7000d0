package webhooks

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// Paths the PackNowApp webhooks are served on (the paths controller-runtime's builder would choose).
const (
	PackNowAppDefaultPath  = "/mutate-packnow-io-v1alpha1-packnowapp"
	PackNowAppValidatePath = "/validate-packnow-io-v1alpha1-packnowapp"
)

// +kubebuilder:webhookconfiguration:mutating=true,name=mutating-webhook-configuration
// +kubebuilder:webhook:path=/mutate-packnow-io-v1alpha1-packnowapp,mutating=true,failurePolicy=fail,sideEffects=None,timeoutSeconds=5,matchPolicy=Equivalent,groups=packnow.io,resources=packnowapps,verbs=create;update,versions=v1alpha1,name=default.packnowapps.packnow.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-packnow-io-v1alpha1-packnowapp,mutating=false,failurePolicy=fail,sideEffects=None,timeoutSeconds=5,matchPolicy=Equivalent,groups=packnow.io,resources=packnowapps,verbs=create;update,versions=v1alpha1,name=validate.packnowapps.packnow.io,admissionReviewVersions=v1
// +kubebuilder:rbac:groups=packnow.io,resources=packnowapps,verbs=get;list;watch

// PackNowAppDefaulter fills in what the CRD's static defaults cannot: values derived from other fields and
// spellings normalised so that schema validation accepts what the user meant.
type PackNowAppDefaulter struct{}

var _ admission.Defaulter[*packnowv1alpha1.PackNowApp] = PackNowAppDefaulter{}

// Default implements admission.Defaulter.
func (PackNowAppDefaulter) Default(_ context.Context, app *packnowv1alpha1.PackNowApp) error {
	// Host names are case-insensitive; the schema accepts only lower case, and a trailing dot is the same name.
	normalise := func(hosts []string) {
		for i, h := range hosts {
			hosts[i] = strings.TrimSuffix(strings.ToLower(h), ".")
		}
	}
	normalise(app.Spec.AllowedHosts)
	if in := app.Spec.Ingress; in != nil {
		normalise(in.Hosts)
		if in.GatewayRef != nil && in.GatewayRef.Namespace == "" {
			in.GatewayRef.Namespace = app.Namespace
		}
	}
	// An origin never has a path; browsers send it without the trailing slash that is often pasted along.
	for i, o := range app.Spec.CORS.AllowedOrigins {
		app.Spec.CORS.AllowedOrigins[i] = strings.TrimSuffix(o, "/")
	}
	return nil
}

// PackNowAppValidator checks what the CRD's schema and CEL rules cannot: names of referenced Secrets, host
// syntax, hosts unique among the namespace's PackNowApps, and changes that would lose data. It warns about
// settings that are legal but risky.
type PackNowAppValidator struct {
	// Reader lists the other PackNowApps of a namespace, normally from the manager's cache.
	Reader client.Reader
}

var _ admission.Validator[*packnowv1alpha1.PackNowApp] = PackNowAppValidator{}

// maxRotationPeriod is the longest rotation period that does not draw a warning.
const maxRotationPeriod = 365 * 24 * time.Hour

// ValidateCreate implements admission.Validator.
func (v PackNowAppValidator) ValidateCreate(ctx context.Context, app *packnowv1alpha1.PackNowApp) (admission.Warnings, error) {
	return v.validate(ctx, nil, app)
}

// ValidateUpdate implements admission.Validator.
func (v PackNowAppValidator) ValidateUpdate(ctx context.Context, old, app *packnowv1alpha1.PackNowApp) (admission.Warnings, error) {
	return v.validate(ctx, old, app)
}

// ValidateDelete implements admission.Validator.
func (PackNowAppValidator) ValidateDelete(context.Context, *packnowv1alpha1.PackNowApp) (admission.Warnings, error) {
	return nil, nil
}

func (v PackNowAppValidator) validate(ctx context.Context, old, app *packnowv1alpha1.PackNowApp) (admission.Warnings, error) {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	var warnings admission.Warnings

	errs = append(errs, secretName(spec.Child("database", "existingSecret"), app.Spec.Database.ExistingSecret)...)
	errs = append(errs, secretName(spec.Child("redis", "existingSecret"), app.Spec.Redis.ExistingSecret)...)
	errs = append(errs, serverHost(spec.Child("database", "host"), app.Spec.Database.Host)...)
	errs = append(errs, serverHost(spec.Child("redis", "host"), app.Spec.Redis.Host)...)
	for i, h := range app.Spec.AllowedHosts {
		for _, msg := range hostName(strings.TrimPrefix(h, "*.")) {
			errs = append(errs, field.Invalid(spec.Child("allowedHosts").Index(i), h, msg))
		}
	}
	if in := app.Spec.Ingress; in != nil {
		hosts := spec.Child("ingress", "hosts")
		for i, h := range in.Hosts {
			for _, msg := range hostName(h) {
				errs = append(errs, field.Invalid(hosts.Index(i), h, msg))
			}
		}
		dup, err := v.hostsInUse(ctx, app)
		if err != nil {
			return nil, err
		}
		for i, h := range in.Hosts {
			if other, ok := dup[h]; ok {
				errs = append(errs, field.Duplicate(hosts.Index(i), fmt.Sprintf("%s (already served by PackNowApp %q)", h, other)))
			}
		}
	}

	if app.Spec.Debug {
		warnings = append(warnings, "spec.debug is true: the API serves its OpenAPI docs and puts internal error details in 5xx responses; never use it in production")
	}
	if hsts := app.Spec.SecurityHeaders.HSTS.MaxAgeSeconds; hsts != nil && *hsts == 0 {
		warnings = append(warnings, "spec.securityHeaders.hsts.maxAgeSeconds is 0: HSTS is off, so browsers may reach the API over plain HTTP")
	}
	if p := app.Spec.SecretKey.RotationPeriod.Duration; p > maxRotationPeriod {
		warnings = append(warnings, fmt.Sprintf("spec.secretKey.rotationPeriod is %s, over 365 days: a leaked SECRET_KEY stays valid that long", p))
	}
	for i, o := range app.Spec.CORS.AllowedOrigins {
		if strings.HasPrefix(o, "http://") {
			warnings = append(warnings, fmt.Sprintf("spec.cors.allowedOrigins[%d] %q is not HTTPS: pages served over plain HTTP can be altered in transit and then call the API with the user's credentials", i, o))
		}
	}

	if old != nil {
		if old.Spec.Database.Name != "" && app.Spec.Database.Name != old.Spec.Database.Name {
			errs = append(errs, field.Forbidden(spec.Child("database", "name"),
				fmt.Sprintf("is immutable (was %q): a new name points the API at a different, empty database and its users and orders seem lost; migrate the data and create a new PackNowApp", old.Spec.Database.Name)))
		}
		if old.Spec.Database.ExistingSecret == "" && app.Spec.Database.ExistingSecret != "" {
			warnings = append(warnings, fmt.Sprintf("spec.database.existingSecret is now set: the generated Secret %s-postgres is not deleted and keeps the old credentials; delete it once nothing uses it", app.Name))
		}
		if old.Spec.Redis.ExistingSecret == "" && app.Spec.Redis.ExistingSecret != "" {
			warnings = append(warnings, fmt.Sprintf("spec.redis.existingSecret is now set: the generated Secret %s-redis is not deleted and keeps the old credentials; delete it once nothing uses it", app.Name))
		}
	}

	if len(errs) > 0 {
		return warnings, errs.ToAggregate()
	}
	return warnings, nil
}

// hostsInUse maps the ingress hosts of the namespace's other PackNowApps to the app that serves each.
func (v PackNowAppValidator) hostsInUse(ctx context.Context, app *packnowv1alpha1.PackNowApp) (map[string]string, error) {
	var list packnowv1alpha1.PackNowAppList
	if err := v.Reader.List(ctx, &list, client.InNamespace(app.Namespace)); err != nil {
		return nil, fmt.Errorf("listing PackNowApps in %q: %w", app.Namespace, err)
	}
	used := map[string]string{}
	for _, other := range list.Items {
		if other.Name == app.Name || other.Spec.Ingress == nil {
			continue
		}
		for _, h := range other.Spec.Ingress.Hosts {
			used[h] = other.Name
		}
	}
	return used, nil
}

// secretName validates the name of a referenced Secret, which the schema leaves free-form.
func secretName(path *field.Path, name string) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		return nil
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(path, name, msg))
	}
	return errs
}

// hostName checks a DNS name as a whole and label by label (at most 63 characters each), which the schema's
// patterns do not.
func hostName(h string) []string {
	msgs := validation.IsDNS1123Subdomain(h)
	for _, label := range strings.Split(h, ".") {
		if len(label) > validation.DNS1123LabelMaxLength {
			msgs = append(msgs, fmt.Sprintf("label %q is longer than %d characters", label, validation.DNS1123LabelMaxLength))
		}
	}
	return msgs
}

// serverHost accepts an IP address or a DNS name whose labels are at most 63 characters, which the schema's
// pattern does not check.
func serverHost(path *field.Path, host string) field.ErrorList {
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	var errs field.ErrorList
	for _, msg := range hostName(strings.ToLower(host)) {
		errs = append(errs, field.Invalid(path, host, "must be an IP address or a DNS name: "+msg))
	}
	return errs
}
