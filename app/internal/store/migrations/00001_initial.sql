-- +goose Up
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- phone and password_hash are erased (NULL) when the account is deleted.
    phone         text UNIQUE,
    password_hash text,
    name          text NOT NULL DEFAULT '',
    role          text NOT NULL CHECK (role IN ('user', 'packer')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    CHECK ((deleted_at IS NULL) = (phone IS NOT NULL AND password_hash IS NOT NULL))
);

-- A session is one login: the family of refresh tokens that descend from it. Access tokens
-- name their session (sid) and stop working when it is revoked.
CREATE TABLE sessions (
    id           text PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- Only a hash of each refresh token is kept; used_at marks a token already rotated, so a second
-- use is a replay.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

CREATE TABLE orders (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id       uuid NOT NULL REFERENCES users (id),
    packer_id      uuid REFERENCES users (id),
    status         text NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'accepted', 'completed', 'cancelled')),
    pickup_address text NOT NULL,
    items          jsonb NOT NULL,
    preferred_time timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('open', 'cancelled')) = (packer_id IS NULL))
);
CREATE INDEX orders_owner ON orders (owner_id, created_at DESC, id DESC);
CREATE INDEX orders_packer ON orders (packer_id, created_at DESC, id DESC);
CREATE INDEX orders_open ON orders (created_at DESC, id DESC) WHERE status = 'open';

-- +goose Down
DROP TABLE orders;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
