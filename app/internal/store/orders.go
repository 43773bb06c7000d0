package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// OrderStatus is where an order is in its life: open → accepted → completed, or open → cancelled.
type OrderStatus string

// The order statuses.
const (
	StatusOpen      OrderStatus = "open"
	StatusAccepted  OrderStatus = "accepted"
	StatusCompleted OrderStatus = "completed"
	StatusCancelled OrderStatus = "cancelled"
)

// Item is one thing to pack.
type Item struct {
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
}

// Order is a packing job a user posts and a packer takes.
type Order struct {
	ID            string
	OwnerID       string
	PackerID      *string
	Status        OrderStatus
	PickupAddress string
	Items         []Item
	PreferredTime time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

const orderColumns = `id, owner_id, packer_id, status, pickup_address, items, preferred_time, created_at, updated_at`

func scanOrder(row pgx.Row) (Order, error) {
	var o Order
	err := row.Scan(&o.ID, &o.OwnerID, &o.PackerID, &o.Status, &o.PickupAddress, &o.Items, &o.PreferredTime,
		&o.CreatedAt, &o.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, ErrNotFound
	}
	return o, err
}

// NewOrder is what a user posts.
type NewOrder struct {
	PickupAddress string
	Items         []Item
	PreferredTime time.Time
}

// CreateOrder posts an open order.
func (s *Store) CreateOrder(ctx context.Context, ownerID string, n NewOrder) (Order, error) {
	return scanOrder(s.pool.QueryRow(ctx,
		`INSERT INTO orders (owner_id, pickup_address, items, preferred_time) VALUES ($1, $2, $3, $4)
		RETURNING `+orderColumns,
		ownerID, n.PickupAddress, n.Items, n.PreferredTime))
}

// OrderByID returns an order whoever it belongs to; callers decide who may see it.
func (s *Store) OrderByID(ctx context.Context, id string) (Order, error) {
	return scanOrder(s.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
}

// OrderFilter selects a page of orders, newest first. Empty fields do not filter.
type OrderFilter struct {
	OwnerID  string
	PackerID string
	Status   OrderStatus
	// After continues a listing after the order with this creation time and id.
	After *OrderCursor
	Limit int
}

// OrderCursor is the position of an order in a listing.
type OrderCursor struct {
	CreatedAt time.Time
	ID        string
}

// ListOrders returns the orders matching f.
func (s *Store) ListOrders(ctx context.Context, f OrderFilter) ([]Order, error) {
	var afterTime *time.Time
	var afterID *string
	if f.After != nil {
		afterTime, afterID = &f.After.CreatedAt, &f.After.ID
	}
	rows, err := s.pool.Query(ctx,
		`SELECT `+orderColumns+` FROM orders
		WHERE ($1::uuid IS NULL OR owner_id = $1)
		  AND ($2::uuid IS NULL OR packer_id = $2)
		  AND ($3::text IS NULL OR status = $3)
		  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
		ORDER BY created_at DESC, id DESC
		LIMIT $6`,
		nullIfEmpty(f.OwnerID), nullIfEmpty(f.PackerID), nullIfEmpty(string(f.Status)), afterTime, afterID, f.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Order, error) { return scanOrder(row) })
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// AcceptOrder assigns an open order to packerID. The status check and the assignment are one
// statement, so when packers race for an order exactly one gets it; the others get ErrNotFound.
func (s *Store) AcceptOrder(ctx context.Context, id, packerID string) (Order, error) {
	return scanOrder(s.pool.QueryRow(ctx,
		`UPDATE orders SET status = 'accepted', packer_id = $2, updated_at = now()
		WHERE id = $1 AND status = 'open'
		RETURNING `+orderColumns, id, packerID))
}

// CompleteOrder marks an order its packer has accepted as done. An order whose owner has
// deleted their account loses its pickup address now that nobody needs it.
func (s *Store) CompleteOrder(ctx context.Context, id, packerID string) (Order, error) {
	return scanOrder(s.pool.QueryRow(ctx,
		`UPDATE orders SET status = 'completed', updated_at = now(),
			pickup_address = CASE WHEN EXISTS (SELECT 1 FROM users u WHERE u.id = orders.owner_id AND u.deleted_at IS NOT NULL)
				THEN '' ELSE pickup_address END
		WHERE id = $1 AND packer_id = $2 AND status = 'accepted'
		RETURNING `+orderColumns, id, packerID))
}

// CancelOrder cancels an open order of ownerID.
func (s *Store) CancelOrder(ctx context.Context, id, ownerID string) (Order, error) {
	return scanOrder(s.pool.QueryRow(ctx,
		`UPDATE orders SET status = 'cancelled', updated_at = now()
		WHERE id = $1 AND owner_id = $2 AND status = 'open'
		RETURNING `+orderColumns, id, ownerID))
}

// OrdersOf returns every order a user posted or packed, for their data export.
func (s *Store) OrdersOf(ctx context.Context, userID string) ([]Order, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+orderColumns+` FROM orders WHERE owner_id = $1 OR packer_id = $1 ORDER BY created_at DESC, id DESC`,
		userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Order, error) { return scanOrder(row) })
}
