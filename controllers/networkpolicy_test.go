package controllers

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/utils/ptr"
)

func TestNetworkPolicyAllowsOnlyTheAppPortInAndDNSPostgresRedisOut(t *testing.T) {
	np := toObject[networkingv1.NetworkPolicy](t, desiredNetworkPolicy(testApp(), 6432, 6380))
	if got := np.Spec.PolicyTypes; len(got) != 2 {
		t.Errorf("policy types %v, want Ingress and Egress (denying the rest both ways)", got)
	}
	if got := np.Spec.PodSelector.MatchLabels[LabelInstance]; got != "demo" {
		t.Errorf("selects instance %q", got)
	}
	var in, out []string
	for _, r := range np.Spec.Ingress {
		in = append(in, ports(r.Ports)...)
	}
	for _, r := range np.Spec.Egress {
		if len(r.To) != 0 {
			t.Errorf("egress rule %+v limits destinations the operator cannot know", r)
		}
		out = append(out, ports(r.Ports)...)
	}
	if got := strings.Join(in, " "); got != "TCP/8000" {
		t.Errorf("ingress %s, want TCP/8000 only", got)
	}
	if got := strings.Join(out, " "); got != "UDP/53 TCP/53 TCP/6432 TCP/6380" {
		t.Errorf("egress %s, want DNS, then the Postgres and Redis ports", got)
	}
}

func ports(ps []networkingv1.NetworkPolicyPort) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s/%s", ptr.Deref(p.Protocol, corev1.ProtocolTCP), p.Port.String()))
	}
	return out
}

func TestURLPort(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want int32
	}{
		{"postgresql://u:p@db.example:6432/x", 6432},
		{"postgresql://u:p@db.example/x", 5432},
		{"rediss://:p@[fd00::1]:6380/0", 6380},
		{"::not a url", 5432},
		{"postgresql://u:p@db.example:99999/x", 5432},
	} {
		if got := urlPort(tc.url, 5432); got != tc.want {
			t.Errorf("urlPort(%q) = %d, want %d", tc.url, got, tc.want)
		}
	}
}

func TestPodDisruptionBudgetOnlyWithSeveralReplicas(t *testing.T) {
	app := testApp()
	pdb := toObject[policyv1.PodDisruptionBudget](t, desiredPodDisruptionBudget(app))
	if pdb.Name != "demo-api" || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels[LabelInstance] != "demo" {
		t.Errorf("budget %s minAvailable %v selector %v, want demo-api keeping one of the app's pods", pdb.Name, pdb.Spec.MinAvailable, pdb.Spec.Selector)
	}
	app.Spec.Replicas = ptr.To[int32](1)
	if desiredPodDisruptionBudget(app) != nil {
		t.Error("a budget for a single replica would block every node drain")
	}
}
