-- Resale at face value or below: one row per listing, written from
-- listing.created, listing.withdrawn and listing.sold. A listing ends once,
-- withdrawn or sold, so its status only rises (open 1 < withdrawn 2 <
-- sold 3) and any of its messages can make the row: each carries the
-- ticket, the seller and the price. `order_id`/`n` name the listed ticket
-- (the public ticket id is `<event>-<order>-<n>`); `sale_order_id` is the
-- buyer's receipt (the payment's order id), not a row of `orders`: a resale
-- sells no inventory, it moves a ticket (its row in `tickets` follows the
-- new owner and version).
CREATE TABLE listings (
    id            TEXT PRIMARY KEY,
    event_id      BIGINT NOT NULL,
    order_id      TEXT NOT NULL,
    n             INT NOT NULL CHECK (n >= 1),
    seller_id     BIGINT NOT NULL,
    price_cents   BIGINT NOT NULL CHECK (price_cents >= 1),
    status        TEXT NOT NULL CHECK (status IN ('open', 'withdrawn', 'sold')),
    status_rank   SMALLINT NOT NULL,
    buyer_id      BIGINT,
    hold_id       TEXT,
    payment_id    TEXT,
    sale_order_id TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX listings_event ON listings (event_id, status);
CREATE INDEX listings_seller ON listings (seller_id, created_at DESC);
-- A ticket's listings (a seller's list of what they sold reads it).
CREATE INDEX listings_ticket ON listings (order_id, n);

-- What the platform owes sellers: one row per sold listing, the price the
-- buyer paid (no fee), written in the same transaction as the sale. Paying
-- it out is the operator's (status `due` until then).
CREATE TABLE payouts (
    listing_id    TEXT PRIMARY KEY,
    event_id      BIGINT NOT NULL,
    seller_id     BIGINT NOT NULL,
    amount_cents  BIGINT NOT NULL CHECK (amount_cents >= 1),
    payment_id    TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'due' CHECK (status IN ('due', 'paid')),
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX payouts_seller ON payouts (seller_id, created_at DESC);
