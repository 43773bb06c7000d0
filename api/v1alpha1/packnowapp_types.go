package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PackNowAppSpec is the desired state of one PackNow API installation.
type PackNowAppSpec struct {
	// image is the PackNow API container image. When empty, the operator's default image
	// (its --default-api-image flag) is used, so upgrading the operator upgrades the API.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	Image string `json:"image,omitempty"`

	// replicas is the number of API pods. With more than one, a PodDisruptionBudget keeps one available.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Replicas *int32 `json:"replicas,omitempty"`

	// resources are the CPU and memory requests and limits of the API container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// debug turns on the API's debug mode (DEBUG): OpenAPI document and docs page, internal error text in 5xx
	// responses. Never enable it in production.
	// +optional
	// +kubebuilder:default=false
	Debug bool `json:"debug,omitempty"`

	// auth configures the JSON Web Tokens the API issues.
	// +optional
	// +kubebuilder:default={}
	Auth AuthSpec `json:"auth,omitempty"`

	// secretKey configures the generated SECRET_KEY that signs tokens, and its staged rotation.
	// +optional
	// +kubebuilder:default={}
	SecretKey SecretKeySpec `json:"secretKey,omitempty"`

	// database says where the API's PostgreSQL database is and how the operator provides its credentials.
	Database DatabaseSpec `json:"database"`

	// redis says where the API's Redis is (rate limits, lockouts) and how the operator provides its credentials.
	Redis RedisSpec `json:"redis"`

	// cors is the cross-origin allow-list, enforced by the API and, when an edge is configured, by the edge too.
	// +optional
	// +kubebuilder:default={}
	CORS CORSSpec `json:"cors,omitempty"`

	// rateLimit is the per-client request budget, enforced globally by the API through Redis and, where the
	// edge supports it, at the edge too.
	// +optional
	// +kubebuilder:default={}
	RateLimit RateLimitSpec `json:"rateLimit,omitempty"`

	// securityHeaders are the HTTP security headers set on every response, by the API and by the edge.
	// +optional
	// +kubebuilder:default={}
	SecurityHeaders SecurityHeadersSpec `json:"securityHeaders,omitempty"`

	// allowedHosts are the Host header values the API accepts (ALLOWED_HOSTS); any other Host gets 400.
	// The edge hostnames and the in-cluster Service names are always allowed in addition.
	// A leading "*." matches any subdomain.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	AllowedHosts []string `json:"allowedHosts,omitempty"`

	// ingress publishes the API through Gateway API or an Ingress. Without it the API is reachable only
	// inside the cluster, through its Service.
	// +optional
	Ingress *IngressSpec `json:"ingress,omitempty"`

	// podSecurity sets how the operator's admission webhook treats pods in this PackNowApp's namespace.
	// +optional
	// +kubebuilder:default={}
	PodSecurity PodSecuritySpec `json:"podSecurity,omitempty"`
}

// AuthSpec configures token lifetimes and the signing algorithm.
// +kubebuilder:validation:XValidation:rule="!has(self.accessTokenTTL) || !has(self.refreshTokenTTL) || duration(self.accessTokenTTL) < duration(self.refreshTokenTTL)",message="accessTokenTTL must be shorter than refreshTokenTTL",fieldPath=".accessTokenTTL"
type AuthSpec struct {
	// accessTokenTTL is the lifetime of access tokens (ACCESS_TOKEN_EXPIRE_MINUTES): whole minutes,
	// from 1m to 24h.
	// +optional
	// +kubebuilder:default="15m0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="must be between 1m and 24h"
	// +kubebuilder:validation:XValidation:rule="duration(self).getSeconds() % 60 == 0",message="must be a whole number of minutes"
	AccessTokenTTL metav1.Duration `json:"accessTokenTTL,omitzero"`

	// refreshTokenTTL is the lifetime of refresh tokens (REFRESH_TOKEN_EXPIRE_DAYS): whole days, from 24h to
	// 8760h. A retired signing key is kept this long (plus accessTokenTTL) so that no session is cut short.
	// +optional
	// +kubebuilder:default="168h0m0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('24h') && duration(self) <= duration('8760h')",message="must be between 24h and 8760h"
	// +kubebuilder:validation:XValidation:rule="duration(self).getSeconds() % 86400 == 0",message="must be a whole number of days (a multiple of 24h)"
	RefreshTokenTTL metav1.Duration `json:"refreshTokenTTL,omitzero"`

	// algorithm is the HMAC algorithm that signs tokens (ALGORITHM). The API accepts no other.
	// +optional
	// +kubebuilder:default=HS256
	// +kubebuilder:validation:Enum=HS256;HS384;HS512
	Algorithm string `json:"algorithm,omitempty"`
}

