package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/packnow/packnow-operator/app/internal/audit"
	"github.com/packnow/packnow-operator/app/internal/store"
)

// Limits on what an order may hold.
const (
	maxAddressLength = 500
	maxItems         = 50
	maxItemName      = 100
	maxItemQuantity  = 1000
)

// Page sizes of order listings.
const (
	defaultPageSize = 20
	maxPageSize     = 100
)

type orderResponse struct {
	ID            string       `json:"id"`
	OwnerID       string       `json:"owner_id"`
	PackerID      *string      `json:"packer_id"`
	Status        string       `json:"status"`
	PickupAddress string       `json:"pickup_address"`
	Items         []store.Item `json:"items"`
	PreferredTime time.Time    `json:"preferred_time"`
	CreatedAt     time.Time    `json:"created_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
}

func orderView(o store.Order) orderResponse {
	return orderResponse{
		ID: o.ID, OwnerID: o.OwnerID, PackerID: o.PackerID, Status: string(o.Status),
		PickupAddress: o.PickupAddress, Items: o.Items, PreferredTime: o.PreferredTime,
		CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

type itemRequest struct {
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
}

type createOrderRequest struct {
	PickupAddress string        `json:"pickup_address"`
	Items         []itemRequest `json:"items"`
	// PreferredTime is RFC 3339, e.g. 2026-05-01T14:00:00Z.
	PreferredTime string `json:"preferred_time"`
}

func (req createOrderRequest) validate(now time.Time) (store.NewOrder, error) {
	fields := fieldErrors{}
	address := strings.TrimSpace(req.PickupAddress)
	switch {
	case address == "":
		fields.add("pickup_address", "is required")
	case len([]rune(address)) > maxAddressLength:
		fields.add("pickup_address", fmt.Sprintf("must be at most %d characters", maxAddressLength))
	}
	if len(req.Items) == 0 || len(req.Items) > maxItems {
		fields.add("items", fmt.Sprintf("must list from 1 to %d items", maxItems))
	}
	items := make([]store.Item, 0, len(req.Items))
	for i, it := range req.Items {
		name := strings.TrimSpace(it.Name)
		if name == "" || len([]rune(name)) > maxItemName {
			fields.add(fmt.Sprintf("items[%d].name", i), fmt.Sprintf("must be 1 to %d characters", maxItemName))
		}
		if it.Quantity < 1 || it.Quantity > maxItemQuantity {
			fields.add(fmt.Sprintf("items[%d].quantity", i), fmt.Sprintf("must be from 1 to %d", maxItemQuantity))
		}
		items = append(items, store.Item{Name: name, Quantity: it.Quantity})
	}
	preferred, err := time.Parse(time.RFC3339, req.PreferredTime)
	switch {
	case req.PreferredTime == "":
		fields.add("preferred_time", "is required")
	case err != nil:
		fields.add("preferred_time", "must be a date and time in RFC 3339 form, e.g. 2026-05-01T14:00:00Z")
	case !preferred.After(now):
		fields.add("preferred_time", "must be in the future")
	}
	if err := fields.err(); err != nil {
		return store.NewOrder{}, err
	}
	return store.NewOrder{PickupAddress: address, Items: items, PreferredTime: preferred}, nil
}

func (s *server) createOrder(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if p.Role != store.RoleUser {
		return forbidden("only users can post orders")
	}
	var req createOrderRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	n, err := req.validate(time.Now())
	if err != nil {
		return err
	}
	o, err := s.store.CreateOrder(r.Context(), p.UserID, n)
	if err != nil {
		return err
	}
	s.record(r, audit.OrderCreated, p.UserID, map[string]any{"order_id": o.ID})
	writeJSON(w, http.StatusCreated, orderView(o))
	return nil
}

type orderPage struct {
	Orders     []orderResponse `json:"orders"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

// listOrders lists a user's own orders. A packer sees the marketplace of open orders with
// status=open, and otherwise the orders assigned to them.
func (s *server) listOrders(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	q := r.URL.Query()
	fields := fieldErrors{}
	filter := store.OrderFilter{Limit: defaultPageSize}
	switch status := store.OrderStatus(q.Get("status")); status {
	case "", store.StatusOpen, store.StatusAccepted, store.StatusCompleted, store.StatusCancelled:
		filter.Status = status
	default:
		fields.add("status", "must be open, accepted, completed or cancelled")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			fields.add("limit", fmt.Sprintf("must be a whole number from 1 to %d", maxPageSize))
		}
		filter.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, err := decodeCursor(v)
		if err != nil {
			fields.add("cursor", "is not a cursor this API returned")
		}
		filter.After = &c
	}
	if err := fields.err(); err != nil {
		return err
	}
	switch {
	case p.Role == store.RoleUser:
		filter.OwnerID = p.UserID
	case filter.Status != store.StatusOpen:
		filter.PackerID = p.UserID
	}
	// One extra row tells whether there is a next page.
	want := filter.Limit
	filter.Limit++
	orders, err := s.store.ListOrders(r.Context(), filter)
	if err != nil {
		return err
	}
	page := orderPage{Orders: make([]orderResponse, 0, len(orders))}
	if len(orders) > want {
		orders = orders[:want]
		last := orders[want-1]
		page.NextCursor = encodeCursor(store.OrderCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	for _, o := range orders {
		page.Orders = append(page.Orders, orderView(o))
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

type cursorJSON struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"id"`
}

func encodeCursor(c store.OrderCursor) string {
	b, _ := json.Marshal(cursorJSON{CreatedAt: c.CreatedAt, ID: c.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (store.OrderCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return store.OrderCursor{}, err
	}
	var c cursorJSON
	if err := json.Unmarshal(b, &c); err != nil {
		return store.OrderCursor{}, err
	}
	if c.CreatedAt.IsZero() || !store.ValidID(c.ID) {
		return store.OrderCursor{}, errors.New("incomplete cursor")
	}
	return store.OrderCursor{CreatedAt: c.CreatedAt, ID: c.ID}, nil
}

// visible says whether p may know order o exists: its owner, its packer, and any packer while
// it is open on the marketplace. Everyone else gets 404, as if it did not exist.
func visible(o store.Order, p store.Principal) bool {
	return o.OwnerID == p.UserID ||
		(o.PackerID != nil && *o.PackerID == p.UserID) ||
		(p.Role == store.RolePacker && o.Status == store.StatusOpen)
}

func (s *server) getOrder(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	o, err := s.visibleOrder(r.Context(), r.PathValue("id"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, orderView(o))
	return nil
}

func (s *server) visibleOrder(ctx context.Context, id string, p store.Principal) (store.Order, error) {
	if !store.ValidID(id) {
		return store.Order{}, errNotFound
	}
	o, err := s.store.OrderByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !visible(o, p)) {
		return store.Order{}, errNotFound
	}
	return o, err
}

// transition is one state change of an order: who may make it and the conditional update that
// makes it only from the right state.
type transition struct {
	allowed   func(o store.Order, p store.Principal) bool
	forbidden string
	apply     func(st *store.Store, ctx context.Context, id, userID string) (store.Order, error)
	action    string
}

var (
	acceptOrder = transition{
		allowed:   func(_ store.Order, p store.Principal) bool { return p.Role == store.RolePacker },
		forbidden: "only packers can accept orders",
		apply:     (*store.Store).AcceptOrder,
		action:    audit.OrderAccepted,
	}
	completeOrder = transition{
		allowed:   func(o store.Order, p store.Principal) bool { return o.PackerID != nil && *o.PackerID == p.UserID },
		forbidden: "only the packer who accepted the order can complete it",
		apply:     (*store.Store).CompleteOrder,
		action:    audit.OrderCompleted,
	}
	cancelOrder = transition{
		allowed:   func(o store.Order, p store.Principal) bool { return o.OwnerID == p.UserID },
		forbidden: "only the order's owner can cancel it",
		apply:     (*store.Store).CancelOrder,
		action:    audit.OrderCancelled,
	}
)

func (s *server) transition(t transition) func(http.ResponseWriter, *http.Request, store.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p store.Principal) error {
		o, err := s.visibleOrder(r.Context(), r.PathValue("id"), p)
		if err != nil {
			return err
		}
		if !t.allowed(o, p) {
			return forbidden(t.forbidden)
		}
		// The update re-checks state and party itself; what was read above may be stale.
		updated, err := t.apply(s.store, r.Context(), o.ID, p.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return s.explainFailedTransition(r.Context(), o.ID, p)
		}
		if err != nil {
			return err
		}
		s.record(r, t.action, p.UserID, map[string]any{"order_id": o.ID})
		writeJSON(w, http.StatusOK, orderView(updated))
		return nil
	}
}

// explainFailedTransition tells why a conditional update matched nothing: the order moved on
// (409) or, like an order another packer just won, is no longer the caller's to see (404).
func (s *server) explainFailedTransition(ctx context.Context, id string, p store.Principal) error {
	o, err := s.visibleOrder(ctx, id, p)
	if err != nil {
		return err
	}
	return conflict("invalid_state", "the order is "+string(o.Status), nil)
}
