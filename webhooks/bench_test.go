package webhooks

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// BenchmarkPodReview measures one pod review through the handler as the webhook server runs it: decoding, the
// namespace and PackNowApp lookups in a synced cache of the real API server, evaluation and the response.
func BenchmarkPodReview(b *testing.B) {
	s := apiServer(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	c, err := cache.New(s.Config, cache.Options{Scheme: testenv.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	ns := namespace(b, ModeEnforce)
	eventually(b, time.Minute, func() error {
		if err := c.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}); err != nil {
			return err
		}
		return c.List(ctx, &packnowv1alpha1.PackNowAppList{}, client.InNamespace(ns))
	})
	eval, err := NewPodEvaluator()
	if err != nil {
		b.Fatal(err)
	}
	hook := &webhook.Admission{Handler: &PodHandler{Evaluator: eval, Reader: c}}

	for _, bc := range []struct {
		name    string
		sc      *corev1.SecurityContext
		allowed bool
	}{{"compliant", nonRootSC(), true}, {"root", nil, false}} {
		b.Run(bc.name, func(b *testing.B) {
			pod := compliantPod("web", ns)
			pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
			pod.Spec.Containers[0].SecurityContext = bc.sc
			raw, err := json.Marshal(pod)
			if err != nil {
				b.Fatal(err)
			}
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID:       "bench",
				Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
				Namespace: ns,
				Name:      "web",
				Operation: admissionv1.Create,
				Object:    runtime.RawExtension{Raw: raw},
			}}
			b.ReportAllocs()
			for b.Loop() {
				if resp := hook.Handle(ctx, req); resp.Allowed != bc.allowed {
					b.Fatalf("allowed %v: %v", resp.Allowed, resp.Result)
				}
			}
		})
	}
}
