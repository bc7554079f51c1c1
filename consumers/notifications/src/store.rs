//! The service's tables: `queued_emails` (what the consumer handed to RabbitMQ) and
//! `sent_emails` (what the mailer did with each `Message-ID`), and the per-`Message-ID` lock
//! that lets only one mailer task talk to SMTP about an e-mail at a time.

use std::collections::HashSet;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use crate::email::Email;
use crate::render::Rendered;

/// The class of our advisory locks (the two-key form, whose key space is apart from the
/// one-key form other services use): "nt" "fy".
const LOCK_CLASS: i32 = 0x6e74_6679;

/// Of `message_ids`, those already queued (by an earlier event for the same order).
pub async fn already_queued(
    conn: &mut PgConnection,
    message_ids: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM queued_emails WHERE message_id = ANY($1)")
            .bind(message_ids)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Records e-mails handed to RabbitMQ, each with the event that queued it, in one statement.
pub async fn record_queued(
    conn: &mut PgConnection,
    queued: &[(&str, &Rendered)],
) -> Result<(), sqlx::Error> {
    let col = |get: &dyn Fn(&str, &Rendered) -> String| -> Vec<String> {
        queued.iter().map(|(event, r)| get(event, r)).collect()
    };
    sqlx::query(
        "INSERT INTO queued_emails (message_id, order_id, event_id, kind, recipients, lang, subject)
         SELECT message_id, order_id, event_id, kind, string_to_array(recipients, E'\\n'), lang,
                subject
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[])
              AS q(message_id, order_id, event_id, kind, recipients, lang, subject)
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(col(&|_, r| r.email.message_id.clone()))
    .bind(col(&|_, r| r.email.order_id.clone()))
    .bind(col(&|event, _| event.to_string()))
    .bind(col(&|_, r| r.email.kind.as_str().to_string()))
    // One array column per row cannot be bound as an array of arrays of different lengths; an
    // address never holds a line break, so the recipients travel joined by one.
    .bind(col(&|_, r| r.email.envelope_to.join("\n")))
    .bind(col(&|_, r| r.lang.code().to_string()))
    .bind(col(&|_, r| r.subject.clone()))
    .execute(conn)
    .await?;
    Ok(())
}

/// What the mailer may do with an e-mail.
pub enum Claim {
    /// Send it; the guard holds the e-mail's lock until it is dropped or released.
    Send(SendGuard),
    /// A previous delivery sent it already.
    AlreadySent,
    /// A previous delivery dead-lettered it already.
    AlreadyFailed,
}

/// Holds the lock on one `Message-ID` on a connection of its own, and records the attempt's
/// progress there. The lock is a session-level advisory lock: if the process dies, Postgres
/// ends the session and the lock with it; if the guard is dropped without `release`, the
/// connection is closed rather than returned to the pool, for the same effect.
pub struct SendGuard {
    conn: PoolConnection<Postgres>,
    message_id: String,
    /// Whether an earlier attempt ended without a recorded outcome.
    pub after_interruption: bool,
    unlocked: bool,
}

/// Takes the lock on `email`'s `Message-ID` (waiting for another task that holds it) and
/// records a new attempt, unless the e-mail is already sent or dead-lettered.
pub async fn claim(pool: &PgPool, email: &Email) -> Result<Claim, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind(LOCK_CLASS)
        .bind(&email.message_id)
        .execute(&mut *conn)
        .await?;
    let mut guard = SendGuard {
        conn,
        message_id: email.message_id.clone(),
        after_interruption: false,
        unlocked: false,
    };
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM sent_emails WHERE message_id = $1")
            .bind(&email.message_id)
            .fetch_optional(&mut *guard.conn)
            .await?;
    match state.as_deref() {
        Some("sent") => {
            guard.release().await;
            return Ok(Claim::AlreadySent);
        }
        Some("failed") => {
            guard.release().await;
            return Ok(Claim::AlreadyFailed);
        }
        // Nobody holds the lock, so whoever left `sending` behind died mid-attempt.
        Some("sending") => guard.after_interruption = true,
        _ => {}
    }
    sqlx::query(
        "INSERT INTO sent_emails (message_id, order_id, kind, recipients, state, attempts)
         VALUES ($1, $2, $3, $4, 'sending', 1)
         ON CONFLICT (message_id) DO UPDATE SET
             state = 'sending',
             attempts = sent_emails.attempts + 1,
             interrupted = sent_emails.interrupted
                 + CASE WHEN sent_emails.state = 'sending' THEN 1 ELSE 0 END,
             last_attempt_at = now()",
    )
    .bind(&email.message_id)
    .bind(&email.order_id)
    .bind(email.kind.as_str())
    .bind(&email.envelope_to)
    .execute(&mut *guard.conn)
    .await?;
    Ok(Claim::Send(guard))
}

impl SendGuard {
    /// A temporary failure; another attempt follows (now or on a later delivery).
    pub async fn retrying(&mut self, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sent_emails SET state = 'retrying', last_error = $2 WHERE message_id = $1",
        )
        .bind(&self.message_id)
        .bind(error)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Another attempt within the same delivery.
    pub async fn attempt(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sent_emails SET state = 'sending', attempts = attempts + 1,
                 last_attempt_at = now()
             WHERE message_id = $1",
        )
        .bind(&self.message_id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// The SMTP server accepted the e-mail.
    pub async fn sent(&mut self, smtp_response: &str) -> Result<(), sqlx::Error> {
        mark_sent(&mut self.conn, &self.message_id, smtp_response).await
    }

    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// Refused for good and moved to the dead-letter queue.
    pub async fn failed(&mut self, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sent_emails SET state = 'failed', last_error = $2 WHERE message_id = $1",
        )
        .bind(&self.message_id)
        .bind(error)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Lets the next task have the e-mail.
    pub async fn release(mut self) {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(&self.message_id)
            .execute(&mut *self.conn)
            .await;
        match unlocked {
            Ok(_) => self.unlocked = true,
            Err(e) => {
                tracing::warn!(error = %e, "advisory unlock failed; closing the connection instead")
            }
        }
    }
}

/// Records that the SMTP server accepted `message_id`.
pub async fn mark_sent(
    conn: &mut PgConnection,
    message_id: &str,
    smtp_response: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sent_emails SET state = 'sent', sent_at = now(), smtp_response = $2,
             last_error = NULL
         WHERE message_id = $1",
    )
    .bind(message_id)
    .bind(smtp_response)
    .execute(conn)
    .await?;
    Ok(())
}

impl Drop for SendGuard {
    fn drop(&mut self) {
        if !self.unlocked {
            self.conn.close_on_drop();
        }
    }
}
