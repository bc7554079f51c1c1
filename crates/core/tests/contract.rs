//! The back office's contract, `docs/asyncapi.yaml`, against the repository: the topics of
//! `deploy/topics.txt` with their partitions, retention and cleanup policy, the Avro files of
//! `schemas/`, and the Kafka header names the runtime and the producers write. The document's
//! own validity is checked by `scripts/check-asyncapi.sh` with the AsyncAPI CLI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn document() -> Value {
    let text = std::fs::read_to_string(repo().join("docs/asyncapi.yaml")).unwrap();
    serde_norway::from_str(&text).expect("docs/asyncapi.yaml is YAML")
}

/// Follows a local `$ref` (`#/components/...`); any other value is returned as it is.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) if pointer.starts_with('#') => doc
            .pointer(&pointer[1..])
            .unwrap_or_else(|| panic!("$ref {pointer} points nowhere")),
        _ => value,
    }
}

/// A topic as a Kafka cluster should have it.
#[derive(Debug, PartialEq, Eq)]
struct Topic {
    partitions: u64,
    retention_ms: i64,
    cleanup_policy: Vec<String>,
}

/// `deploy/topics.txt`: `<name> <partitions> <retention_ms> [<cleanup_policy>]` per line, `#`
/// comments, `delete` when the policy is left out.
fn declared_topics() -> BTreeMap<String, Topic> {
    let text = std::fs::read_to_string(repo().join("deploy/topics.txt")).unwrap();
    let mut topics = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        assert!(
            (3..=4).contains(&fields.len()),
            "deploy/topics.txt: malformed line {line:?}"
        );
        let topic = Topic {
            partitions: fields[1].parse().unwrap(),
            retention_ms: fields[2].parse().unwrap(),
            cleanup_policy: fields
                .get(3)
                .unwrap_or(&"delete")
                .split(',')
                .map(str::to_string)
                .collect(),
        };
        topics.insert(fields[0].to_string(), topic);
    }
    topics
}

/// Every topic the document describes: each channel's address, with each parameter expanded
/// to every value its `enum` allows, and the channel's Kafka binding.
fn documented_topics(doc: &Value) -> BTreeMap<String, Topic> {
    let mut topics = BTreeMap::new();
    for (id, channel) in doc["channels"].as_object().expect("channels") {
        let address = channel["address"]
            .as_str()
            .expect("a channel has an address");
        let mut addresses = vec![address.to_string()];
        for (name, parameter) in channel["parameters"].as_object().into_iter().flatten() {
            let values = resolve(doc, parameter)["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("channel {id}: parameter {name} has no enum"));
            addresses = addresses
                .iter()
                .flat_map(|a| {
                    values.iter().map(move |v| {
                        a.replace(&format!("{{{name}}}"), v.as_str().expect("a string value"))
                    })
                })
                .collect();
        }
        let kafka = &channel["bindings"]["kafka"];
        let config = &kafka["topicConfiguration"];
        for address in addresses {
            assert!(
                !address.contains('{'),
                "channel {id}: {address} has an unknown parameter"
            );
            if let Some(topic) = kafka["topic"].as_str() {
                assert_eq!(
                    topic, address,
                    "channel {id}: binding topic and address differ"
                );
            }
            let topic = Topic {
                partitions: kafka["partitions"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("channel {id}: no kafka partitions")),
                retention_ms: config["retention.ms"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("channel {id}: no retention.ms")),
                cleanup_policy: config["cleanup.policy"]
                    .as_array()
                    .unwrap_or_else(|| panic!("channel {id}: no cleanup.policy"))
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
                    .collect(),
            };
            assert!(
                topics.insert(address.clone(), topic).is_none(),
                "{address} is described twice"
            );
        }
    }
    topics
}

#[test]
fn every_declared_topic_is_documented_as_deployed() {
    let doc = document();
    let declared = declared_topics();
    let documented = documented_topics(&doc);
    assert!(declared.contains_key("orders.placed") && declared.contains_key("orders.dispatched"));
    let only_declared: Vec<&String> = declared
        .keys()
        .filter(|t| !documented.contains_key(*t))
        .collect();
    let only_documented: Vec<&String> = documented
        .keys()
        .filter(|t| !declared.contains_key(*t))
        .collect();
    assert!(
        only_declared.is_empty() && only_documented.is_empty(),
        "topics in deploy/topics.txt but not in docs/asyncapi.yaml: {only_declared:?}; \
         in docs/asyncapi.yaml but not in deploy/topics.txt: {only_documented:?}"
    );
    for (name, topic) in &declared {
        assert_eq!(
            &documented[name], topic,
            "{name}: docs/asyncapi.yaml (left) disagrees with deploy/topics.txt (right)"
        );
    }
}

#[test]
fn the_consumers_of_orders_placed_are_the_groups_with_dead_letters() {
    let doc = document();
    let groups: BTreeSet<&str> = doc["operations"]["consumeOrderPlaced"]["bindings"]["kafka"]
        ["groupId"]["enum"]
        .as_array()
        .expect("consumeOrderPlaced names its groups")
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    let with_dead_letters: BTreeSet<String> = declared_topics()
        .into_keys()
        .filter_map(|t| {
            t.strip_prefix("orders.placed.")?
                .strip_suffix(".dlq")
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        groups,
        with_dead_letters.iter().map(String::as_str).collect(),
        "the groups consuming orders.placed in docs/asyncapi.yaml and the groups with a \
         dead-letter topic in deploy/topics.txt"
    );
}

/// Every `$ref` to a file, anywhere in `value`.
fn file_refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("$ref", Some(target)) if !target.starts_with('#') => found.push(target),
                    _ => file_refs(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| file_refs(v, found)),
        _ => {}
    }
}

