package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/controllers"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// childKinds are the kinds of an app's children, with the kind name the tracker records them by.
var childKinds = []struct {
	kind string
	obj  client.Object
}{
	{"Secret", &corev1.Secret{}},
	{"ServiceAccount", &corev1.ServiceAccount{}},
	{"Service", &corev1.Service{}},
	{"NetworkPolicy", &networkingv1.NetworkPolicy{}},
	{"PodDisruptionBudget", &policyv1.PodDisruptionBudget{}},
	{"Deployment", &appsv1.Deployment{}},
}

// expectedChildren are the children of a defaulted app called name (two replicas, generated credentials, no
// edge), as "Kind/name".
func expectedChildren(name string) []string {
	return []string{
		"Secret/" + name + "-secret-key", "Secret/" + name + "-postgres", "Secret/" + name + "-redis",
		"ServiceAccount/" + name + "-api", "Service/" + name + "-api", "NetworkPolicy/" + name + "-api",
		"PodDisruptionBudget/" + name + "-api", "Deployment/" + name + "-api",
	}
}

type appKey struct{ namespace, name string }

// tracker watches apps and their children and records when each app is first done.
type tracker struct {
	mu       sync.Mutex
	sent     map[appKey]time.Time
	children map[appKey]map[string]bool
	statusOK map[appKey]bool
	done     map[appKey]time.Time
	changed  chan struct{}
}

// newTracker starts watches, as the admin, of every app and of the children the operator labels as its own.
func newTracker(ctx context.Context, cfg *rest.Config) (*tracker, error) {
	managed := cache.ByObject{Label: k8slabels.SelectorFromSet(k8slabels.Set{controllers.LabelManagedBy: controllers.ManagedByValue})}
	byObject := map[client.Object]cache.ByObject{}
	for _, c := range childKinds {
		byObject[c.obj] = managed
	}
	c, err := cache.New(cfg, cache.Options{Scheme: testenv.Scheme(), ByObject: byObject})
	if err != nil {
		return nil, err
	}
	t := &tracker{
		sent: map[appKey]time.Time{}, children: map[appKey]map[string]bool{}, statusOK: map[appKey]bool{},
		done: map[appKey]time.Time{}, changed: make(chan struct{}, 1),
	}
	appInformer, err := c.GetInformer(ctx, &packnowv1alpha1.PackNowApp{})
	if err != nil {
		return nil, err
	}
	if _, err := appInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.app(obj) },
		UpdateFunc: func(_, obj any) { t.app(obj) },
	}); err != nil {
		return nil, err
	}
	for _, ck := range childKinds {
		inf, err := c.GetInformer(ctx, ck.obj)
		if err != nil {
			return nil, err
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { t.child(ck.kind, obj) },
		}); err != nil {
			return nil, err
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the benchmark's watches did not sync")
	}
	return t, nil
}

// created records that the app's create is about to be sent.
func (t *tracker) created(namespace, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent[appKey{namespace, name}] = time.Now()
}

func (t *tracker) child(kind string, obj any) {
	o, ok := obj.(client.Object)
	if !ok {
		return
	}
	k := appKey{o.GetNamespace(), o.GetLabels()[controllers.LabelInstance]}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.children[k] == nil {
		t.children[k] = map[string]bool{}
	}
	t.children[k][kind+"/"+o.GetName()] = true
	t.check(k)
}

func (t *tracker) app(obj any) {
	app, ok := obj.(*packnowv1alpha1.PackNowApp)
	if !ok {
		return
	}
	k := appKey{app.Namespace, app.Name}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.statusOK[k] = statusWritten(app)
	t.check(k)
}

// statusWritten reports whether the app's status describes its current generation with its Secrets in place
// and nothing degraded.
func statusWritten(app *packnowv1alpha1.PackNowApp) bool {
	if app.Status.ObservedGeneration != app.Generation || len(app.Status.Conditions) == 0 {
		return false
	}
	for _, c := range app.Status.Conditions {
		if c.ObservedGeneration != app.Generation {
			return false
		}
	}
	return meta.IsStatusConditionTrue(app.Status.Conditions, packnowv1alpha1.ConditionSecretsReady) &&
		meta.IsStatusConditionPresentAndEqual(app.Status.Conditions, packnowv1alpha1.ConditionDegraded, metav1.ConditionFalse)
}

// check marks the app done the first time its status and every child are in; t.mu is held.
func (t *tracker) check(k appKey) {
	if _, done := t.done[k]; done || !t.statusOK[k] {
		return
	}
	for _, c := range expectedChildren(k.name) {
		if !t.children[k][c] {
			return
		}
	}
	t.done[k] = time.Now()
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// wait returns true once n apps are done, false if ctx ends first.
func (t *tracker) wait(ctx context.Context, n int) bool {
	for {
		if t.doneCount() >= n {
			return true
		}
		select {
		case <-t.changed:
		case <-ctx.Done():
			return false
		}
	}
}

func (t *tracker) doneCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.done)
}

// latencies are, for each app done, the time from sending its create to done.
func (t *tracker) latencies() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	ds := make([]time.Duration, 0, len(t.done))
	for k, at := range t.done {
		ds = append(ds, at.Sub(t.sent[k]))
	}
	return ds
}
