package api_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCreateOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.newActor("user")
	var o order
	e.do("POST", "/api/v1/orders", owner.AccessToken, validOrder()).want(http.StatusCreated).decode(&o)
	if o.Status != "open" || o.OwnerID != owner.ID || o.PackerID != nil || len(o.Items) != 2 || o.Items[0].Name != "books" {
		t.Fatalf("created order %+v", o)
	}

	packer := e.newActor("packer")
	e.do("POST", "/api/v1/orders", packer.AccessToken, validOrder()).wantError(http.StatusForbidden, "forbidden")
	e.do("POST", "/api/v1/orders", "", validOrder()).wantError(http.StatusUnauthorized, "unauthorized")
}

func TestCreateOrderRejectsBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.newActor("user")
	with := func(k string, v any) map[string]any {
		m := validOrder()
		m[k] = v
		return m
	}
	manyItems := make([]item, 51)
	for i := range manyItems {
		manyItems[i] = item{Name: "box", Quantity: 1}
	}
	tests := []struct {
		name  string
		body  any
		code  int
		field string
	}{
		{"no address", with("pickup_address", "  "), 422, "pickup_address"},
		{"address too long", with("pickup_address", strings.Repeat("a", 501)), 422, "pickup_address"},
		{"no items", with("items", []item{}), 422, "items"},
		{"too many items", with("items", manyItems), 422, "items"},
		{"item without name", with("items", []item{{Name: "", Quantity: 1}}), 422, "items[0].name"},
		{"zero quantity", with("items", []item{{Name: "a", Quantity: 1}, {Name: "b", Quantity: 0}}), 422, "items[1].quantity"},
		{"huge quantity", with("items", []item{{Name: "a", Quantity: 1001}}), 422, "items[0].quantity"},
		{"fractional quantity", with("items", []map[string]any{{"name": "a", "quantity": 1.5}}), 400, "items.quantity"},
		{"no time", with("preferred_time", ""), 422, "preferred_time"},
		{"bad time", with("preferred_time", "tomorrow at noon"), 422, "preferred_time"},
		{"past time", with("preferred_time", time.Now().Add(-time.Hour).Format(time.RFC3339)), 422, "preferred_time"},
		{"status set by client", with("status", "completed"), 400, "status"},
		{"owner set by client", with("owner_id", "00000000-0000-0000-0000-000000000000"), 400, "owner_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			r := e.do("POST", "/api/v1/orders", owner.AccessToken, tt.body).want(tt.code)
			if got := r.apiError().Error.Fields[tt.field]; got == "" {
				t.Fatalf("error does not name %q: %s", tt.field, r.Body)
			}
		})
	}
}

type page struct {
	Orders     []order `json:"orders"`
	NextCursor string  `json:"next_cursor"`
}

func TestListOrdersShowsEachRoleItsOwnView(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.newActor("user"), e.newActor("user")
	packer, otherPacker := e.newActor("packer"), e.newActor("packer")
	aliceOpen := e.createOrder(alice)
	bobOpen := e.createOrder(bob)
	aliceTaken := e.acceptedOrder(alice, packer)

	ids := func(tk, query string) map[string]bool {
		t.Helper()
		var p page
		e.do("GET", "/api/v1/orders"+query, tk, nil).want(http.StatusOK).decode(&p)
		got := map[string]bool{}
		for _, o := range p.Orders {
			got[o.ID] = true
		}
		return got
	}
	same := func(got map[string]bool, want ...order) bool {
		if len(got) != len(want) {
			return false
		}
		for _, o := range want {
			if !got[o.ID] {
				return false
			}
		}
		return true
	}
	if got := ids(alice.AccessToken, ""); !same(got, aliceOpen, aliceTaken) {
		t.Errorf("alice sees %v", got)
	}
	if got := ids(alice.AccessToken, "?status=accepted"); !same(got, aliceTaken) {
		t.Errorf("alice's accepted orders: %v", got)
	}
	if got := ids(bob.AccessToken, ""); !same(got, bobOpen) {
		t.Errorf("bob sees %v", got)
	}
	if got := ids(otherPacker.AccessToken, "?status=open"); !same(got, aliceOpen, bobOpen) {
		t.Errorf("the marketplace shows %v", got)
	}
	if got := ids(packer.AccessToken, ""); !same(got, aliceTaken) {
		t.Errorf("packer's jobs: %v", got)
	}
	if got := ids(otherPacker.AccessToken, ""); !same(got) {
		t.Errorf("a packer with no jobs sees %v", got)
	}
	e.do("GET", "/api/v1/orders", "", nil).wantError(http.StatusUnauthorized, "unauthorized")
}

