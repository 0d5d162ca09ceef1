-- Accounts: users in tenants, invitations, hashed tokens, and the session
-- store. Secrets are never stored: passwords as argon2id PHC strings, tokens
-- and invitation codes as SHA-256 digests.

CREATE TYPE user_role AS ENUM ('admin', 'member');

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Stored as entered (trimmed); unique without regard to case.
    email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    role          user_role NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_idx ON users (lower(email));
CREATE INDEX users_tenant_idx ON users (tenant_id, created_at);

-- Invitation links: /signup?invite=<code>. One use each, with an expiry.
CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL UNIQUE,
    role        user_role NOT NULL,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    used_by     uuid REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX invitations_tenant_idx ON invitations (tenant_id, created_at DESC);

-- personal: scripts against the app's API (st_pat_…);
-- mcp: an assistant's access to the MCP server, bound to the tenant (st_mcp_…).
CREATE TYPE token_kind AS ENUM ('personal', 'mcp');

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         token_kind NOT NULL,
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, kind, created_at DESC);

-- tower-sessions' Postgres store (its own layout), created here rather than
-- at start-up so that replicas never race to create it.
CREATE SCHEMA IF NOT EXISTS tower_sessions;
CREATE TABLE IF NOT EXISTS tower_sessions.session (
    id          text PRIMARY KEY NOT NULL,
    data        bytea NOT NULL,
    expiry_date timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS session_expiry_idx ON tower_sessions.session (expiry_date);