// SecretKeySpec configures the generated SECRET_KEY.
type SecretKeySpec struct {
	// rotationPeriod is how long a signing key stays current before the operator rotates it, counted from its
	// promotion. Rotation is staged (stage, promote, retire) so that no valid token is rejected. At least 24h.
	// +optional
	// +kubebuilder:default="2160h0m0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('24h')",message="must be at least 24h"
	RotationPeriod metav1.Duration `json:"rotationPeriod,omitzero"`

	// length is the number of URL-safe characters of a generated key; at least 64.
	// +optional
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=64
	// +kubebuilder:validation:Maximum=512
	Length int32 `json:"length,omitempty"`
}

// DatabaseSpec locates the PostgreSQL database.
// +kubebuilder:validation:XValidation:rule="has(self.existingSecret) || has(self.host)",message="host is required unless existingSecret is set",fieldPath=".host"
type DatabaseSpec struct {
	// host is the PostgreSQL server's DNS name or IP address. Required unless existingSecret is set.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$`
	Host string `json:"host,omitempty"`

	// port is the PostgreSQL server's port.
	// +optional
	// +kubebuilder:default=5432
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// name is the database name.
	// +optional
	// +kubebuilder:default=packnow
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_$]*$`
	Name string `json:"name,omitempty"`

	// user is the database role the API connects as.
	// +optional
	// +kubebuilder:default=packnow
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_$]*$`
	User string `json:"user,omitempty"`

	// sslMode is the libpq sslmode of the connection.
	// +optional
	// +kubebuilder:default=require
	// +kubebuilder:validation:Enum=disable;allow;prefer;require;verify-ca;verify-full
	SSLMode string `json:"sslMode,omitempty"`

	// existingSecret names a Secret in this namespace holding DATABASE_URL (and username, password). When set,
	// the operator generates nothing and only reads that Secret.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ExistingSecret string `json:"existingSecret,omitempty"`

	// retainOnDelete keeps the generated credential Secret when the PackNowApp is deleted, so that the
	// database stays reachable by a re-created app. Set false to delete it with the app.
	// +optional
	// +kubebuilder:default=true
	RetainOnDelete *bool `json:"retainOnDelete,omitempty"`
}

// RedisSpec locates the Redis server.
// +kubebuilder:validation:XValidation:rule="has(self.existingSecret) || has(self.host)",message="host is required unless existingSecret is set",fieldPath=".host"
type RedisSpec struct {
	// host is the Redis server's DNS name or IP address. Required unless existingSecret is set.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$`
	Host string `json:"host,omitempty"`

	// port is the Redis server's port.
	// +optional
	// +kubebuilder:default=6379
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// db is the Redis logical database number.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	DB int32 `json:"db,omitempty"`

	// tls connects with TLS (a rediss:// URL).
	// +optional
	// +kubebuilder:default=false
	TLS bool `json:"tls,omitempty"`

	// existingSecret names a Secret in this namespace holding REDIS_URL (and password). When set, the operator
	// generates nothing and only reads that Secret.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ExistingSecret string `json:"existingSecret,omitempty"`

	// retainOnDelete keeps the generated credential Secret when the PackNowApp is deleted. Set false to delete
	// it with the app.
	// +optional
	// +kubebuilder:default=true
	RetainOnDelete *bool `json:"retainOnDelete,omitempty"`
}

