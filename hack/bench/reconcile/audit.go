package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// auditEvent is the part of an audit.k8s.io/v1 Event the benchmark reads.
type auditEvent struct {
	AuditID string `json:"auditID"`
	Stage   string `json:"stage"`
	Verb    string `json:"verb"`
	User    struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
}

// resource is the event's resource with its subresource, e.g. packnowapps/status; non-resource requests (a
// discovery path) have none.
func (e auditEvent) resource() string {
	if e.ObjectRef == nil {
		return "(non-resource)"
	}
	if e.ObjectRef.Subresource != "" {
		return e.ObjectRef.Resource + "/" + e.ObjectRef.Subresource
	}
	return e.ObjectRef.Resource
}

// object is the event's namespace/name, as far as the request named them.
func (e auditEvent) object() string {
	if e.ObjectRef == nil {
		return ""
	}
	return e.ObjectRef.Namespace + "/" + e.ObjectRef.Name
}

func (e auditEvent) isLease() bool { return e.ObjectRef != nil && e.ObjectRef.Resource == "leases" }

func isWrite(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// auditSummary counts one user's requests before the steady state (the burst) and lists its writes during it.
type auditSummary struct {
	burstByVerb     map[string]int
	burstFailed     map[string]int
	burstByResource map[string]map[string]int
	burstLeases     int
	steadyWrites    []string
	steadyLeases    int
}

// readAudit reads the API server's audit log and sums up user's requests, each once (a watch has a line when it
// starts and another when it ends); requests received in [steadyStart, steadyEnd) are the steady state's.
func readAudit(path, user string, steadyStart, steadyEnd time.Time) (auditSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return auditSummary{}, err
	}
	defer f.Close()
	return summarizeAudit(f, user, steadyStart, steadyEnd)
}

func summarizeAudit(r io.Reader, user string, steadyStart, steadyEnd time.Time) (auditSummary, error) {
	s := auditSummary{burstByVerb: map[string]int{}, burstFailed: map[string]int{}, burstByResource: map[string]map[string]int{}}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return s, fmt.Errorf("audit log: %w", err)
		}
		if e.User.Username != user || seen[e.AuditID] {
			continue
		}
		seen[e.AuditID] = true
		switch {
		case e.RequestReceivedTimestamp.Before(steadyStart):
			if e.isLease() {
				s.burstLeases++
				continue
			}
			s.burstByVerb[e.Verb]++
			if e.ResponseStatus != nil && e.ResponseStatus.Code >= 400 {
				s.burstFailed[e.Verb]++
			}
			res := e.resource()
			if s.burstByResource[res] == nil {
				s.burstByResource[res] = map[string]int{}
			}
			s.burstByResource[res][e.Verb]++
		case e.RequestReceivedTimestamp.Before(steadyEnd):
			if e.isLease() {
				s.steadyLeases++
				continue
			}
			if isWrite(e.Verb) {
				s.steadyWrites = append(s.steadyWrites, fmt.Sprintf("%s %s %s at %s", e.Verb, e.resource(), e.object(),
					e.RequestReceivedTimestamp.UTC().Format(time.TimeOnly)))
			}
		}
	}
	return s, sc.Err()
}

// topResources is how many resources the burst table lists.
const topResources = 10

func (s auditSummary) printBurst(w interface {
	io.Writer
	Flush() error
}) {
	total := 0
	for _, n := range s.burstByVerb {
		total += n
	}
	fmt.Fprintf(w, "\n## API requests by the operator, start to the steady state (audit log)\n")
	fmt.Fprintf(w, "verb\trequests\t4xx/5xx\n")
	verbs := sortedKeys(s.burstByVerb)
	for _, v := range verbs {
		fmt.Fprintf(w, "%s\t%d\t%d\n", v, s.burstByVerb[v], s.burstFailed[v])
	}
	fmt.Fprintf(w, "all but leases\t%d\t\n", total)
	fmt.Fprintf(w, "leases (shown apart)\t%d\t\n", s.burstLeases)
	w.Flush()

	type row struct {
		resource string
		n        int
	}
	var rows []row
	for res, byVerb := range s.burstByResource {
		n := 0
		for _, c := range byVerb {
			n += c
		}
		rows = append(rows, row{res, n})
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(b.n-a.n, strings.Compare(a.resource, b.resource)) })
	fmt.Fprintf(w, "\nresource (top %d)\trequests\tby verb\n", topResources)
	for _, r := range rows[:min(len(rows), topResources)] {
		var parts []string
		for _, v := range sortedKeys(s.burstByResource[r.resource]) {
			parts = append(parts, fmt.Sprintf("%s %d", v, s.burstByResource[r.resource][v]))
		}
		fmt.Fprintf(w, "%s\t%d\t%s\n", r.resource, r.n, strings.Join(parts, ", "))
	}
	w.Flush()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
