-- Accepted orders, keyed by the client's order id so a retried POST finds its first answer.
CREATE TABLE orders (
    order_id      TEXT PRIMARY KEY,
    -- The validated request, to tell a retry (same body) from a conflicting reuse of the id.
    request       JSONB NOT NULL,
    event_id      TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    total_minor   BIGINT NOT NULL CHECK (total_minor >= 0),
    placed_at     TIMESTAMPTZ NOT NULL
);

-- The transactional outbox: written in the same transaction as the order, published by the relay.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    topic         TEXT NOT NULL,
    message_key   TEXT NOT NULL,
    payload       BYTEA NOT NULL,
    -- Kafka headers to send, e.g. the W3C trace context of the accepting request.
    headers       JSONB NOT NULL DEFAULT '{}',
    order_id      TEXT REFERENCES orders (order_id),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ
);

CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