// CORSSpec is the cross-origin resource sharing policy.
// +kubebuilder:validation:XValidation:rule="!has(self.allowedOrigins) || !self.allowedOrigins.exists(o, o == '*') || self.allowedOrigins.size() == 1",message="\"*\" allows every origin and cannot be listed with others",fieldPath=".allowedOrigins"
// +kubebuilder:validation:XValidation:rule="!has(self.allowCredentials) || !self.allowCredentials || !has(self.allowedOrigins) || !self.allowedOrigins.exists(o, o == '*')",message="\"*\" is not allowed when allowCredentials is true: list the origins",fieldPath=".allowedOrigins"
type CORSSpec struct {
	// allowedOrigins are the origins (scheme://host[:port], no path) allowed to call the API from a browser
	// (ALLOWED_ORIGINS). Empty means no cross-origin access.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*|https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?)$`
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`

	// allowedMethods are the HTTP methods allowed cross-origin.
	// +optional
	// +listType=set
	// +kubebuilder:default={GET,POST,PUT,DELETE,PATCH}
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Enum=GET;POST;PUT;DELETE;PATCH;HEAD;OPTIONS
	AllowedMethods []string `json:"allowedMethods,omitempty"`

	// allowCredentials lets browsers send credentials (the Authorization header) cross-origin.
	// +optional
	// +kubebuilder:default=true
	AllowCredentials *bool `json:"allowCredentials,omitempty"`

	// maxAgeSeconds is how long browsers may cache a preflight response.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	MaxAgeSeconds int32 `json:"maxAgeSeconds,omitempty"`
}

// RateLimitSpec is the per-client request budget.
type RateLimitSpec struct {
	// requestsPerMinute is the steady rate allowed per client (client IP and User-Agent) (RATE_LIMIT_PER_MINUTE).
	// +optional
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	RequestsPerMinute int32 `json:"requestsPerMinute,omitempty"`

	// burst is how many requests a client may make at once above the steady rate. Where the edge expresses
	// bursts as a multiplier (ingress-nginx), it is rounded up to one.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	Burst int32 `json:"burst,omitempty"`
}

// SecurityHeadersSpec are the HTTP security headers. X-Content-Type-Options (nosniff) and X-XSS-Protection
// ("1; mode=block") are always set and have no settings.
type SecurityHeadersSpec struct {
	// hsts is the Strict-Transport-Security header.
	// +optional
	// +kubebuilder:default={}
	HSTS HSTSSpec `json:"hsts,omitempty"`

	// contentSecurityPolicy is the Content-Security-Policy header.
	// +optional
	// +kubebuilder:default="default-src 'none'; frame-ancestors 'none'"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^[ -~]+$`
	ContentSecurityPolicy string `json:"contentSecurityPolicy,omitempty"`

	// frameOptions is the X-Frame-Options header.
	// +optional
	// +kubebuilder:default=DENY
	// +kubebuilder:validation:Enum=DENY;SAMEORIGIN
	FrameOptions string `json:"frameOptions,omitempty"`

	// referrerPolicy is the Referrer-Policy header.
	// +optional
	// +kubebuilder:default=strict-origin-when-cross-origin
	// +kubebuilder:validation:Enum=no-referrer;no-referrer-when-downgrade;origin;origin-when-cross-origin;same-origin;strict-origin;strict-origin-when-cross-origin
	ReferrerPolicy string `json:"referrerPolicy,omitempty"`

	// permissionsPolicy is the Permissions-Policy header.
	// +optional
	// +kubebuilder:default="geolocation=(), microphone=(), camera=(), payment=()"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^[ -~]+$`
	PermissionsPolicy string `json:"permissionsPolicy,omitempty"`
}

// HSTSSpec is the Strict-Transport-Security header.
type HSTSSpec struct {
	// maxAgeSeconds is the max-age directive; 0 turns HSTS off (not recommended).
	// +optional
	// +kubebuilder:default=31536000
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=63072000
	MaxAgeSeconds *int32 `json:"maxAgeSeconds,omitempty"`

	// includeSubDomains adds the includeSubDomains directive.
	// +optional
	// +kubebuilder:default=true
	IncludeSubDomains *bool `json:"includeSubDomains,omitempty"`

	// preload adds the preload directive (only with includeSubDomains and a max-age of at least a year).
	// +optional
	// +kubebuilder:default=false
	Preload bool `json:"preload,omitempty"`
}

