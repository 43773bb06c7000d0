package main

import (
	"strings"
	"testing"
	"time"
)

func TestSummarizeAuditCountsEachRequestOnceAndSplitsTheSteadyState(t *testing.T) {
	steadyStart := time.Date(2026, 12, 3, 19, 0, 0, 0, time.UTC)
	steadyEnd := steadyStart.Add(5 * time.Minute)
	log := strings.Join([]string{
		// A watch has a line when it starts and one when it ends: one request.
		`{"auditID":"w","stage":"ResponseStarted","verb":"watch","user":{"username":"op"},"objectRef":{"resource":"secrets"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-03T18:59:00Z"}`,
		`{"auditID":"w","stage":"ResponseComplete","verb":"watch","user":{"username":"op"},"objectRef":{"resource":"secrets"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-03T18:59:00Z"}`,
		`{"auditID":"g","stage":"ResponseComplete","verb":"get","user":{"username":"op"},"objectRef":{"resource":"secrets","namespace":"a","name":"x"},"responseStatus":{"code":404},"requestReceivedTimestamp":"2026-12-03T18:59:01Z"}`,
		`{"auditID":"s","stage":"ResponseComplete","verb":"update","user":{"username":"op"},"objectRef":{"resource":"packnowapps","subresource":"status","namespace":"a","name":"app"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-03T18:59:02Z"}`,
		`{"auditID":"l1","stage":"ResponseComplete","verb":"update","user":{"username":"op"},"objectRef":{"resource":"leases","namespace":"a","name":"lock"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-03T18:59:03Z"}`,
		// Someone else's write does not count.
		`{"auditID":"o","stage":"ResponseComplete","verb":"create","user":{"username":"admin"},"objectRef":{"resource":"packnowapps","namespace":"a","name":"b"},"responseStatus":{"code":201},"requestReceivedTimestamp":"2026-12-03T19:01:00Z"}`,
		`{"auditID":"l2","stage":"ResponseComplete","verb":"update","user":{"username":"op"},"objectRef":{"resource":"leases","namespace":"a","name":"lock"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-03T19:01:00Z"}`,
		`{"auditID":"p","stage":"ResponseComplete","verb":"patch","user":{"username":"op"},"objectRef":{"resource":"deployments","namespace":"a","name":"app-api"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-03T19:02:00Z"}`,
		`{"auditID":"r","stage":"ResponseComplete","verb":"list","user":{"username":"op"},"objectRef":{"resource":"secrets"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-03T19:03:00Z"}`,
		// After the steady state: not counted.
		`{"auditID":"late","stage":"ResponseComplete","verb":"delete","user":{"username":"op"},"objectRef":{"resource":"secrets","namespace":"a","name":"x"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-03T19:06:00Z"}`,
	}, "\n")
	s, err := summarizeAudit(strings.NewReader(log), "op", steadyStart, steadyEnd)
	if err != nil {
		t.Fatal(err)
	}
	if s.burstByVerb["watch"] != 1 || s.burstByVerb["get"] != 1 || s.burstByVerb["update"] != 1 || len(s.burstByVerb) != 3 {
		t.Errorf("burst by verb = %v, want one watch, one get, one update", s.burstByVerb)
	}
	if s.burstFailed["get"] != 1 {
		t.Errorf("failed = %v, want the 404 get", s.burstFailed)
	}
	if s.burstByResource["packnowapps/status"]["update"] != 1 {
		t.Errorf("by resource = %v, want the status subresource apart", s.burstByResource)
	}
	if s.burstLeases != 1 || s.steadyLeases != 1 {
		t.Errorf("leases = %d, %d, want 1, 1", s.burstLeases, s.steadyLeases)
	}
	want := "patch deployments a/app-api at 19:02:00"
	if len(s.steadyWrites) != 1 || s.steadyWrites[0] != want {
		t.Errorf("steady writes = %q, want only %q", s.steadyWrites, want)
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics(`# HELP controller_runtime_reconcile_total Total number of reconciliations per controller
controller_runtime_reconcile_total{controller="packnowapp",result="error"} 2
controller_runtime_reconcile_total{controller="packnowapp",result="success"} 1025
go_memstats_heap_inuse_bytes 1.13e+08
go_gc_heap_goal_bytes 1.2e+08
`)
	if m.reconciles["success"] != 1025 || m.reconciles["error"] != 2 || m.heapInUse != 1.13e8 || m.heapGoal != 1.2e8 {
		t.Errorf("parsed %+v", m)
	}
}
