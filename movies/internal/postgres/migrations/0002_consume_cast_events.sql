-- What this service learnt from the cast service's events (POST /internal/v1/movies/events).

-- Every event applied, by id: the cast service delivers each at least once, so a redelivery
-- finds its id here and changes nothing.
CREATE TABLE processed_events (
    event_id     uuid        PRIMARY KEY,
    type         text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Casts the cast service has deleted (ids are never reused there). A movie write that names one
-- is refused, even when the cast check passed just before the cast was deleted.
CREATE TABLE deleted_casts (
    cast_id    bigint      PRIMARY KEY,
    -- When the cast service deleted it (the event's occurred_at).
    deleted_at timestamptz NOT NULL
);
