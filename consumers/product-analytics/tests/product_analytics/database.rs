//! What the database itself refuses, whatever writes to it: a line in a batch that does not
//! exist, and removing a batch its lines refer to (a batched line would then never be written).

use std::time::Duration;

use product_analytics::line::sold_lines;
use product_analytics::staging::{self, FlushPolicy};

use crate::common::{self, order};

/// The SQLSTATE and message of a refused statement.
fn refusal(e: sqlx::Error) -> (String, String) {
    let db = e.into_database_error().expect("a database error");
    (db.code().unwrap().into_owned(), db.message().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_are_only_in_batches_that_exist_and_batches_are_never_removed() {
    let s = common::setup(1).await;
    product_analytics::MIGRATOR.run(&s.pool).await.unwrap();
    let lines: Vec<_> = (0..3)
        .flat_map(|i| sold_lines(&order("db", i)).unwrap())
        .collect();
    let mut conn = s.pool.acquire().await.unwrap();
    assert_eq!(
        staging::stage(&mut conn, &lines).await.unwrap(),
        lines.len() as u64
    );
    drop(conn);
    let policy = FlushPolicy {
        rows: 2,
        interval: Duration::from_secs(3600),
    };
    let batch = staging::cut_batch(&s.pool, &policy)
        .await
        .unwrap()
        .expect("two lines make a batch");
    assert_eq!(batch.lines, 2);

    for statement in [
        "UPDATE staged_lines SET batch_id = 424242 WHERE batch_id IS NULL",
        "INSERT INTO staged_lines (order_id, order_line_id, placed_at, sku, category, design_id,
             print_technique, size, colour, material, attributes, quantity, unit_price_minor,
             currency, shipping_country, channel, batch_id)
         VALUES ('o', 'l', now(), 's', 'c', 'd', 'p', 'M', 'red', 'cotton', '{}', 1, 100, 'EUR',
                 'DE', 'web', 424242)",
    ] {
        let e = sqlx::query(statement).execute(&s.pool).await.unwrap_err();
        assert_eq!(
            refusal(e),
            ("23503".into(), "batch 424242 does not exist".into()),
            "{statement}"
        );
    }
    for statement in [
        format!("DELETE FROM batches WHERE id = {}", batch.id),
        "TRUNCATE staged_lines, batches".to_string(),
    ] {
        let e = sqlx::query(&statement).execute(&s.pool).await.unwrap_err();
        assert_eq!(
            refusal(e),
            (
                "23001".into(),
                "batches are never deleted: staged lines refer to them".into()
            ),
            "{statement}"
        );
    }

    let progress = staging::progress(&s.pool).await.unwrap();
    assert_eq!(
        (progress.staged, progress.batched),
        (lines.len() as i64, 2),
        "nothing was changed by the refused statements"
    );
}
