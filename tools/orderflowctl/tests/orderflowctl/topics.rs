//! `topics apply`: creates, raises partitions, changes retention and cleanup policy, leaves
//! everything else as it was, is a no-op the second time, and refuses a partition decrease.

use std::time::Duration;

use orderflow_testkit as testkit;
use orderflowctl::topics::{self, ConfigChange, TopicChange};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

use crate::common::cluster;

fn declare(lines: &[String]) -> Vec<topics::TopicDecl> {
    topics::parse("test", &lines.join("\n")).unwrap()
}

fn admin() -> AdminClient<DefaultClientContext> {
    orderflow_core::kafka::client_config(&testkit::kafka())
        .create()
        .unwrap()
}

async fn config(topic: &str, name: &str) -> Option<String> {
    let resources = admin()
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = resources.into_iter().next().unwrap().unwrap();
    resource.get(name).and_then(|e| e.value.clone())
}

#[tokio::test]
async fn apply_creates_raises_alters_then_changes_nothing_and_refuses_a_decrease() {
    let cluster = cluster();
    let a = testkit::unique("test.ctl-apply-a");
    let b = testkit::unique("test.ctl-apply-b");
    let c = testkit::unique("test.ctl-apply-c");

    // Created elsewhere with the broker's default cleanup policy, which is the declared one.
    let existing = testkit::topic("ctl-apply-existing", 1).await;

    let first = declare(&[
        format!("{existing} 1 3600000"),
        format!("{a} 2 3600000"),
        format!("{b} 1 -1 compact"),
    ]);
    let report = topics::apply(&cluster, &first, false).await.unwrap();
    assert_eq!(
        report.topics,
        vec![
            TopicChange::Unchanged {
                topic: existing.clone()
            },
            TopicChange::Created {
                topic: a.clone(),
                partitions: 2,
                retention_ms: 3_600_000,
                cleanup_policy: "delete".into()
            },
            TopicChange::Created {
                topic: b.clone(),
                partitions: 1,
                retention_ms: -1,
                cleanup_policy: "compact".into()
            },
        ]
    );
    assert_eq!(cluster.partition_count(&a).unwrap(), Some(2));
    assert_eq!(
        config(&b, "cleanup.policy").await.as_deref(),
        Some("compact")
    );

    // A setting tuned by hand, which a later apply must keep.
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    admin()
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(&a))
                .set("retention.ms", "3600000")
                .set("cleanup.policy", "delete")
                .set("max.message.bytes", "2000000")],
            &opts,
        )
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();

    let second = declare(&[format!("{a} 4 7200000"), format!("{b} 1 -1 delete,compact")]);
    let planned = topics::apply(&cluster, &second, true).await.unwrap();
    assert!(planned.dry_run);
    assert_eq!(
        cluster.partition_count(&a).unwrap(),
        Some(2),
        "a dry run changes nothing"
    );

    let report = topics::apply(&cluster, &second, false).await.unwrap();
    assert_eq!(report.topics, planned.topics);
    assert_eq!(
        report.topics,
        vec![
            TopicChange::Updated {
                topic: a.clone(),
                partitions: Some((2, 4)),
                configs: vec![ConfigChange {
                    name: "retention.ms".into(),
                    from: Some("3600000".into()),
                    to: "7200000".into()
                }],
            },
            TopicChange::Updated {
                topic: b.clone(),
                partitions: None,
                configs: vec![ConfigChange {
                    name: "cleanup.policy".into(),
                    from: Some("compact".into()),
                    to: "compact,delete".into()
                }],
            },
        ]
    );
    assert_eq!(cluster.partition_count(&a).unwrap(), Some(4));
    assert_eq!(config(&a, "retention.ms").await.as_deref(), Some("7200000"));
    assert_eq!(
        config(&a, "max.message.bytes").await.as_deref(),
        Some("2000000"),
        "settings the file does not declare are kept"
    );
    assert_eq!(config(&b, "retention.ms").await.as_deref(), Some("-1"));

    let again = topics::apply(&cluster, &second, false).await.unwrap();
    assert_eq!(
        again.topics,
        vec![
            TopicChange::Unchanged { topic: a.clone() },
            TopicChange::Unchanged { topic: b.clone() },
        ]
    );
    assert!(again.to_string().contains("unchanged"));

    let shrink = declare(&[format!("{a} 3 7200000"), format!("{c} 1 3600000")]);
    let err = topics::apply(&cluster, &shrink, false).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("cannot lower"), "{message}");
    assert!(
        message.contains(&format!("{a} has 4 partitions, the file declares 3")),
        "{message}"
    );
    assert_eq!(cluster.partition_count(&a).unwrap(), Some(4));
    assert_eq!(
        cluster.partition_count(&c).unwrap(),
        None,
        "a refused apply creates nothing"
    );
}
