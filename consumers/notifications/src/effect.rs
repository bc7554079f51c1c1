//! What the notifications consumer and the mailer did for one order, from this service's
//! `queued_emails` and `sent_emails` tables, for operators (`orderflowctl order`).

use sqlx::PgPool;

/// Each e-mail of the order with its Message-ID, recipients and state (`customer e-mail
/// <order-1.customer@orderflow> to ana@example.com: sent 2026-11-22T04:00:00Z`), or `None` when
/// no e-mail of the order was queued.
pub async fn effect(pool: &PgPool, order_id: &str) -> Result<Option<String>, sqlx::Error> {
    type Row = (
        String,
        String,
        Vec<String>,
        Option<String>,
        Option<chrono::DateTime<chrono::Utc>>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT q.kind, q.message_id, q.recipients, s.state, s.sent_at, s.last_error
         FROM queued_emails q LEFT JOIN sent_emails s USING (message_id)
         WHERE q.order_id = $1 ORDER BY q.kind",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let emails: Vec<String> = rows
        .into_iter()
        .map(
            |(kind, message_id, recipients, state, sent_at, last_error)| {
                // No sent_emails row yet: the mailer has not picked the message off the queue.
                let state = match (state.as_deref(), sent_at) {
                    (Some("sent"), Some(at)) => format!("sent {}", at.to_rfc3339()),
                    (Some(state), _) => match last_error {
                        Some(error) => format!("{state} ({error})"),
                        None => state.to_string(),
                    },
                    (None, _) => "queued".to_string(),
                };
                format!(
                    "{kind} e-mail {message_id} to {}: {state}",
                    recipients.join(", ")
                )
            },
        )
        .collect();
    Ok(Some(emails.join("; ")))
}
