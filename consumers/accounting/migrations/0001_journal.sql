-- The chart of accounts. Its rows come from chart_of_accounts.csv (upserted at start-up), not
-- from code; `role` tells the posting rules which account plays which part.
CREATE TABLE accounts (
    code         TEXT PRIMARY KEY CHECK (code <> ''),
    name         TEXT NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    normal_side  TEXT NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    role         TEXT UNIQUE
);

-- One journal entry per order, never two: UNIQUE (order_id) holds even when the order is
-- replayed under a new event id.
CREATE TABLE journal_entries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id        TEXT NOT NULL UNIQUE,
    event_id        TEXT NOT NULL,
    currency        TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Decimal places of the currency's minor unit, fixed when booked so an export never
    -- depends on a library's currency table.
    minor_exponent  SMALLINT NOT NULL CHECK (minor_exponent BETWEEN 0 AND 4),
    total_minor     BIGINT NOT NULL CHECK (total_minor >= 0),
    -- When the order was placed.
    booked_at       TIMESTAMPTZ NOT NULL,
    -- The journal day the entry belongs to: booked_at's date in the business time zone, or the
    -- first day after it not yet exported when that day was already exported (a late order).
    entry_date      DATE NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX journal_entries_by_date ON journal_entries (entry_date);

CREATE TABLE postings (
    entry_id      BIGINT NOT NULL REFERENCES journal_entries (id),
    line_no       INTEGER NOT NULL CHECK (line_no > 0),
    account_code  TEXT NOT NULL REFERENCES accounts (code),
    -- The account's name when booked: a renamed account never changes an exported day.
    account_name  TEXT NOT NULL,
    -- The customer on the receivable, the supplier on cost of goods sold and payables.
    counterparty  TEXT,
    debit_minor   BIGINT NOT NULL DEFAULT 0,
    credit_minor  BIGINT NOT NULL DEFAULT 0,
    memo          TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (entry_id, line_no),
    CONSTRAINT one_side_positive CHECK (
        (debit_minor > 0 AND credit_minor = 0) OR (credit_minor > 0 AND debit_minor = 0)
    )
);

-- Days the export command has written. Once exported, a day is closed: an order that arrives
-- late for it is journaled on the next open day, so exporting a day again gives the same file.
CREATE TABLE exported_days (
    day                DATE PRIMARY KEY,
    first_exported_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Refuses an entry whose debits and credits differ, or that has no postings. Called by deferred
-- constraint triggers, so it judges an entry as a whole at commit, whoever wrote it. The
-- search_path is pinned so a hand-written statement from another schema is checked the same.
CREATE FUNCTION assert_entry_balanced(entry BIGINT) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n        BIGINT;
    debits   NUMERIC;
    credits  NUMERIC;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM journal_entries WHERE id = entry) THEN
        RETURN; -- deleted together with its postings
    END IF;
    SELECT count(*), coalesce(sum(debit_minor), 0), coalesce(sum(credit_minor), 0)
      INTO n, debits, credits
      FROM postings WHERE entry_id = entry;
    IF n = 0 THEN
        RAISE EXCEPTION 'journal entry % has no postings', entry
            USING ERRCODE = 'check_violation';
    END IF;
    IF debits <> credits THEN
        RAISE EXCEPTION 'journal entry % is unbalanced: debits % <> credits %', entry, debits, credits
            USING ERRCODE = 'check_violation';
    END IF;
END
$$;

CREATE FUNCTION journal_entry_balanced() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM assert_entry_balanced(NEW.id);
    RETURN NULL;
END
$$;

CREATE FUNCTION postings_balanced() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM assert_entry_balanced(OLD.entry_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM assert_entry_balanced(NEW.entry_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER journal_entry_balanced
    AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION journal_entry_balanced();

CREATE CONSTRAINT TRIGGER postings_balanced
    AFTER INSERT OR UPDATE OR DELETE ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION postings_balanced();
