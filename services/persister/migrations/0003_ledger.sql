-- The durable record the persister writes from the streams. Every write is
-- an idempotent upsert that never regresses a status: each status has a
-- rank and a write only lands when its rank is higher (holds: held 1 <
-- released/expired 2 < confirmed 3; payments: captured 1 < refunded 2).
-- Messages may arrive out of order (an order.confirmed before its
-- hold.created), so facts only one message carries start out NULL and are
-- filled in by whichever message brings them.
CREATE TABLE holds (
    id            TEXT PRIMARY KEY,
    event_id      BIGINT NOT NULL,
    user_id       BIGINT NOT NULL,
    section_id    BIGINT,
    seats         TEXT[] NOT NULL,
    quantity      INT NOT NULL,
    amount_cents  BIGINT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('held', 'released', 'expired', 'confirmed')),
    status_rank   SMALLINT NOT NULL,
    -- Unknown until a hold.* message is persisted (order.confirmed lacks it).
    expires_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX holds_event ON holds (event_id, status);

CREATE TABLE orders (
    id            TEXT PRIMARY KEY,
    hold_id       TEXT NOT NULL UNIQUE,
    event_id      BIGINT NOT NULL,
    user_id       BIGINT NOT NULL,
    section_id    BIGINT,
    seats         TEXT[] NOT NULL,
    quantity      INT NOT NULL,
    amount_cents  BIGINT NOT NULL,
    status        TEXT NOT NULL,
    payment_id    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_user ON orders (user_id, created_at DESC);
CREATE INDEX orders_event ON orders (event_id);

-- One row per sold seat: the primary key makes an oversold seat impossible
-- in the durable record too.
CREATE TABLE order_seats (
    event_id  BIGINT NOT NULL,
    seat_id   TEXT NOT NULL,
    order_id  TEXT NOT NULL REFERENCES orders (id),
    PRIMARY KEY (event_id, seat_id)
);

CREATE TABLE payments (
    id                 TEXT PRIMARY KEY,
    hold_id            TEXT NOT NULL,
    order_id           TEXT,
    event_id           BIGINT NOT NULL,
    user_id            BIGINT NOT NULL,
    amount_cents       BIGINT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('captured', 'refunded')),
    status_rank        SMALLINT NOT NULL,
    provider_charge_id TEXT NOT NULL,
    -- Why a refunded payment was refunded (`hold_expired`, `already_paid`, …).
    refund_reason      TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX payments_hold ON payments (hold_id);
