//go:build demo

// The demo, run as a test: `make test-demo` (go test -tags demo ./hack/demo/). It starts the whole demo with
// hack/demo.sh up, tour included, checks what the demo claims against the cluster and the running API, and
// stops it with hack/demo.sh down. It needs the binaries `make kwok kubectl envtest` build, PostgreSQL and
// redis-server, and the demo's local ports; only one demo runs at a time on a machine.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/packnow/packnow-operator/hack/testenv"
)

const (
	demoNamespace = "demo"
	apiURL        = "http://127.0.0.1:18000"
	apiHost       = "demo-api.demo.svc"
)

type demo struct {
	t          *testing.T
	root       string
	kubectlBin string
}

func TestDemo(t *testing.T) {
	for _, port := range []string{"WEBHOOK_PORT", "PROBE_PORT", "PG_PORT", "REDIS_PORT", "API_PORT"} {
		if os.Getenv(port) != "" {
			t.Skipf("%s is set: this test talks to the demo's default ports", port)
		}
	}
	root := testenv.RepoRoot()
	d := &demo{t: t, root: root, kubectlBin: filepath.Join(root, "bin", "k8s",
		fmt.Sprintf("%s-%s-%s", testenv.KubernetesVersion, runtime.GOOS, runtime.GOARCH), "kubectl")}
	t.Setenv("KUBECONFIG", filepath.Join(root, "bin", "demo", "kubeconfig"))
	t.Cleanup(func() {
		if out, err := d.script("down"); err != nil {
			t.Errorf("hack/demo.sh down: %v\n%s", err, out)
		}
	})

	start := time.Now()
	out, err := d.script("up")
	t.Logf("hack/demo.sh up took %s", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("hack/demo.sh up: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Log(out)
	}

	t.Run("the PackNowApp is Ready with 2 pods Ready under KWOK", func(t *testing.T) {
		if got := d.get(t, "pna", "demo", `{.status.conditions[?(@.type=="Ready")].status}`); got != "True" {
			t.Errorf("Ready=%q", got)
		}
		ready := d.kubectl(t, "get", "pods", "-n", demoNamespace, "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`,
			"-l", labelSelector(t, d))
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(ready), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[2] == "True" && f[1] != "" {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%d pods Ready on a node, want 2:\n%s", n, ready)
		}
	})

	t.Run("a pod running as root is denied by the webhook", func(t *testing.T) {
		out, err := d.run("kubectl", d.kubectlBin, "run", "root-pod-test", "-n", demoNamespace, "--image=busybox",
			"--restart=Never", "--dry-run=server", `--overrides={"spec":{"securityContext":{"runAsUser":0}}}`)
		if err == nil {
			t.Fatalf("the root pod was admitted:\n%s", out)
		}
		for _, want := range []string{"denied the request", "violates PackNow pod security", "runAsUser=0"} {
			if !strings.Contains(out, want) {
				t.Errorf("denial %q lacks %q", out, want)
			}
		}
	})

	t.Run("a login succeeds against the running API", func(t *testing.T) {
		phone := fmt.Sprintf("+1415555%04d", time.Now().UnixNano()%10000)
		const password = "Pack!Now-2026test"
		if code, body := call(t, "POST", "/api/v1/auth/register", "", map[string]string{"phone": phone, "password": password, "role": "user"}); code != http.StatusCreated {
			t.Fatalf("register: HTTP %d %s", code, body)
		}
		code, body := call(t, "POST", "/api/v1/auth/login", "", map[string]string{"phone": phone, "password": password})
		var pair struct {
			Access string `json:"access_token"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &pair) != nil || pair.Access == "" {
			t.Fatalf("login: HTTP %d %s", code, body)
		}
		if code, body := call(t, "GET", "/api/v1/users/me", pair.Access, nil); code != http.StatusOK || !bytes.Contains(body, []byte(phone)) {
			t.Errorf("users/me: HTTP %d %s", code, body)
		}
	})

	t.Run("the tour's manual rotation completes stage, promote and retire", func(t *testing.T) {
		// The tour checks every status itself and fails the script otherwise; here the order is checked too.
		i := strings.Index(out, "Rotating SECRET_KEY by hand")
		if i < 0 {
			t.Fatal("the tour did not rotate")
		}
		rotation := out[i:]
		var phases, statuses []string
		for _, m := range regexp.MustCompile(`phase (\w+), currentKeyID`).FindAllStringSubmatch(rotation, -1) {
			phases = append(phases, m[1])
		}
		for _, m := range regexp.MustCompile(`HTTP (\d+)`).FindAllStringSubmatch(rotation, -1) {
			statuses = append(statuses, m[1])
		}
		// Stage: the pre-rotation token 200; promote: it 200 and its refresh 200; retire: it 401, the
		// refreshed token 200, a fresh login 200.
		if got, want := strings.Join(phases, " "), "Stable Staged Promoted Stable"; got != want {
			t.Errorf("phases %q, want %q", got, want)
		}
		if got, want := strings.Join(statuses, " "), "200 200 200 401 200 200"; got != want {
			t.Errorf("HTTP statuses %q, want %q (pre-rotation token accepted until retire, rejected after)", got, want)
		}
		if got := d.get(t, "pna", "demo", "{.status.secretKey.phase}"); got != "Stable" {
			t.Errorf("phase %q after the tour", got)
		}
		var data map[string]string
		if err := json.Unmarshal([]byte(d.get(t, "secret", "demo-secret-key", `{.data}`)), &data); err != nil {
			t.Fatal(err)
		}
		if _, ok := data["SECRET_KEY_PREVIOUS"]; ok || data["SECRET_KEY_NEXT"] != "" || data["SECRET_KEY"] == "" {
			t.Errorf("the Secret holds %d values, want SECRET_KEY alone", len(data))
		}
		events := d.kubectl(t, "get", "events", "-n", demoNamespace, "-o", `jsonpath={range .items[*]}{.reason}{"\n"}{end}`)
		for _, reason := range []string{"KeyStaged", "KeyPromoted", "KeyRetiredEarly"} {
			if !strings.Contains(events, reason) {
				t.Errorf("no %s event", reason)
			}
		}
	})
}

// labelSelector is the API Deployment's pod selector as a kubectl -l argument.
func labelSelector(t *testing.T, d *demo) string {
	t.Helper()
	var labels map[string]string
	raw := d.get(t, "deploy", "demo-api", `{.spec.selector.matchLabels}`)
	if err := json.Unmarshal([]byte(raw), &labels); err != nil {
		t.Fatalf("selector %q: %v", raw, err)
	}
	var parts []string
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// script runs hack/demo.sh with its output captured.
func (d *demo) script(arg string) (string, error) {
	return d.run("hack/demo.sh", filepath.Join(d.root, "hack", "demo.sh"), arg)
}

func (d *demo) run(what, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = d.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s: %w", what, err)
	}
	return string(out), err
}

func (d *demo) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.run("kubectl", d.kubectlBin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// get reads one object of the demo namespace through a jsonpath.
func (d *demo) get(t *testing.T, kind, name, jsonpath string) string {
	t.Helper()
	return d.kubectl(t, "get", kind, name, "-n", demoNamespace, "-o", "jsonpath="+jsonpath)
}

// call sends a request to the demo's API with its Host, a bearer token when given and body as JSON.
func call(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, apiURL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = apiHost
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}
