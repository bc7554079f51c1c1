//! Wakes the outbox relay, in whichever replica leads, soon after orders are accepted. A NOTIFY
//! inside the order's transaction would make every commit take PostgreSQL's database-wide notify
//! lock until its WAL flush, one commit at a time, and cap accepted orders at the disk's flush
//! rate. So each replica sends NOTIFY on its own, after the commits, and one for all the orders
//! accepted while the previous one was on its way.

use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::store::OUTBOX_CHANNEL;

/// Tells the relay that orders were accepted; cheap and never waits.
#[derive(Clone)]
pub struct OutboxWaker {
    pending: mpsc::Sender<()>,
}

impl OutboxWaker {
    /// Starts the task that sends the notifications; it ends once every waker is dropped.
    pub fn start(pool: PgPool) -> Self {
        // One slot: a wake-up asked for while one is pending is the same wake-up.
        let (pending, mut asked) = mpsc::channel(1);
        tokio::spawn(async move {
            while asked.recv().await.is_some() {
                if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(OUTBOX_CHANNEL)
                    .execute(&pool)
                    .await
                {
                    // The relay's poll interval picks the orders up anyway.
                    tracing::warn!(error = %e, "could not wake the outbox relay");
                }
            }
        });
        Self { pending }
    }

    pub fn order_accepted(&self) {
        let _ = self.pending.try_send(());
    }
}
