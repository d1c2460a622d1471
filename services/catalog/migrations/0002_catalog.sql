-- Events and their sections. Seats are not rows: a seated section is
-- rows x seats_per_row and a seat's id "<section_id>:<row>:<number>" is
-- derived from it, stable for the life of the event.
CREATE TABLE events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT NOT NULL,
    venue           TEXT NOT NULL,
    starts_at       TIMESTAMPTZ NOT NULL,
    sale_starts_at  TIMESTAMPTZ NOT NULL,
    hold_seconds    INT NOT NULL,
    per_user_limit  INT NOT NULL,
    waiting_room    BOOLEAN NOT NULL DEFAULT false,
    status          TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    version         INT NOT NULL DEFAULT 1,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at    TIMESTAMPTZ
);
CREATE INDEX events_published ON events (published_at DESC, id DESC) WHERE status = 'published';

CREATE TABLE sections (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    position          INT NOT NULL,
    name              TEXT NOT NULL,
    price_cents       BIGINT NOT NULL CHECK (price_cents >= 0),
    general_admission BOOLEAN NOT NULL,
    rows              INT,
    seats_per_row     INT,
    capacity          INT NOT NULL CHECK (capacity > 0),
    UNIQUE (event_id, position)
);