// IngressProvider names how traffic reaches the API.
// +kubebuilder:validation:Enum=GatewayAPI;Ingress
type IngressProvider string

const (
	// ProviderGatewayAPI publishes the API with a Gateway API HTTPRoute.
	ProviderGatewayAPI IngressProvider = "GatewayAPI"
	// ProviderIngress publishes the API with a networking.k8s.io Ingress.
	ProviderIngress IngressProvider = "Ingress"
)

// IngressController names the Ingress controller whose annotations and resources the operator writes.
// +kubebuilder:validation:Enum=nginx;traefik
type IngressController string

const (
	// ControllerNginx targets ingress-nginx.
	ControllerNginx IngressController = "nginx"
	// ControllerTraefik targets Traefik (an Ingress plus a Traefik Middleware).
	ControllerTraefik IngressController = "traefik"
)

// IngressSpec publishes the API outside the cluster.
// +kubebuilder:validation:XValidation:rule="self.provider != 'GatewayAPI' || has(self.gatewayRef)",message="gatewayRef is required when provider is GatewayAPI",fieldPath=".gatewayRef"
// +kubebuilder:validation:XValidation:rule="self.provider != 'GatewayAPI' || !has(self.tlsSecretName)",message="with Gateway API the Gateway's listener owns TLS: set the certificate on the listener, not here",fieldPath=".tlsSecretName"
// +kubebuilder:validation:XValidation:rule="self.provider == 'Ingress' || !has(self.ingressClassName)",message="ingressClassName applies only when provider is Ingress",fieldPath=".ingressClassName"
type IngressSpec struct {
	// provider is how traffic reaches the API: GatewayAPI (an HTTPRoute) or Ingress.
	// +optional
	// +kubebuilder:default=GatewayAPI
	Provider IngressProvider `json:"provider,omitempty"`

	// hosts are the public hostnames of the API.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Hosts []string `json:"hosts"`

	// tlsSecretName is the Secret with the TLS certificate for the hosts (Ingress only).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// gatewayRef is the Gateway (and listener) the HTTPRoute attaches to (GatewayAPI only).
	// +optional
	GatewayRef *GatewayRef `json:"gatewayRef,omitempty"`

	// ingressClassName is the IngressClass of the Ingress (Ingress only).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	IngressClassName string `json:"ingressClassName,omitempty"`

	// controller is the Ingress controller flavour, which decides the annotations and extra resources written.
	// +optional
	// +kubebuilder:default=nginx
	Controller IngressController `json:"controller,omitempty"`
}

// GatewayRef points at a Gateway listener.
type GatewayRef struct {
	// name of the Gateway.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// namespace of the Gateway; defaults to the PackNowApp's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// sectionName is the listener of the Gateway to attach to; empty attaches to every listener that allows it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SectionName string `json:"sectionName,omitempty"`
}

// PodSecurityMode is how the admission webhook treats pods that violate the policy.
// +kubebuilder:validation:Enum=Enforce;Warn;Audit
type PodSecurityMode string

const (
	// PodSecurityEnforce denies violating pods and workloads.
	PodSecurityEnforce PodSecurityMode = "Enforce"
	// PodSecurityWarn admits them with admission warnings.
	PodSecurityWarn PodSecurityMode = "Warn"
	// PodSecurityAudit admits them and records a metric and an event.
	PodSecurityAudit PodSecurityMode = "Audit"
)

// PodSecurityLevel is the set of checks applied to pods.
// +kubebuilder:validation:Enum=NonRoot;Restricted
type PodSecurityLevel string

const (
	// PodSecurityNonRoot requires non-root, non-privileged containers without privilege escalation.
	PodSecurityNonRoot PodSecurityLevel = "NonRoot"
	// PodSecurityRestricted applies the full Pod Security Standards restricted profile.
	PodSecurityRestricted PodSecurityLevel = "Restricted"
)

