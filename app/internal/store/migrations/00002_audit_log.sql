-- +goose Up
-- Security events (seed-security.md, "Implement Audit Logging"). user_id has no foreign key:
-- the trail must outlive what it describes. Rows older than AUDIT_RETENTION_DAYS are deleted.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    user_id    uuid,
    action     text NOT NULL,
    ip_address inet,
    "timestamp" timestamptz NOT NULL DEFAULT now(),
    metadata   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_timestamp ON audit_log ("timestamp");
CREATE INDEX audit_log_user ON audit_log (user_id, "timestamp") WHERE user_id IS NOT NULL;

-- +goose Down
DROP TABLE audit_log;
