-- The transactional outbox: an event is written in the same transaction as the change it
-- announces, so it exists if and only if the change committed. The relay (internal/outbox)
-- delivers the rows in id order and deletes each once the receiver has acknowledged it: every
-- row here is pending.
CREATE TABLE outbox (
    -- Delivery order.
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What receivers deduplicate on; the same on every redelivery.
    event_id    uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    type        text        NOT NULL CHECK (char_length(type) BETWEEN 1 AND 100),
    -- The event's own fields, delivered next to id, type and occurred_at.
    payload     jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    occurred_at timestamptz NOT NULL DEFAULT now()
);

-- Wakes the relays, which LISTEN on casts_outbox, when a transaction that wrote events commits
-- (PostgreSQL sends notifications at commit, and only once per transaction and payload).
CREATE FUNCTION outbox_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('casts_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