#[test]
fn every_schema_reference_is_a_file_of_schemas_that_parses_as_avro() {
    let doc = document();
    let docs_dir = repo().join("docs");
    let mut refs = Vec::new();
    file_refs(&doc, &mut refs);
    let mut referenced = BTreeSet::new();
    for target in refs {
        let path = docs_dir.join(target);
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("$ref {target}: {}: {e}", path.display()));
        Schema::parse_str(&source).unwrap_or_else(|e| panic!("$ref {target} is not Avro: {e}"));
        referenced.insert(path.canonicalize().unwrap());
    }
    // Each payload is Avro, declared as such.
    for (name, message) in doc["components"]["messages"].as_object().unwrap() {
        let payload = &message["payload"];
        assert_eq!(
            payload["schemaFormat"], "application/vnd.apache.avro;version=1.9.0",
            "message {name}"
        );
        assert!(
            payload["schema"]["$ref"].is_string(),
            "message {name}: the payload refers to a file of schemas/"
        );
    }
    // And every version of every event is in the contract, since any may be on a topic.
    for folder in std::fs::read_dir(repo().join("schemas")).unwrap() {
        for file in std::fs::read_dir(folder.unwrap().path()).unwrap() {
            let path = file.unwrap().path().canonicalize().unwrap();
            assert!(
                referenced.contains(&path),
                "{} is not referenced by docs/asyncapi.yaml",
                path.display()
            );
        }
    }
}

/// The names of the headers a message's schema documents, through `allOf` and `$ref`s.
fn header_names(doc: &Value, schema: &Value, names: &mut BTreeSet<String>) {
    let schema = resolve(doc, schema);
    for name in schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        names.insert(name.clone());
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        header_names(doc, part, names);
    }
}

#[test]
fn every_header_the_services_write_is_documented() {
    let doc = document();
    let mut documented = BTreeSet::new();
    for message in doc["components"]["messages"].as_object().unwrap().values() {
        header_names(&doc, &message["headers"], &mut documented);
    }
    // The runtime's and orderflowctl's headers: every constant of orderflow_core::headers, read
    // from the source so a header added there must be documented too.
    let source = include_str!("../src/headers.rs");
    let runtime: Vec<&str> = source
        .lines()
        .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \""))
        .map(|l| l.split('"').nth(1).unwrap())
        .collect();
    for known in [
        orderflow_core::headers::REASON,
        orderflow_core::headers::ORIGIN_OFFSET,
        orderflow_core::headers::RETRY_NOT_BEFORE,
        orderflow_core::headers::OPERATOR_ACTION,
    ] {
        assert!(
            runtime.contains(&known),
            "{known} not read from headers.rs: {runtime:?}"
        );
    }
    // Written by the producers: the trace context (telemetry's W3C propagator), checkout's
    // relay (content type, outbox row) and supplier-dispatch (content type, event id).
    let producers = [
        "traceparent",
        "tracestate",
        "content-type",
        "x-outbox-id",
        "event-id",
    ];
    let missing: Vec<&&str> = runtime
        .iter()
        .chain(&producers)
        .filter(|h| !documented.contains(**h))
        .collect();
    assert!(
        missing.is_empty(),
        "headers not documented in docs/asyncapi.yaml: {missing:?}"
    );
}

#[test]
fn every_message_is_keyed_by_the_order_id() {
    let doc = document();
    for (name, message) in doc["components"]["messages"].as_object().unwrap() {
        let from_traits = message["traits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| &resolve(&doc, t)["bindings"]["kafka"]["key"]);
        let key = std::iter::once(&message["bindings"]["kafka"]["key"])
            .chain(from_traits)
            .find(|k| !k.is_null())
            .unwrap_or_else(|| panic!("message {name} has no kafka key"));
        assert_eq!(key["type"], "string", "message {name}");
        assert!(
            key["description"]
                .as_str()
                .unwrap_or_default()
                .contains("order id"),
            "message {name}: the key is described as the order id"
        );
    }
}
