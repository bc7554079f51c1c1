//! The report as users get it: JSON and CSV over HTTP, the `report` command, a currency filter,
//! and clear refusals of a bad month or format.

use std::process::Command;

use orderflow_testkit as kit;
use serde_json::Value;

use crate::common::{self, expected, from_csv, from_json, get, mid_november, varied_orders};

fn report_command(s: &common::Setup, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sales-reporting"))
        .arg("report")
        .args(args)
        .env("ORDERFLOW_DATABASE_URL", kit::database_url())
        .env("ORDERFLOW_DATABASE_SCHEMA", &s.schema)
        .output()
        .expect("running sales-reporting report")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_adds_up_in_json_csv_and_from_the_command() {
    let s = common::setup(3).await;
    let service = s.start("UTC").await;
    let orders = varied_orders("report", 25, mid_november());
    common::produce(&s.topic, &orders).await;
    s.wait_processed(25).await;
    let want = expected(&orders);
    let base = format!("http://{}/v1/reports/monthly/2026-11", service.addr);

    let json = common::report_json(&s, &service, "2026-11").await;
    assert_eq!(from_json(&json), want);

    let csv = get(&s.http, format!("{base}?format=csv")).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert_eq!(from_csv(&csv, "2026-11"), want);
    assert!(
        csv.contains(",category,\"posters, large\","),
        "a key with a comma is quoted:\n{csv}"
    );
    let negotiated = s
        .http
        .get(&base)
        .header("accept", "text/html, text/csv;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(negotiated, csv, "Accept: text/csv gives the CSV");

    let usd: Value = get(&s.http, format!("{base}?currency=usd"))
        .await
        .json()
        .await
        .unwrap();
    let usd_only: common::Figures = want
        .iter()
        .filter(|((currency, _, _), _)| currency == "USD")
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(from_json(&usd), usd_only);

    let out = report_command(&s, &["--month", "2026-11"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json, "the command prints what the API serves");
    let out = report_command(&s, &["--month", "2026-11", "--format", "csv"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), csv);
    let out = report_command(&s, &["--month", "2026-11", "--currency", "USD"]);
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, usd);
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_month_or_format_is_refused_clearly() {
    let s = common::setup(1).await;
    let service = s.start("UTC").await;
    let base = format!("http://{}/v1/reports/monthly", service.addr);
    for (path, needle) in [
        ("2026-13", "expected YYYY-MM"),
        ("november", "expected YYYY-MM"),
        ("2026-1", "expected YYYY-MM"),
        ("2026-11?format=xml", "expected json or csv"),
        ("2026-11?currency=euro", "ISO 4217"),
    ] {
        let response = get(&s.http, format!("{base}/{path}")).await;
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(needle), "{path}: {error}");
    }
    let empty = common::report_json(&s, &service, "2030-01").await;
    assert_eq!(empty["currencies"], serde_json::json!([]));

    let out = report_command(&s, &["--month", "2026-13"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected YYYY-MM"), "{stderr}");
    service.stop().await.unwrap();
}
