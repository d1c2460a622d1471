-- Tickets: one per seat or place of a confirmed order, written from
-- order.confirmed (ticket i of an order is the order's i-th seat or place,
-- i from 1: the public id is `<event>-<order>-<i>`, as in Redis), and
-- updated by ticket.* entries. Like the ledger, every write is an
-- idempotent upsert that never goes back: a status lands only when its rank
-- is higher (valid 1 < used 5; transfer and resale rank theirs between),
-- and the owner follows the highest version (transfer and resale bump it).
CREATE TABLE tickets (
    order_id      TEXT NOT NULL,
    n             INT NOT NULL CHECK (n >= 1),
    event_id      BIGINT NOT NULL,
    owner_id      BIGINT NOT NULL,
    section_id    BIGINT NOT NULL,
    -- `<section>:<row>:<n>`; NULL for a general-admission place.
    seat          TEXT,
    version       INT NOT NULL CHECK (version >= 1),
    status        TEXT NOT NULL CHECK (status IN ('valid', 'listed', 'used', 'transferred', 'resold')),
    status_rank   SMALLINT NOT NULL,
    used_at       TIMESTAMPTZ,
    -- The gate's user id.
    checked_in_by BIGINT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, n)
);
CREATE INDEX tickets_owner ON tickets (owner_id, created_at DESC);
CREATE INDEX tickets_event ON tickets (event_id, status);