func TestListOrdersPaginates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.newActor("user")
	created := map[string]bool{}
	for range 5 {
		created[e.createOrder(owner).ID] = true
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		var p page
		q := "/api/v1/orders?limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		e.do("GET", q, owner.AccessToken, nil).want(http.StatusOK).decode(&p)
		pages++
		if len(p.Orders) > 2 {
			t.Fatalf("page of %d orders with limit=2", len(p.Orders))
		}
		for _, o := range p.Orders {
			if seen[o.ID] {
				t.Fatalf("order %s on two pages", o.ID)
			}
			seen[o.ID] = true
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if pages != 3 || len(seen) != len(created) {
		t.Fatalf("%d pages, %d orders; want 3 pages, %d orders", pages, len(seen), len(created))
	}

	for _, q := range []string{"limit=0", "limit=101", "limit=ten", "cursor=bogus", "cursor=e30", "status=lost"} {
		e.do("GET", "/api/v1/orders?"+q, owner.AccessToken, nil).
			wantError(http.StatusUnprocessableEntity, "validation_failed", strings.SplitN(q, "=", 2)[0])
	}
}

func TestOrderLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner, packer := e.newActor("user"), e.newActor("packer")
	o := e.createOrder(owner)
	var got order
	e.do("POST", "/api/v1/orders/"+o.ID+"/accept", packer.AccessToken, nil).want(http.StatusOK).decode(&got)
	if got.Status != "accepted" || got.PackerID == nil || *got.PackerID != packer.ID {
		t.Fatalf("accepted order %+v", got)
	}
	e.do("POST", "/api/v1/orders/"+o.ID+"/accept", packer.AccessToken, nil).wantError(http.StatusConflict, "invalid_state")
	e.do("POST", "/api/v1/orders/"+o.ID+"/cancel", owner.AccessToken, nil).wantError(http.StatusConflict, "invalid_state")
	e.do("POST", "/api/v1/orders/"+o.ID+"/complete", packer.AccessToken, nil).want(http.StatusOK).decode(&got)
	if got.Status != "completed" {
		t.Fatalf("completed order %+v", got)
	}
	e.do("POST", "/api/v1/orders/"+o.ID+"/complete", packer.AccessToken, nil).wantError(http.StatusConflict, "invalid_state")

	c := e.createOrder(owner)
	e.do("POST", "/api/v1/orders/"+c.ID+"/cancel", owner.AccessToken, nil).want(http.StatusOK).decode(&got)
	if got.Status != "cancelled" {
		t.Fatalf("cancelled order %+v", got)
	}
	// A cancelled order leaves the marketplace.
	e.do("GET", "/api/v1/orders/"+c.ID, packer.AccessToken, nil).wantError(http.StatusNotFound, "not_found")
	e.do("POST", "/api/v1/orders/"+c.ID+"/accept", packer.AccessToken, nil).wantError(http.StatusNotFound, "not_found")
}

func TestUnknownOrdersAreNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.newActor("user")
	for _, id := range []string{"00000000-0000-0000-0000-000000000000", "not-a-uuid", "1%27%20OR%20%271%27=%271"} {
		e.do("GET", "/api/v1/orders/"+id, owner.AccessToken, nil).wantError(http.StatusNotFound, "not_found")
		e.do("POST", "/api/v1/orders/"+id+"/cancel", owner.AccessToken, nil).wantError(http.StatusNotFound, "not_found")
	}
}

