-- Responses of create requests that carried an Idempotency-Key header (internal/idempotency). A
-- key is written in the same transaction as the row its request created, so that a retry of a
-- request whose response was lost gets that response again instead of creating a second row.
CREATE TABLE idempotency_keys (
    key         text        PRIMARY KEY CHECK (octet_length(key) BETWEEN 1 AND 255),
    -- SHA-256 of the request (method, path, canonical body): the same key with another request
    -- is refused.
    fingerprint bytea       NOT NULL CHECK (octet_length(fingerprint) = 32),
    -- The response to replay. NULL only inside the transaction that claims the key, which sets
    -- them before it commits; no other transaction ever sees them NULL.
    status      integer,
    header      jsonb,
    body        bytea,
    -- Keys expire 24 hours after this; the sweeper deletes them in this order.
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
