package webhooks

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// FuzzEvaluate feeds arbitrary pod specs through the evaluation path: it must not panic, and its verdict must
// be the library's verdict on the whole pod.
func FuzzEvaluate(f *testing.F) {
	for _, seed := range []string{
		`{"containers":[{"name":"web"}]}`,
		`{"securityContext":{"runAsNonRoot":true},"containers":[{"name":"web","securityContext":{"runAsNonRoot":false}}]}`,
		`{"securityContext":{"runAsUser":0},"initContainers":[{"name":"i","securityContext":{"runAsUser":0}}],"containers":[{"name":"c","securityContext":{"runAsUser":5,"allowPrivilegeEscalation":false,"runAsNonRoot":true}}]}`,
		`{"hostUsers":false,"os":{"name":"windows"},"ephemeralContainers":[{"name":"dbg","securityContext":{"privileged":true}}]}`,
		`{"containers":[{"name":"web","securityContext":{"runAsNonRoot":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}}}]}`,
		`{}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	e, err := NewPodEvaluator()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, restricted bool) {
		var spec corev1.PodSpec
		if json.Unmarshal(data, &spec) != nil {
			return
		}
		level := LevelNonRoot
		if restricted {
			level = LevelRestricted
		}
		msgs := e.Evaluate(level, &metav1.ObjectMeta{}, &spec)
		assertAgreesWithLibrary(t, level, &spec, msgs)
	})
}

// FuzzDecodePodRequest feeds arbitrary objects of every reviewed kind through admission decoding: it must not
// panic, whatever the API server (or anything impersonating it) sends.
func FuzzDecodePodRequest(f *testing.F) {
	kinds := []metav1.GroupVersionKind{
		{Version: "v1", Kind: "Pod"},
		{Group: "apps", Version: "v1", Kind: "Deployment"},
		{Group: "apps", Version: "v1", Kind: "StatefulSet"},
		{Group: "apps", Version: "v1", Kind: "DaemonSet"},
		{Group: "apps", Version: "v1", Kind: "ReplicaSet"},
		{Group: "batch", Version: "v1", Kind: "Job"},
		{Group: "batch", Version: "v1", Kind: "CronJob"},
		{Group: "example.com", Version: "v1", Kind: "Other"},
	}
	for i, seed := range []string{
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"web"}]}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"spec":{"containers":[{"name":"web"}]}}}}`,
		`{"spec":{"template":{"spec":{"initContainers":[{"name":"i"}]}}}}`,
		`{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c"}]}}}}}}`,
		`{"kind":"Pod","apiVersion":"v2"}`,
		`null`,
		`[]`,
		``,
	} {
		f.Add(uint8(i), []byte(seed), []byte(seed), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, kind uint8, obj, old []byte, update bool) {
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Kind:      kinds[int(kind)%len(kinds)],
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: obj},
		}}
		if update {
			req.Operation = admissionv1.Update
			req.OldObject = runtime.RawExtension{Raw: old}
		}
		got, _, err := decodePodRequest(req)
		if err == nil && got != nil {
			if meta, spec := podTemplate(got); meta == nil || spec == nil {
				t.Fatalf("decoded %T without a pod template", got)
			}
		}
	})
}
