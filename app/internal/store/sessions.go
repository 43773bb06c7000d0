package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Principal is who an access token speaks for, as the database knows them now.
type Principal struct {
	UserID    string
	Role      Role
	SessionID string
}

// Session is one login, as shown to its user.
type Session struct {
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
	RevokedAt  *time.Time
}

// CreateSession starts a session with its first refresh token.
func (s *Store) CreateSession(ctx context.Context, sessionID, userID string, refreshHash []byte, expiresAt time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx,
			`INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)`,
			sessionID, userID, expiresAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx,
			`INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)`, refreshHash, sessionID)
		return err
	})
}

// RotateRefresh spends the refresh token oldHash of a session and records newHash as its
// successor. A token already spent is a replay: the whole session
// is revoked and ErrRefreshReused returned. An unknown token or a session that is revoked or
// expired gives ErrNotFound.
func (s *Store) RotateRefresh(ctx context.Context, sessionID string, oldHash, newHash []byte, expiresAt time.Time) error {
	reused := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The row lock makes concurrent uses of one token take turns; the second sees used_at.
		tag, err := tx.Exec(ctx,
			`UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1 AND session_id = $2 AND used_at IS NULL`,
			oldHash, sessionID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			if err := tx.QueryRow(ctx,
				`SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = $1 AND session_id = $2)`,
				oldHash, sessionID).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return ErrNotFound
			}
			reused = true
			_, err := tx.Exec(ctx,
				`UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, sessionID)
			return err
		}
		tag, err = tx.Exec(ctx,
			`UPDATE sessions s SET last_used_at = now(), expires_at = $2
			FROM users u
			WHERE s.id = $1 AND u.id = s.user_id AND s.revoked_at IS NULL AND s.expires_at > now() AND u.deleted_at IS NULL`,
			sessionID, expiresAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)`, newHash, sessionID)
		return err
	})
	if err == nil && reused {
		return ErrRefreshReused
	}
	return err
}

// ActiveSession returns the principal of a session that is live and belongs to userID.
func (s *Store) ActiveSession(ctx context.Context, sessionID, userID string) (Principal, error) {
	var p Principal
	err := s.pool.QueryRow(ctx,
		`SELECT u.id, u.role, s.id FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.deleted_at IS NULL`,
		sessionID, userID).Scan(&p.UserID, &p.Role, &p.SessionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrNotFound
	}
	return p, err
}

// RevokeSession ends a session; tokens of it stop working at once.
func (s *Store) RevokeSession(ctx context.Context, sessionID string) error {
	_, err := s.pool.Exec(ctx,
		`UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, sessionID)
	return err
}

// SessionsOf lists a user's sessions, newest first.
func (s *Store) SessionsOf(ctx context.Context, userID string) ([]Session, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT created_at, last_used_at, expires_at, revoked_at FROM sessions WHERE user_id = $1 ORDER BY created_at DESC`,
		userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Session, error) {
		var s Session
		err := row.Scan(&s.CreatedAt, &s.LastUsedAt, &s.ExpiresAt, &s.RevokedAt)
		return s, err
	})
}
