-- The monthly sales report, kept current by upserts as orders arrive. Months are calendar months
-- of the business time zone; amounts are integer minor units of `currency`.
CREATE TABLE monthly_sales (
    month           DATE NOT NULL CHECK (extract(day FROM month) = 1),
    currency        TEXT NOT NULL,
    orders          BIGINT NOT NULL,
    units           BIGINT NOT NULL,
    net_minor       BIGINT NOT NULL,
    tax_minor       BIGINT NOT NULL,
    shipping_minor  BIGINT NOT NULL,
    gross_minor     BIGINT NOT NULL,
    PRIMARY KEY (month, currency)
);

-- The same figures broken down by one dimension. Category and SKU rows hold the lines' own
-- amounts (no shipping); agent and channel rows hold whole orders.
CREATE TABLE monthly_sales_by (
    month           DATE NOT NULL CHECK (extract(day FROM month) = 1),
    currency        TEXT NOT NULL,
    dimension       TEXT NOT NULL CHECK (dimension IN ('category', 'sku', 'agent', 'channel')),
    key             TEXT NOT NULL,
    orders          BIGINT NOT NULL,
    units           BIGINT NOT NULL,
    net_minor       BIGINT NOT NULL,
    tax_minor       BIGINT NOT NULL,
    shipping_minor  BIGINT NOT NULL,
    gross_minor     BIGINT NOT NULL,
    PRIMARY KEY (month, currency, dimension, key)
);

-- Orders placed in the last hours, for the "sales in the last hour" gauges. Kept short: rows
-- older than the retention are pruned, and old orders (a replay) are never written.
CREATE TABLE recent_sales (
    event_id        TEXT PRIMARY KEY,
    placed_at       TIMESTAMPTZ NOT NULL,
    currency        TEXT NOT NULL,
    gross_minor     BIGINT NOT NULL
);

CREATE INDEX recent_sales_placed_at ON recent_sales (placed_at);

-- The business time zone the months are counted in. Every instance buckets with this stored
-- value, so months never mix time zones even if instances are configured differently.
CREATE TABLE report_settings (
    singleton          BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    business_timezone  TEXT NOT NULL
);
