package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// The reconcile that creates the Deployment does not see it yet (the cache lags the write); the next one does,
// with no Deployment controller progress. Both must describe it the same way, or every new app costs a second
// status write.
func TestStatusOfAJustCreatedDeploymentNeedsNoSecondWrite(t *testing.T) {
	app := testApp()
	app.Generation = 1
	creating := desiredStatus(app, observation{deploymentApplied: true})
	app.Status = creating
	created := deployment(2, 0, 0, 0, 0)
	created.Generation = 1
	seen := desiredStatus(app, observation{deployment: created})
	if !equality.Semantic.DeepEqual(creating, seen) {
		t.Errorf("status changed once the cache showed the new Deployment:\n%+v\n%+v", creating.Conditions, seen.Conditions)
	}
	if c := meta.FindStatusCondition(creating.Conditions, packnowv1alpha1.ConditionProgressing); c == nil || c.Reason != ReasonRollingOut {
		t.Errorf("Progressing = %+v, want %s", c, ReasonRollingOut)
	}
}
