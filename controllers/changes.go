package controllers

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// maxEventNote is the longest note the API server accepts in an events.k8s.io Event.
const maxEventNote = 1024

// childChange is one child a reconcile applied, as its event tells it.
type childChange struct {
	reason, note, kind, name string
	// related is the child, or nil for kinds without a typed object.
	related runtime.Object
}

// changeLog collects the children one reconcile applied, so that the creation of an app is told in one event
// instead of one per child. A mass creation would otherwise spend two of every five of the operator's API
// requests on events, and the event recorder keeps every event it sent in memory for six minutes.
type changeLog struct {
	changes []childChange
}

type changeLogKey struct{}

// withChangeLog is a reconcile's context, with the log its applied children are collected in.
func withChangeLog(ctx context.Context) (context.Context, *changeLog) {
	l := &changeLog{}
	return context.WithValue(ctx, changeLogKey{}, l), l
}

// tellChange collects a child that was applied in the reconcile of ctx, or tells it at once outside one.
func (r *PackNowAppReconciler) tellChange(ctx context.Context, app *packnowv1alpha1.PackNowApp, c childChange) {
	if l, ok := ctx.Value(changeLogKey{}).(*changeLog); ok {
		l.changes = append(l.changes, c)
		return
	}
	r.tellOne(app, c)
}

// tellApplied tells the change an apply made to a child, unless the answer shows it made none; changed is
// false then. found is whether the cache showed the child before the apply.
func (r *PackNowAppReconciler) tellApplied(ctx context.Context, app *packnowv1alpha1.PackNowApp, found bool,
	prior priorVersion, c childChange,
) (changed bool) {
	if prior == heldDesired {
		return false
	}
	c.reason, c.note = changeEvent(app, found || prior == heldOther)
	r.tellChange(ctx, app, c)
	return true
}

// tellChanges tells the children the reconcile applied. The first reconcile of an app creates all of them, and
// tells so in one event. Every later change has an event of its own, about its child: events.k8s.io folds
// events that differ only in their note into one series, so two lists of children told at different times
// about the same app would show as the first one.
func (r *PackNowAppReconciler) tellChanges(app *packnowv1alpha1.PackNowApp, l *changeLog) {
	var created []childChange
	for _, c := range l.changes {
		if app.Status.ObservedGeneration == 0 && c.reason == reasonCreated {
			created = append(created, c)
			continue
		}
		r.tellOne(app, c)
	}
	switch len(created) {
	case 0:
	case 1:
		r.tellOne(app, created[0])
	default:
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, reasonCreated, "Apply", "%s", createdNote(created))
	}
}

func (r *PackNowAppReconciler) tellOne(app *packnowv1alpha1.PackNowApp, c childChange) {
	r.Recorder.Eventf(app, c.related, corev1.EventTypeNormal, c.reason, "Apply", "%s %s %s", c.note, c.kind, c.name)
}

// createdNote lists the children created, in the order they were created, within the length an event note
// may have.
func createdNote(created []childChange) string {
	children := make([]string, len(created))
	for i, c := range created {
		children[i] = c.kind + " " + c.name
	}
	note := "created " + strings.Join(children, ", ")
	if len(note) > maxEventNote {
		const more = " …"
		note = strings.ToValidUTF8(note[:maxEventNote-len(more)], "") + more
	}
	return note
}
