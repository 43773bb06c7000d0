package controllers

import (
	"net/url"
	"regexp"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

var urlSafe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestRandomURLSafe(t *testing.T) {
	for _, n := range []int{1, 32, passwordLength, 64, 65, 512} {
		a, err := randomURLSafe(n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := randomURLSafe(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != n || !urlSafe.MatchString(a) {
			t.Errorf("randomURLSafe(%d) = %q: want %d URL-safe characters", n, a, n)
		}
		if n >= 32 && a == b {
			t.Errorf("randomURLSafe(%d) returned the same value twice", n)
		}
	}
	if passwordLength < 32 {
		t.Errorf("generated passwords have %d characters, CONVENTIONS require at least 32", passwordLength)
	}
}

func TestPostgresURL(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   packnowv1alpha1.DatabaseSpec
		want string
	}{
		{"defaults", packnowv1alpha1.DatabaseSpec{Host: "pg.shop.svc", Port: 5432, Name: "packnow", User: "packnow", SSLMode: "require"},
			"postgresql://packnow:pw-_1@pg.shop.svc:5432/packnow?sslmode=require"},
		{"sslmode from the spec", packnowv1alpha1.DatabaseSpec{Host: "10.0.0.7", Port: 6432, Name: "orders", User: "api", SSLMode: "verify-full"},
			"postgresql://api:pw-_1@10.0.0.7:6432/orders?sslmode=verify-full"},
		{"IPv6 host", packnowv1alpha1.DatabaseSpec{Host: "fd00::7", Port: 5432, Name: "packnow", User: "packnow", SSLMode: "disable"},
			"postgresql://packnow:pw-_1@[fd00::7]:5432/packnow?sslmode=disable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := postgresURL(tc.db, "pw-_1")
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if pw, _ := u.User.Password(); pw != "pw-_1" {
				t.Errorf("the URL parses back to password %q", pw)
			}
		})
	}
}

func TestRedisURL(t *testing.T) {
	for _, tc := range []struct {
		name  string
		redis packnowv1alpha1.RedisSpec
		want  string
	}{
		{"plain", packnowv1alpha1.RedisSpec{Host: "redis.shop.svc", Port: 6379}, "redis://:pw@redis.shop.svc:6379/0"},
		{"TLS and a database", packnowv1alpha1.RedisSpec{Host: "cache.example", Port: 6380, DB: 3, TLS: true}, "rediss://:pw@cache.example:6380/3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := redisURL(tc.redis, "pw"); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCredentialSecrets(t *testing.T) {
	app := testApp()
	pg := toObject[corev1.Secret](t, desiredPostgresSecret(app, "s3cret"))
	if pg.Name != "demo-postgres" || pg.Type != corev1.SecretTypeBasicAuth {
		t.Errorf("Postgres Secret %s of type %s, want demo-postgres kubernetes.io/basic-auth", pg.Name, pg.Type)
	}
	wantPG := map[string]string{
		"username":     "packnow",
		"password":     "s3cret",
		"DATABASE_URL": "postgresql://packnow:s3cret@postgres.shop.svc:5432/packnow?sslmode=require",
	}
	if got := stringData(pg); !equalMaps(got, wantPG) {
		t.Errorf("Postgres Secret data %v, want %v", got, wantPG)
	}

	redis := toObject[corev1.Secret](t, desiredRedisSecret(app, "s3cret"))
	wantRedis := map[string]string{"password": "s3cret", "REDIS_URL": "redis://:s3cret@redis.shop.svc:6379/0"}
	if redis.Name != "demo-redis" || !equalMaps(stringData(redis), wantRedis) {
		t.Errorf("Redis Secret %s data %v, want demo-redis %v", redis.Name, stringData(redis), wantRedis)
	}
}

func TestCredentialNamesTheSecretTheAppReads(t *testing.T) {
	app := testApp()
	if got := postgresCredential(app).secretName(); got != "demo-postgres" {
		t.Errorf("generated Postgres Secret %q", got)
	}
	app.Spec.Database.ExistingSecret = "team-db"
	app.Spec.Redis.ExistingSecret = "team-cache"
	if got := postgresCredential(app).secretName(); got != "team-db" {
		t.Errorf("Postgres Secret %q, want the existingSecret", got)
	}
	if got := redisCredential(app).secretName(); got != "team-cache" {
		t.Errorf("Redis Secret %q, want the existingSecret", got)
	}
	app.Spec.Redis.RetainOnDelete = ptr.To(false)
	if refs := toObject[corev1.Secret](t, redisCredential(app).build("pw")).OwnerReferences; len(refs) != 1 {
		t.Errorf("owner references %v of a Secret that goes with the app", refs)
	}
}

func stringData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