// TestOrderAuthorization checks every order endpoint for every kind of caller. Callers who may
// not know an order exists get 404, never 403.
func TestOrderAuthorization(t *testing.T) {
	t.Parallel()
	const (
		owner          = "owner"
		otherUser      = "other user"
		assignedPacker = "assigned packer"
		otherPacker    = "other packer"
		anonymous      = "anonymous"
	)
	tests := []struct {
		method, action string // action "" is GET /orders/{id}
		accepted       bool   // whether the order has been accepted by the assigned packer first
		want           map[string]int
	}{
		{"GET", "", false, map[string]int{owner: 200, otherUser: 404, otherPacker: 200, anonymous: 401}},
		{"GET", "", true, map[string]int{owner: 200, otherUser: 404, assignedPacker: 200, otherPacker: 404, anonymous: 401}},
		{"POST", "accept", false, map[string]int{owner: 403, otherUser: 404, otherPacker: 200, anonymous: 401}},
		{"POST", "accept", true, map[string]int{owner: 403, otherUser: 404, assignedPacker: 409, otherPacker: 404, anonymous: 401}},
		{"POST", "complete", false, map[string]int{owner: 403, otherUser: 404, otherPacker: 403, anonymous: 401}},
		{"POST", "complete", true, map[string]int{owner: 403, otherUser: 404, assignedPacker: 200, otherPacker: 404, anonymous: 401}},
		{"POST", "cancel", false, map[string]int{owner: 200, otherUser: 404, otherPacker: 403, anonymous: 401}},
		{"POST", "cancel", true, map[string]int{owner: 409, otherUser: 404, assignedPacker: 403, otherPacker: 404, anonymous: 401}},
	}
	e := newEnv(t)
	actors := map[string]actor{
		owner: e.newActor("user"), otherUser: e.newActor("user"),
		assignedPacker: e.newActor("packer"), otherPacker: e.newActor("packer"),
		anonymous: {},
	}
	for _, tt := range tests {
		state := "open"
		if tt.accepted {
			state = "accepted"
		}
		for caller, want := range tt.want {
			t.Run(tt.method+" "+tt.action+" "+state+" order as "+caller, func(t *testing.T) {
				e.t = t
				o := e.createOrder(actors[owner])
				if tt.accepted {
					o = e.acceptedOrder(actors[owner], actors[assignedPacker])
				}
				path := "/api/v1/orders/" + o.ID
				if tt.action != "" {
					path += "/" + tt.action
				}
				r := e.do(tt.method, path, actors[caller].AccessToken, nil).want(want)
				if want == 404 && strings.Contains(string(r.Body), o.ID) {
					t.Fatal("a 404 response mentions the order")
				}
			})
		}
	}
	// Listings never show another user's orders, whatever the filter.
	var p page
	e.do("GET", "/api/v1/orders?status=open", actors[otherUser].AccessToken, nil).want(http.StatusOK).decode(&p)
	if len(p.Orders) != 0 {
		t.Fatalf("another user lists %d orders that are not theirs", len(p.Orders))
	}
}

func TestExactlyOnePackerWinsARace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.newActor("user")
	const racers = 20
	packers := make([]actor, racers)
	for i := range packers {
		packers[i] = e.newActor("packer")
	}
	o := e.createOrder(owner)

	codes := make([]int, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, p := range packers {
		wg.Go(func() {
			<-start
			codes[i] = e.do("POST", "/api/v1/orders/"+o.ID+"/accept", p.AccessToken, nil).Code
		})
	}
	close(start)
	wg.Wait()

	winner := ""
	for i, code := range codes {
		switch code {
		case http.StatusOK:
			if winner != "" {
				t.Fatalf("two packers won: %s and %s", winner, packers[i].ID)
			}
			winner = packers[i].ID
		case http.StatusNotFound:
		default:
			t.Fatalf("packer %d got status %d", i, code)
		}
	}
	if winner == "" {
		t.Fatal("no packer won")
	}
	var got order
	e.do("GET", "/api/v1/orders/"+o.ID, owner.AccessToken, nil).want(http.StatusOK).decode(&got)
	if got.PackerID == nil || *got.PackerID != winner {
		t.Fatalf("order assigned to %v, but %s won", got.PackerID, winner)
	}
}
