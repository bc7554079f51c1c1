//! What accounting did for one order, from its own `journal_entries` table, for operators
//! (`orderflowctl order`).

use sqlx::PgPool;

/// The order's journal entry (`journal entry 42 on 2026-11-22, EUR 54.17`), or `None` when the
/// order is not journaled.
pub async fn effect(pool: &PgPool, order_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(i64, chrono::NaiveDate, String, i16, i64)> = sqlx::query_as(
        "SELECT id, entry_date, currency, minor_exponent, total_minor
         FROM journal_entries WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, date, currency, exponent, total)| {
        format!(
            "journal entry {id} on {date}, {currency} {}",
            decimal(total, exponent)
        )
    }))
}

/// Minor units as a decimal amount with the currency's number of decimals.
fn decimal(minor: i64, exponent: i16) -> String {
    let exponent = u32::try_from(exponent).unwrap_or(0);
    if exponent == 0 {
        return minor.to_string();
    }
    let scale = 10_i64.pow(exponent);
    format!(
        "{}{}.{:0width$}",
        if minor < 0 { "-" } else { "" },
        (minor / scale).abs(),
        (minor % scale).abs(),
        width = exponent as usize
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_keep_the_currency_decimals() {
        assert_eq!(super::decimal(5417, 2), "54.17");
        assert_eq!(super::decimal(5, 2), "0.05");
        assert_eq!(super::decimal(1200, 0), "1200");
        assert_eq!(super::decimal(1234, 3), "1.234");
    }
}
