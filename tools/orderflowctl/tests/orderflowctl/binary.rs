//! The real binary: help on every command, `--json` output that parses, and errors as JSON.

use std::process::Command;

use orderflow_core::topics::retry_topic;
use orderflow_testkit as testkit;

use crate::common::{commit_as_member, numbered, send};

fn orderflowctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orderflowctl"))
        .args(args)
        .env("ORDERFLOW_KAFKA_BROKERS", testkit::kafka().brokers)
        .output()
        .expect("running orderflowctl")
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["topics", "apply", "--help"],
        &["lag", "--help"],
        &["dlq", "list", "--help"],
        &["dlq", "show", "--help"],
        &["dlq", "redrive", "--help"],
        &["replay", "--help"],
        &["order", "--help"],
    ] {
        let out = orderflowctl(args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: orderflowctl"), "{args:?}: {text}");
        assert!(text.contains("--json"), "{args:?}: {text}");
    }
}

#[tokio::test]
async fn json_output_parses() {
    let topic = testkit::topic("ctl-bin", 1).await;
    let group = testkit::unique("ctl-bin");
    testkit::create_topic(&retry_topic(&topic, &group), 1).await;
    send(
        &topic,
        &numbered(0, 4, chrono::Utc::now().timestamp_millis()),
    )
    .await;
    commit_as_member(&group, &topic, &[(0, 1)]).await;

    let out = orderflowctl(&["--json", "lag", "--topic", &topic, "--group", &group]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lag: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(lag["groups"][0]["group"], group.as_str());
    assert_eq!(lag["groups"][0]["total_lag"], 3);

    let out = orderflowctl(&[
        "replay",
        "--json",
        "--topic",
        &topic,
        "--group",
        &group,
        "--partition",
        "0",
        "--start-offset",
        "1",
        "--dry-run",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replay: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replay["records"], 3);
    assert_eq!(replay["partitions"][0]["start"], 1);

    let out = orderflowctl(&[
        "--json",
        "replay",
        "--topic",
        &topic,
        "--group",
        &group,
        "--partition",
        "0",
        "--start-offset",
        "1",
        "--end-offset",
        "2",
        "--method",
        "rewind",
    ]);
    assert!(!out.status.success());
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("--method copy"),
        "{error}"
    );
}
