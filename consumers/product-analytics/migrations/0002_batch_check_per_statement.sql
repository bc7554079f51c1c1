-- Cutting a batch sets `batch_id` on each of its lines, and the foreign key checked every line
-- on its own: a lookup and a share lock on the same `batches` row, per line, which cost almost as
-- much as the update itself. One check per statement now covers all the lines it wrote. It runs
-- without sequential scans: a connection keeps the plan made on its first call, and a plan made
-- while `batches` was small would scan all of it for every statement after.
ALTER TABLE staged_lines DROP CONSTRAINT staged_lines_batch_id_fkey;

CREATE FUNCTION staged_lines_batched() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
    missing BIGINT;
BEGIN
    SELECT w.batch_id INTO missing
      FROM (SELECT DISTINCT batch_id FROM written WHERE batch_id IS NOT NULL) w
     WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = w.batch_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'batch % does not exist', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER staged_lines_inserted
    AFTER INSERT ON staged_lines REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION staged_lines_batched();

CREATE TRIGGER staged_lines_updated
    AFTER UPDATE ON staged_lines REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION staged_lines_batched();

-- What makes a check when a line is written enough: a batch, once cut, stays.
CREATE FUNCTION refuse_batch_removal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'batches are never deleted: staged lines refer to them'
        USING ERRCODE = 'restrict_violation',
              HINT = 'A batch whose files are lost is written again by clearing its written_at.';
END
$$;

CREATE TRIGGER batches_are_permanent
    BEFORE DELETE OR TRUNCATE ON batches
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_batch_removal();
