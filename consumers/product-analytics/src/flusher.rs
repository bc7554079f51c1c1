//! The flusher: a task beside the consumer that turns staged lines into Parquet files. Each
//! cycle it cuts every due batch and writes every batch not yet written — its own, and those a
//! crashed instance committed but never wrote — one file per date, then marks the batch.
//! A failure (database or store down) is logged and the cycle tried again later; the lines wait
//! safely in Postgres meanwhile.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::archive::{Archive, ArchiveError};
use crate::columnar;
use crate::staging::{self, FlushPolicy, PendingBatch};

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("encoding batch {batch}: {source}")]
    Encode {
        batch: i64,
        source: parquet::errors::ParquetError,
    },
    #[error("writing batch {batch}: {source}")]
    Archive { batch: i64, source: ArchiveError },
}

/// What one cycle did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    pub batches_cut: usize,
    pub batches_written: usize,
    pub files_written: usize,
}

/// Cuts the batches that are due and writes every unwritten batch, until there is nothing left
/// or `stop` is raised (checked between batches, so a file is never abandoned halfway).
pub async fn flush(
    pool: &PgPool,
    archive: &Archive,
    policy: &FlushPolicy,
    stop: &watch::Receiver<bool>,
) -> Result<Cycle, FlushError> {
    let mut cycle = Cycle::default();
    loop {
        while !*stop.borrow() {
            let Some(batch) = PendingBatch::next(pool).await? else {
                break;
            };
            cycle.files_written += write(batch, archive).await?;
            cycle.batches_written += 1;
        }
        if *stop.borrow() {
            return Ok(cycle);
        }
        match staging::cut_batch(pool, policy).await? {
            Some(cut) => {
                tracing::debug!(batch = cut.id, lines = cut.lines, "batch cut");
                cycle.batches_cut += 1;
            }
            None => return Ok(cycle),
        }
    }
}

/// Writes one file per date of the batch, then marks it written; returns the number of files.
async fn write(batch: PendingBatch, archive: &Archive) -> Result<usize, FlushError> {
    let id = batch.id;
    let mut files = Vec::new();
    for (date, lines) in batch.by_date() {
        let bytes =
            columnar::encode(&lines).map_err(|source| FlushError::Encode { batch: id, source })?;
        let name = Archive::file_name(date, id);
        archive
            .put(&name, bytes)
            .await
            .map_err(|source| FlushError::Archive { batch: id, source })?;
        files.push(name);
    }
    let lines = batch.lines.len();
    batch.mark_written(&files).await?;
    tracing::info!(batch = id, lines, files = files.len(), "batch archived");
    Ok(files.len())
}

/// Runs cycles until `stop` is raised; the current cycle finishes its batch first.
pub async fn run(
    pool: PgPool,
    archive: Archive,
    policy: FlushPolicy,
    mut stop: watch::Receiver<bool>,
) {
    match archive.remove_interrupted_writes() {
        Ok(0) => {}
        Ok(n) => tracing::warn!(files = n, "removed files of writes interrupted by a crash"),
        Err(e) => tracing::warn!(error = %e, "cannot clean up interrupted writes"),
    }
    // Often enough to notice a full batch soon, never busy-looping on a tiny interval.
    let tick = policy
        .interval
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut failures = 0u32;
    loop {
        let pause = match flush(&pool, &archive, &policy, &stop).await {
            Ok(_) => {
                failures = 0;
                tick
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "archive flush failed; retrying");
                // Back off up to 30 s so a long outage is not hammered.
                (tick * 2u32.saturating_pow(failures.min(6))).min(Duration::from_secs(30))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}
