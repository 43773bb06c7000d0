package store

import (
	"context"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEntry is one row of the audit log. UserID is empty and IP invalid when unknown.
type AuditEntry struct {
	UserID    string
	Action    string
	IP        netip.Addr
	Timestamp time.Time
	Metadata  map[string]any
}

// InsertAudit writes entries in one round trip.
func (s *Store) InsertAudit(ctx context.Context, entries []AuditEntry) error {
	rows := make([][]any, 0, len(entries))
	for _, e := range entries {
		meta := []byte("{}")
		if e.Metadata != nil {
			var err error
			if meta, err = json.Marshal(e.Metadata); err != nil {
				return err
			}
		}
		var user, ip any
		if e.UserID != "" {
			user = e.UserID
		}
		if e.IP.IsValid() {
			ip = e.IP
		}
		rows = append(rows, []any{user, e.Action, ip, e.Timestamp, meta})
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"audit_log"},
		[]string{"user_id", "action", "ip_address", "timestamp", "metadata"}, pgx.CopyFromRows(rows))
	return err
}

// DeleteAuditBefore deletes audit rows older than cutoff, a batch at a time so that no single
// statement holds locks for long, and returns how many went.
func (s *Store) DeleteAuditBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	const batch = 10000
	var total int64
	for {
		tag, err := s.pool.Exec(ctx,
			`DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE "timestamp" < $1 LIMIT $2)`,
			cutoff, batch)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < batch {
			return total, nil
		}
	}
}

// AuditOf lists a user's audit entries, oldest first.
func (s *Store) AuditOf(ctx context.Context, userID string) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT COALESCE(user_id::text, ''), action, ip_address, "timestamp", metadata FROM audit_log
		WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		var ip *netip.Addr
		err := row.Scan(&e.UserID, &e.Action, &ip, &e.Timestamp, &e.Metadata)
		if ip != nil {
			e.IP = *ip
		}
		return e, err
	})
}
