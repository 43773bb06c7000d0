package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// DefaultMaxConcurrentReconciles lets many PackNowApps converge at once; each app is still reconciled by one
// worker at a time. A reconcile mostly waits on a dozen sequential API requests, so workers beyond the cores
// still add throughput.
const DefaultMaxConcurrentReconciles = 4

// MaxRetryDelay caps the wait before an app whose reconcile keeps failing is tried again. controller-runtime's
// default doubles it from 5 ms up to 1000 s, so that after a long API server outage an app could wait a quarter
// of an hour for its next attempt.
const MaxRetryDelay = time.Minute

// retryRateLimiter is controller-runtime's default per-app backoff (what its default priority queue uses),
// capped at MaxRetryDelay.
func retryRateLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, MaxRetryDelay)
}

// PackNowAppReconciler turns a PackNowApp into a running, locked-down PackNow API.
type PackNowAppReconciler struct {
	// DefaultImage is the API image of apps whose spec names none.
	DefaultImage string
	// MaxConcurrentReconciles is how many apps are reconciled at once; 0 means DefaultMaxConcurrentReconciles.
	MaxConcurrentReconciles int

	// The fields below default to the manager's in SetupWithManager.

	// Client reads through the manager's cache, which holds only objects labelled managed-by=packnow-operator.
	Client client.Client
	// APIReader reads around the cache: a user's existingSecret, and a generated Secret the cache does not
	// show before a new password is generated for it.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock

	// edge tracks the edge provider kinds the cluster serves; set up by SetupWithManager.
	edge *edgeWatches
	// applied holds the sum of the operator's fields per child version; set up by CacheOptions or
	// SetupWithManager.
	applied *appliedSums
}

// CacheOptions are the options of the manager's cache that the reconciler needs. They narrow it to the objects
// the operator generated, so that its memory does not grow with the cluster's unrelated Secrets, Deployments
// and Services, and keep the sum of the operator's fields of each child version in place of its managedFields.
// A reconciler set up on a cache without them reads those fields from the cached managedFields instead.
func (r *PackNowAppReconciler) CacheOptions() cache.Options {
	if r.applied == nil {
		r.applied = newAppliedSums()
	}
	managed := k8slabels.SelectorFromSet(k8slabels.Set{LabelManagedBy: ManagedByValue})
	child := func(transform toolscache.TransformFunc) cache.ByObject {
		return cache.ByObject{Label: managed, Transform: transform}
	}
	a := r.applied
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		// The operator writes only the status of PackNowApps, with an update, which leaves managedFields it
		// does not send as they are.
		&packnowv1alpha1.PackNowApp{}:   {Transform: cache.TransformStripManagedFields()},
		&corev1.Secret{}:                child(sumAndStripManagedFields(a, corev1ac.ExtractSecret)),
		&corev1.Service{}:               child(sumAndStripManagedFields(a, corev1ac.ExtractService)),
		&corev1.ServiceAccount{}:        child(sumAndStripManagedFields(a, corev1ac.ExtractServiceAccount)),
		&appsv1.Deployment{}:            child(sumAndStripManagedFields(a, appsv1ac.ExtractDeployment)),
		&policyv1.PodDisruptionBudget{}: child(sumAndStripManagedFields(a, policyv1ac.ExtractPodDisruptionBudget)),
		&networkingv1.NetworkPolicy{}:   child(sumAndStripManagedFields(a, networkingv1ac.ExtractNetworkPolicy)),
		&networkingv1.Ingress{}:         child(sumAndStripManagedFields(a, networkingv1ac.ExtractIngress)),
		&corev1.ConfigMap{}:             child(sumAndStripManagedFields(a, corev1ac.ExtractConfigMap)),
	}}
}

// SetupWithManager registers the reconciler. It watches every child kind, so that editing or deleting a child
// triggers a reconcile that repairs it. Secrets are mapped to their app by the instance label rather than the
// owner reference, which retained credential Secrets do not carry.
func (r *PackNowAppReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(FieldManager)
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.MaxConcurrentReconciles == 0 {
		r.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if r.applied == nil {
		r.applied = newAppliedSums()
	}
	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&packnowv1alpha1.PackNowApp{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(appOfSecret)).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&appsv1.Deployment{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&networkingv1.Ingress{}).
		Owns(&corev1.ConfigMap{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles, RateLimiter: retryRateLimiter()}).
		Build(r)
	if err != nil {
		return err
	}
	return r.setupEdge(mgr, c)
}

// appOfSecret maps a generated Secret (the cache holds no other) to the PackNowApp named by its instance label.
func appOfSecret(_ context.Context, s client.Object) []reconcile.Request {
	name := s.GetLabels()[LabelInstance]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: s.GetNamespace(), Name: name}}}
}

