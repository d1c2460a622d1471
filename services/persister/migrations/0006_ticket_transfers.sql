-- The audit trail of transfers: one row per ticket.transferred, who gave
-- which ticket to whom and when. `version` is the ticket's version the
-- transfer made, so a replayed entry inserts nothing (ON CONFLICT DO
-- NOTHING). The ticket's own row follows the highest version's owner.
CREATE TABLE ticket_transfers (
    order_id    TEXT NOT NULL,
    n           INT NOT NULL CHECK (n >= 1),
    version     INT NOT NULL CHECK (version >= 2),
    event_id    BIGINT NOT NULL,
    from_user   BIGINT NOT NULL,
    to_user     BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, n, version)
);
CREATE INDEX ticket_transfers_from ON ticket_transfers (from_user, at DESC);
CREATE INDEX ticket_transfers_to ON ticket_transfers (to_user, at DESC);
