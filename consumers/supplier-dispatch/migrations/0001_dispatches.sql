-- One row per (order, supplier): the print job sent to that supplier for that order's lines.
-- The row is the consumer's memory across redelivery and crashes: an accepted job is never
-- sent again, and an accepted job whose event is not yet published is published on the next try.
CREATE TABLE dispatches (
    order_id      TEXT NOT NULL,
    supplier_id   TEXT NOT NULL,
    -- pending: a request is in flight or its answer was lost; failed: the last try was retryable;
    -- rejected: the supplier refused the job (4xx); accepted: the supplier has the job.
    status        TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'rejected', 'accepted')),
    job_id        TEXT,
    -- Requests sent to the supplier, counted before each is sent so a crash still counts it.
    attempts      INTEGER NOT NULL CHECK (attempts >= 0),
    last_error    TEXT,
    -- What the job covers, kept so the OrderDispatched event can be rebuilt from the row alone.
    line_ids      TEXT[] NOT NULL,
    units         INTEGER NOT NULL CHECK (units > 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    accepted_at   TIMESTAMPTZ,
    -- When OrderDispatched went to Kafka; NULL means it still has to.
    published_at  TIMESTAMPTZ,
    PRIMARY KEY (order_id, supplier_id),
    CHECK (status <> 'accepted' OR (job_id IS NOT NULL AND accepted_at IS NOT NULL)),
    CHECK (published_at IS NULL OR status = 'accepted')
);

-- What an operator looks for: jobs not (yet) accepted, and accepted ones awaiting their event.
CREATE INDEX dispatches_unfinished ON dispatches (updated_at)
    WHERE status <> 'accepted' OR published_at IS NULL;
