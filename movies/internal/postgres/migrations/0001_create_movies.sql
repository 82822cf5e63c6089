-- movie_genre_keys is what the genre filter compares: the genres lower-cased, so that
-- ?genre=drama finds "Drama". It must be IMMUTABLE to back an index.
CREATE FUNCTION movie_genre_keys(genres text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ARRAY(SELECT lower(g) FROM unnest(genres) AS g) $$;

CREATE TABLE movies (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    plot        text        NOT NULL DEFAULT '' CHECK (char_length(plot) <= 5000),
    genres      text[]      NOT NULL DEFAULT '{}' CHECK (cardinality(genres) <= 20),
    -- Ids of casts in the cast service's database: no foreign key can reach there, so
    -- the service checks them with the cast service on every write that changes them.
    cast_ids    bigint[]    NOT NULL DEFAULT '{}' CHECK (cardinality(cast_ids) <= 100),
    -- version backs the ETag: it changes on every write.
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- GIN indexes serve the containment (@>) tests of the genre and cast_id filters.
CREATE INDEX movies_genre_keys_idx ON movies USING gin (movie_genre_keys(genres));
CREATE INDEX movies_cast_ids_idx ON movies USING gin (cast_ids);