// PodSecuritySpec is the admission policy for pods in the PackNowApp's namespace. A namespace label
// packnow.io/pod-security set by the cluster's administrators takes precedence over mode.
type PodSecuritySpec struct {
	// mode is what happens to a violating pod: Enforce denies it, Warn admits it with warnings, Audit admits it
	// and records it.
	// +optional
	// +kubebuilder:default=Enforce
	Mode PodSecurityMode `json:"mode,omitempty"`

	// level is the set of checks: NonRoot (runAsNonRoot, runAsUser, privileged, allowPrivilegeEscalation) or
	// the full Pod Security Standards Restricted profile.
	// +optional
	// +kubebuilder:default=NonRoot
	Level PodSecurityLevel `json:"level,omitempty"`
}

// KeyRotationPhase is where the SECRET_KEY rotation stands.
// +kubebuilder:validation:Enum=Stable;Staged;Promoted
type KeyRotationPhase string

const (
	// PhaseStable: one signing key, no rotation under way.
	PhaseStable KeyRotationPhase = "Stable"
	// PhaseStaged: the next key is staged (verifies, does not sign) and being rolled out.
	PhaseStaged KeyRotationPhase = "Staged"
	// PhasePromoted: the next key signs; the previous one still verifies until its tokens expire.
	PhasePromoted KeyRotationPhase = "Promoted"
)

// SecretKeyStatus reports the signing key without revealing it.
type SecretKeyStatus struct {
	// currentKeyID is the kid of the key that signs new tokens.
	// +optional
	CurrentKeyID string `json:"currentKeyID,omitempty"`
	// lastRotationTime is when the current key was promoted (or first generated).
	// +optional
	LastRotationTime *metav1.Time `json:"lastRotationTime,omitempty"`
	// nextRotationTime is when the next rotation starts.
	// +optional
	NextRotationTime *metav1.Time `json:"nextRotationTime,omitempty"`
	// phase is where the rotation stands.
	// +optional
	Phase KeyRotationPhase `json:"phase,omitempty"`
}

// SecretsStatus names the Secrets the API uses.
type SecretsStatus struct {
	// secretKey is the Secret holding SECRET_KEY.
	// +optional
	SecretKey string `json:"secretKey,omitempty"`
	// postgres is the Secret holding DATABASE_URL.
	// +optional
	Postgres string `json:"postgres,omitempty"`
	// redis is the Secret holding REDIS_URL.
	// +optional
	Redis string `json:"redis,omitempty"`
}

// PackNowAppStatus is the observed state of a PackNowApp.
type PackNowAppStatus struct {
	// observedGeneration is the generation of the spec that this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Progressing, Degraded, SecretsReady, EdgeReady, KeyRotation.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// replicas is the number of API pods desired.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of API pods ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// replicasReady is "ready/desired", for kubectl get.
	// +optional
	ReplicasReady string `json:"replicasReady,omitempty"`

	// secretKey reports the signing key's id and rotation schedule.
	// +optional
	SecretKey SecretKeyStatus `json:"secretKey,omitempty"`

	// secrets names the Secrets the API uses.
	// +optional
	Secrets SecretsStatus `json:"secrets,omitempty"`

	// url is where the API is reachable: the first public host, or the in-cluster Service URL.
	// +optional
	URL string `json:"url,omitempty"`
}

// Condition types of a PackNowApp.
const (
	ConditionReady        = "Ready"
	ConditionProgressing  = "Progressing"
	ConditionDegraded     = "Degraded"
	ConditionSecretsReady = "SecretsReady"
	ConditionEdgeReady    = "EdgeReady"
	ConditionKeyRotation  = "KeyRotation"
)

// PackNowApp runs the PackNow API: its Deployment, credentials, rotating signing key, admission policy and edge.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pna,categories=packnow
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=string,JSONPath=`.status.replicasReady`
// +kubebuilder:printcolumn:name="Key rotated",type=date,JSONPath=`.status.secretKey.lastRotationTime`
// +kubebuilder:printcolumn:name="Next rotation",type=string,JSONPath=`.status.secretKey.nextRotationTime`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PackNowApp struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	Spec PackNowAppSpec `json:"spec"`
	// status is the observed state, written by the operator.
	// +optional
	Status PackNowAppStatus `json:"status,omitempty"`
}

// PackNowAppList is a list of PackNowApps.
// +kubebuilder:object:root=true
type PackNowAppList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PackNowApp `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PackNowApp{}, &PackNowAppList{})
}
