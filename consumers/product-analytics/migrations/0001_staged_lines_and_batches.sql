-- Sold lines wait here until a batch takes them and its Parquet files are written. Rows of
-- written batches are kept: the primary key is what makes a line archived once even when its
-- order is published again under a new event id, and the rows can rebuild any lost file.
CREATE TABLE batches (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    line_count INTEGER NOT NULL DEFAULT 0,
    -- Set once every file of the batch is stored; NULL means "write (again) on the next cycle".
    written_at TIMESTAMPTZ,
    files TEXT[] NOT NULL DEFAULT '{}'
);

CREATE INDEX batches_unwritten ON batches (id) WHERE written_at IS NULL;

-- No customer columns on purpose: no name, e-mail or address ever reaches the archive.
CREATE TABLE staged_lines (
    order_id TEXT NOT NULL,
    order_line_id TEXT NOT NULL,
    placed_at TIMESTAMPTZ NOT NULL,
    sku TEXT NOT NULL,
    category TEXT NOT NULL,
    design_id TEXT NOT NULL,
    print_technique TEXT NOT NULL,
    size TEXT NOT NULL,
    colour TEXT NOT NULL,
    material TEXT NOT NULL,
    attributes JSONB NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    shipping_country TEXT NOT NULL,
    channel TEXT NOT NULL,
    staged_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    batch_id BIGINT REFERENCES batches (id),
    PRIMARY KEY (order_id, order_line_id)
);

CREATE INDEX staged_lines_unbatched ON staged_lines (staged_at) WHERE batch_id IS NULL;
CREATE INDEX staged_lines_by_batch ON staged_lines (batch_id) WHERE batch_id IS NOT NULL;
