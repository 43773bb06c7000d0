package ratelog_test

import (
	"testing"
	"time"

	"github.com/packnow/packnow-operator/app/internal/ratelog"
)

func TestEveryLetsOneReportThroughPerInterval(t *testing.T) {
	e := ratelog.New(time.Hour)
	if ok, n := e.Allow(); !ok || n != 0 {
		t.Fatalf("first report held back: %v %d", ok, n)
	}
	for range 5 {
		if ok, _ := e.Allow(); ok {
			t.Fatal("a second report within the interval got through")
		}
	}

	e = ratelog.New(time.Nanosecond)
	e.Allow()
	time.Sleep(time.Millisecond)
	if ok, n := e.Allow(); !ok || n != 0 {
		t.Fatalf("report after the interval: %v %d", ok, n)
	}
}

func TestEveryCountsWhatItHeldBack(t *testing.T) {
	e := ratelog.New(50 * time.Millisecond)
	e.Allow()
	for range 3 {
		e.Allow()
	}
	time.Sleep(60 * time.Millisecond)
	if ok, n := e.Allow(); !ok || n != 3 {
		t.Fatalf("after the interval: %v, %d held back; want true, 3", ok, n)
	}
}
