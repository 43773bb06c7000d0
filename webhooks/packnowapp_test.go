package webhooks

import (
	"context"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// TestPackNowAppDefaulting: the mutating webhook normalises what users commonly write so that the schema accepts it.
func TestPackNowAppDefaulting(t *testing.T) {
	startOperator(t, Options{CertManager: true})
	ns := namespace(t, "")
	app, err := createApp(context.Background(), "shop", ns, `{
		"allowedHosts": ["API.Example.com."],
		"cors": {"allowedOrigins": ["https://shop.example.com/"]},
		"ingress": {"provider": "GatewayAPI", "hosts": ["Shop.Example.com"], "gatewayRef": {"name": "public"}}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := app.Spec.AllowedHosts; !slices.Equal(got, []string{"api.example.com"}) {
		t.Errorf("allowedHosts %q", got)
	}
	if got := app.Spec.Ingress.Hosts; !slices.Equal(got, []string{"shop.example.com"}) {
		t.Errorf("ingress.hosts %q", got)
	}
	if got := app.Spec.CORS.AllowedOrigins; !slices.Equal(got, []string{"https://shop.example.com"}) {
		t.Errorf("cors.allowedOrigins %q", got)
	}
	if got := app.Spec.Ingress.GatewayRef.Namespace; got != ns {
		t.Errorf("gatewayRef.namespace %q, want the app's namespace %q", got, ns)
	}
	// The CRD's own defaults are still applied around the webhook's.
	if app.Spec.PodSecurity.Mode != packnowv1alpha1.PodSecurityEnforce || app.Spec.Auth.Algorithm != "HS256" {
		t.Errorf("CRD defaults missing: %+v", app.Spec)
	}
}

// TestPackNowAppValidation: each rule that CEL cannot express rejects the app with an error naming the field.
func TestPackNowAppValidation(t *testing.T) {
	startOperator(t, Options{CertManager: true})
	ctx := context.Background()
	ns := namespace(t, "")
	if _, err := createApp(ctx, "taken", ns, `{"ingress": {"provider": "Ingress", "hosts": ["shop.example.com"]}}`); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 64)
	for _, tc := range []struct{ name, spec, want string }{
		{"database existingSecret name", `{"database": {"existingSecret": "Postgres_Creds"}}`, `spec.database.existingSecret: Invalid value: "Postgres_Creds"`},
		{"redis existingSecret name", `{"redis": {"existingSecret": "redis..creds"}}`, `spec.redis.existingSecret: Invalid value: "redis..creds"`},
		{"database host label too long", `{"database": {"host": "` + long + `.example.com"}}`, `spec.database.host: Invalid value: "` + long + `.example.com": must be an IP address or a DNS name`},
		{"redis host label too long", `{"redis": {"host": "` + long + `"}}`, `spec.redis.host: Invalid value: "` + long + `": must be an IP address or a DNS name`},
		{"allowed host label too long", `{"allowedHosts": ["*.` + long + `.example.com"]}`, `spec.allowedHosts[0]: Invalid value: "*.` + long + `.example.com"`},
		{"ingress host label too long", `{"ingress": {"provider": "Ingress", "hosts": ["` + long + `.example.com"]}}`, `spec.ingress.hosts[0]: Invalid value: "` + long + `.example.com"`},
		{"ingress host used by another app", `{"ingress": {"provider": "Ingress", "hosts": ["api.example.com", "shop.example.com"]}}`,
			`spec.ingress.hosts[1]: Duplicate value: "shop.example.com (already served by PackNowApp \"taken\")"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := createApp(ctx, "app-"+randSuffix(), ns, tc.spec)
			want := `admission webhook "validate.packnowapps.packnow.io" denied the request: `
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s...%s", err, want, tc.want)
			}
		})
	}
	// The same host in another namespace is someone else's business.
	if _, err := createApp(ctx, "taken", namespace(t, ""), `{"ingress": {"provider": "Ingress", "hosts": ["shop.example.com"]}}`); err != nil {
		t.Errorf("same host in another namespace: %v", err)
	}
	// An IP address is a valid server host.
	if _, err := createApp(ctx, "by-ip", ns, `{"database": {"host": "10.0.0.7"}, "redis": {"host": "fd00::7"}}`); err != nil {
		t.Errorf("IP hosts: %v", err)
	}
}

// TestPackNowAppWarnings: risky but legal settings are admitted with a warning each.
func TestPackNowAppWarnings(t *testing.T) {
	startOperator(t, Options{CertManager: true})
	ctx := context.Background()
	ns := namespace(t, "")
	c, warned := warningClient(t)
	for _, tc := range []struct{ name, spec, want string }{
		{"debug", `{"debug": true}`, "spec.debug is true: the API serves its OpenAPI docs and puts internal error details in 5xx responses; never use it in production"},
		{"hsts off", `{"securityHeaders": {"hsts": {"maxAgeSeconds": 0}}}`, "spec.securityHeaders.hsts.maxAgeSeconds is 0: HSTS is off, so browsers may reach the API over plain HTTP"},
		{"rotation over a year", `{"secretKey": {"rotationPeriod": "8784h"}}`, "spec.secretKey.rotationPeriod is 8784h0m0s, over 365 days: a leaked SECRET_KEY stays valid that long"},
		{"http origin", `{"cors": {"allowedOrigins": ["https://shop.example.com", "http://legacy.example.com"]}}`,
			`spec.cors.allowedOrigins[1] "http://legacy.example.com" is not HTTPS: pages served over plain HTTP can be altered in transit and then call the API with the user's credentials`},
		{"none for the defaults", `{}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warned.take()
			if _, err := createAppWith(ctx, c, "app-"+randSuffix(), ns, tc.spec); err != nil {
				t.Fatal(err)
			}
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if got := warned.take(); !slices.Equal(got, want) {
				t.Errorf("warnings\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestPackNowAppUpdates: switching to an existing Secret warns that the generated one stays; renaming the
// database is refused.
func TestPackNowAppUpdates(t *testing.T) {
	startOperator(t, Options{CertManager: true})
	ctx := context.Background()
	ns := namespace(t, "")
	c, warned := warningClient(t)
	app, err := createApp(ctx, "shop", ns, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	update := func(f func(*packnowv1alpha1.PackNowApp)) error {
		cur := &packnowv1alpha1.PackNowApp{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(app), cur); err != nil {
			return err
		}
		f(cur)
		warned.take()
		return c.Update(ctx, cur)
	}

	if err := update(func(a *packnowv1alpha1.PackNowApp) {
		a.Spec.Database.ExistingSecret = "shop-db"
		a.Spec.Redis.ExistingSecret = "shop-cache"
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"spec.database.existingSecret is now set: the generated Secret shop-postgres is not deleted and keeps the old credentials; delete it once nothing uses it",
		"spec.redis.existingSecret is now set: the generated Secret shop-redis is not deleted and keeps the old credentials; delete it once nothing uses it",
	}
	if got := warned.take(); !slices.Equal(got, want) {
		t.Errorf("warnings\n got %q\nwant %q", got, want)
	}

	err = update(func(a *packnowv1alpha1.PackNowApp) { a.Spec.Database.Name = "shop2" })
	wantErr := `spec.database.name: Forbidden: is immutable (was "packnow")`
	if err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Errorf("renaming the database: got %v, want %q", err, wantErr)
	}
	if err := update(func(a *packnowv1alpha1.PackNowApp) { a.Spec.Replicas = nil; a.Spec.Debug = false }); err != nil {
		t.Errorf("an unrelated update: %v", err)
	}
}
