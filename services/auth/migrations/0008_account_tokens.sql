-- Verified e-mail, and the single-use tokens that verify an address or
-- reset a password. A token is stored only as its SHA-256 hash, with what
-- it is for, whose it is, the address it was sent to, when it lapses and
-- when it was used (it works once: used_at IS NULL, expires_at > now()).
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;

CREATE TABLE account_tokens (
    token_hash  BYTEA PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The per-address rate limit counts a user's recent tokens of a purpose.
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose, created_at);
-- A reset or a password change revokes every family of the user.
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
