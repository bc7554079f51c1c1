//! Reading the services' `/metrics` pages (the Prometheus text format) for the few counters the
//! benchmark follows, such as events processed.

/// The sum of every sample of `metric` (all label sets), or 0 when the page has none.
pub fn sum(page: &str, metric: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(metric)?;
            // `metric{labels} value` or `metric value`, not a longer name sharing the prefix.
            let value = match rest.chars().next()? {
                '{' => rest.rsplit_once('}')?.1,
                ' ' => rest,
                _ => return None,
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_label_set_of_one_metric_only() {
        let page = "# HELP orderflow_events_processed Events.\n\
                    # TYPE orderflow_events_processed counter\n\
                    orderflow_events_processed_total{group=\"a\",topic=\"t\"} 12\n\
                    orderflow_events_processed_total{group=\"a\",topic=\"t.retry\"} 3\n\
                    orderflow_events_processed_totally_other 100\n\
                    orderflow_events_parked_total{group=\"a\"} 7\n\
                    up 1\n";
        assert_eq!(sum(page, "orderflow_events_processed_total"), 15.0);
        assert_eq!(sum(page, "up"), 1.0);
        assert_eq!(sum(page, "missing"), 0.0);
    }
}
