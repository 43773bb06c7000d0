package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role is what a user does on the marketplace; it is chosen at registration and never changes.
type Role string

// The roles.
const (
	RoleUser   Role = "user"
	RolePacker Role = "packer"
)

// User is a live account.
type User struct {
	ID           string
	Phone        string
	PasswordHash string
	Name         string
	Role         Role
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

const userColumns = `id, phone, password_hash, name, role, created_at, updated_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Phone, &u.PasswordHash, &u.Name, &u.Role, &u.CreatedAt, &u.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, err
}

// CreateUser stores a new account. phone must be E.164-normalised.
func (s *Store) CreateUser(ctx context.Context, phone, passwordHash, name string, role Role) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx,
		`INSERT INTO users (phone, password_hash, name, role) VALUES ($1, $2, $3, $4) RETURNING `+userColumns,
		phone, passwordHash, name, role))
	if isUniqueViolation(err) {
		return User{}, ErrPhoneTaken
	}
	return u, err
}

// UserByPhone finds a live account by its E.164 phone number.
func (s *Store) UserByPhone(ctx context.Context, phone string) (User, error) {
	return scanUser(s.pool.QueryRow(ctx,
		`SELECT `+userColumns+` FROM users WHERE phone = $1 AND deleted_at IS NULL`, phone))
}

// UserByID finds a live account.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	return scanUser(s.pool.QueryRow(ctx,
		`SELECT `+userColumns+` FROM users WHERE id = $1 AND deleted_at IS NULL`, id))
}

// UserChanges lists the fields to change; nil leaves a field as it is. Role is deliberately
// absent.
type UserChanges struct {
	Name         *string
	Phone        *string
	PasswordHash *string
}

// UpdateUser applies changes. A new password ends every session of the user except keepSession,
// the one that asked for the change.
func (s *Store) UpdateUser(ctx context.Context, id string, c UserChanges, keepSession string) (User, error) {
	var u User
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx,
			`UPDATE users SET
				name = COALESCE($2, name),
				phone = COALESCE($3, phone),
				password_hash = COALESCE($4, password_hash),
				updated_at = now()
			WHERE id = $1 AND deleted_at IS NULL
			RETURNING `+userColumns,
			id, c.Name, c.Phone, c.PasswordHash))
		if err != nil || c.PasswordHash == nil {
			return err
		}
		_, err = tx.Exec(ctx,
			`UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL`,
			id, keepSession)
		return err
	})
	if isUniqueViolation(err) {
		return User{}, ErrPhoneTaken
	}
	return u, err
}

// DeleteUser erases the account's personal data and ends its sessions. Orders stay, without
// personal data, where someone still needs them: an order a packer has accepted keeps its pickup
// address until it is completed; open orders are cancelled; orders the user had accepted as a
// packer go back to the marketplace.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`UPDATE users SET phone = NULL, password_hash = NULL, name = '', deleted_at = now(), updated_at = now()
			WHERE id = $1 AND deleted_at IS NULL`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		for _, q := range []string{
			`UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`,
			`DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)`,
			`UPDATE orders SET status = 'cancelled', pickup_address = '', updated_at = now()
				WHERE owner_id = $1 AND status = 'open'`,
			`UPDATE orders SET pickup_address = '', updated_at = now()
				WHERE owner_id = $1 AND status IN ('completed', 'cancelled') AND pickup_address <> ''`,
			`UPDATE orders SET status = 'open', packer_id = NULL, updated_at = now()
				WHERE packer_id = $1 AND status = 'accepted'`,
		} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
}