// +kubebuilder:rbac:groups=packnow.io,resources=packnowapps,verbs=get;list;watch
// +kubebuilder:rbac:groups=packnow.io,resources=packnowapps/status,verbs=update
// +kubebuilder:rbac:groups=packnow.io,resources=packnowapps/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets;services;serviceaccounts,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=traefik.io,resources=middlewares,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch

// Reconcile applies every child that differs from its desired state and writes the status if it changed.
// Deletion needs no finalizer: owned children carry an owner reference and go with the app through the garbage
// collector, and retained credential Secrets carry none and stay.
func (r *PackNowAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	app := &packnowv1alpha1.PackNowApp{}
	if err := r.Client.Get(ctx, req.NamespacedName, app); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !app.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	ctx, changes := withChangeLog(ctx)
	obs, err := r.reconcileChildren(ctx, app)
	r.tellChanges(app, changes)
	if apierrors.IsConflict(err) {
		// A conditional write raced another client's: nothing is wrong with the app, so the status stays as it
		// is, and the retry, with the controller's backoff, starts from the newer object.
		return ctrl.Result{}, err
	}
	if err != nil {
		obs.applyError = err.Error()
	}
	if status := desiredStatus(app, obs); !equality.Semantic.DeepEqual(app.Status, status) {
		app.Status = status
		switch statusErr := r.Client.Status().Update(ctx, app); {
		case statusErr == nil, apierrors.IsNotFound(statusErr):
		case apierrors.IsConflict(statusErr):
			// The cache held an older app; the newer one is on its way through the watch and is reconciled next.
			log.FromContext(ctx).V(1).Info("status write conflicted with a newer PackNowApp", "error", statusErr)
		default:
			err = errors.Join(err, fmt.Errorf("write status: %w", statusErr))
		}
	}
	if err == nil && obs.secretsProblem != "" {
		// The user's Secret is not watched (the cache holds only generated objects): look again with backoff.
		err = errors.New(obs.secretsProblem)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	// The key rotation's next step falls due without any event to wake the controller.
	return ctrl.Result{RequeueAfter: obs.keyRotation.requeueAfter}, nil
}

// reconcileChildren applies the Secrets first, since the Deployment's pod template depends on their values.
func (r *PackNowAppReconciler) reconcileChildren(ctx context.Context, app *packnowv1alpha1.PackNowApp) (observation, error) {
	obs := observation{}
	keyState, keyRot, err := r.reconcileSecretKey(ctx, app)
	if err != nil {
		return obs, err
	}
	obs.secretKey, obs.keyRotation = &keyState, keyRot

	pg, redis := postgresCredential(app), redisCredential(app)
	pgURL, pgProblem, err := r.reconcileCredential(ctx, app, pg, app.Status.Secrets.Postgres)
	if err != nil {
		return obs, err
	}
	obs.postgresSecret = pg.secretName()
	redisURL, redisProblem, err := r.reconcileCredential(ctx, app, redis, app.Status.Secrets.Redis)
	if err != nil {
		return obs, err
	}
	obs.redisSecret = redis.secretName()
	obs.secretsProblem = joinProblems(pgProblem, redisProblem)

	if err := applyChild(ctx, r, app, &corev1.ServiceAccount{}, desiredServiceAccount(app), corev1ac.ExtractServiceAccount); err != nil {
		return obs, err
	}
	if err := r.reconcileService(ctx, app); err != nil {
		return obs, err
	}
	if obs.edge, err = r.reconcileEdge(ctx, app); err != nil {
		return obs, err
	}
	netpol := desiredNetworkPolicy(app,
		urlPort(pgURL, app.Spec.Database.Port), urlPort(redisURL, app.Spec.Redis.Port))
	if err := applyChild(ctx, r, app, &networkingv1.NetworkPolicy{}, netpol, networkingv1ac.ExtractNetworkPolicy); err != nil {
		return obs, err
	}
	if err := r.reconcilePodDisruptionBudget(ctx, app); err != nil {
		return obs, err
	}

	image := app.Spec.Image
	if image == "" {
		image = r.DefaultImage
	}
	err = r.reconcileDeployment(ctx, app, &obs, deploymentInputs{
		image:           image,
		databaseSecret:  pg.secretName(),
		redisSecret:     redis.secretName(),
		secretKeyHash:   secretKeyHash(keyState.keys),
		credentialsHash: hashValues(pgURL, redisURL),
	})
	return obs, err
}

// reconcileDeployment records the Deployment in obs and applies it, unless a Secret it needs is missing: pods
// that cannot start would replace pods that run.
func (r *PackNowAppReconciler) reconcileDeployment(ctx context.Context, app *packnowv1alpha1.PackNowApp, obs *observation, in deploymentInputs) error {
	live := &appsv1.Deployment{}
	found, err := get(ctx, r.Client, app, apiName(app), live)
	if err != nil {
		return err
	}
	if found {
		obs.deployment = live
	}
	if obs.secretsProblem != "" {
		return nil
	}
	desired := desiredDeployment(app, in)
	changed, err := applyIfChanged(ctx, r, app, live, found, desired, appsv1ac.ExtractDeployment)
	if err != nil {
		return err
	}
	// A Deployment the cache does not show yet was just written, by this reconcile or an earlier one.
	obs.deploymentApplied = changed || !found
	if obs.deploymentApplied {
		// A Deployment just written is checked for foreign security settings on the reconcile its change triggers.
		return nil
	}
	obs.deploymentApplied, err = r.resetSecurity(ctx, app, live, desired)
	return err
}

// resetSecurity removes security settings that someone else added to the Deployment, which server-side apply
// leaves in place.
func (r *PackNowAppReconciler) resetSecurity(ctx context.Context, app *packnowv1alpha1.PackNowApp,
	live *appsv1.Deployment, desired *appsv1ac.DeploymentApplyConfiguration,
) (changed bool, err error) {
	patch, err := securityPatch(live, desired)
	if err != nil || patch == nil {
		return false, err
	}
	if err := r.Client.Patch(ctx, live, client.RawPatch(types.JSONPatchType, patch), client.FieldOwner(FieldManager)); err != nil {
		r.Recorder.Eventf(app, live, corev1.EventTypeWarning, ReasonApplyFailed, "Patch",
			"could not reset the security settings of Deployment %s: %v", live.Name, err)
		return false, fmt.Errorf("reset the security settings of Deployment %s: %w", live.Name, err)
	}
	r.Recorder.Eventf(app, live, corev1.EventTypeNormal, "Repaired", "Patch",
		"removed security settings that someone else added to Deployment %s", live.Name)
	return true, nil
}

// applyChild applies a child the cache may hold, unless it is already as desired.
func applyChild[O client.Object, AC applyConfiguration](ctx context.Context, r *PackNowAppReconciler,
	app *packnowv1alpha1.PackNowApp, live O, desired AC, extract func(O, string) (AC, error),
) error {
	found, err := get(ctx, r.Client, app, *desired.GetName(), live)
	if err != nil {
		return err
	}
	_, err = applyIfChanged(ctx, r, app, live, found, desired, extract)
	return err
}

// reconcilePodDisruptionBudget applies the budget, or deletes it when the app has dropped to one replica.
func (r *PackNowAppReconciler) reconcilePodDisruptionBudget(ctx context.Context, app *packnowv1alpha1.PackNowApp) error {
	live := &policyv1.PodDisruptionBudget{}
	found, err := get(ctx, r.Client, app, apiName(app), live)
	if err != nil {
		return err
	}
	desired := desiredPodDisruptionBudget(app)
	if desired != nil {
		_, err := applyIfChanged(ctx, r, app, live, found, desired, policyv1ac.ExtractPodDisruptionBudget)
		return err
	}
	if !found {
		return nil
	}
	if err := r.Client.Delete(ctx, live, client.Preconditions{UID: &live.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete PodDisruptionBudget %s: %w", live.Name, err)
	}
	r.Recorder.Eventf(app, live, corev1.EventTypeNormal, "Deleted", "Delete",
		"deleted PodDisruptionBudget %s: a single replica cannot keep one pod available through a drain", live.Name)
	return nil
}

func joinProblems(problems ...string) string {
	return strings.Join(slices.DeleteFunc(problems, func(p string) bool { return p == "" }), "; ")
}
