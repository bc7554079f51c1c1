-- A run of entries written at once fired the balance check once per posting as well as once per
-- entry, and the checks were most of the database's work. A posting inserted or updated in the
-- transaction that inserted or updated its entry is now left to the entry's own check, which
-- runs at commit and sees all of the entry's postings; a posting added to an entry written
-- earlier is still checked. The entry's check now also fires on UPDATE, so "written here" (the
-- row's xmin is this transaction's id) always has an entry check behind it. A subtransaction's
-- rows carry their own xid and are checked as before.

CREATE FUNCTION entry_written_here(entry BIGINT) RETURNS boolean
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT EXISTS (
        SELECT 1 FROM journal_entries
        WHERE id = entry AND xmin::text::bigint = txid_current() % 4294967296
    )
$$;

CREATE OR REPLACE FUNCTION postings_balanced() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM assert_entry_balanced(OLD.entry_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NOT entry_written_here(NEW.entry_id) THEN
        PERFORM assert_entry_balanced(NEW.entry_id);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER journal_entry_balanced ON journal_entries;

CREATE CONSTRAINT TRIGGER journal_entry_balanced
    AFTER INSERT OR UPDATE ON journal_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION journal_entry_balanced();
