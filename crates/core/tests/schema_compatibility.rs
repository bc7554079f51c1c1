//! The compatibility gate: every schema version in `schemas/` reads data written with every
//! earlier version of its event (backward compatibility, so consumers upgraded to the newest
//! schema still read what is on the topics), every file there is a version of one of the
//! codec's schema families, so no version can be published that the decoders do not know, and
//! no published version changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use orderflow_core::codec::fingerprint_of;
use orderflow_core::event::SCHEMA_FAMILIES;

/// One folder of `schemas/`: its versions, oldest first, as parsed from the files.
struct Folder {
    name: String,
    versions: Vec<Schema>,
}

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

/// Every folder of `schemas/` with its `v1.avsc`, `v2.avsc`, ... in version order. Any other file,
/// a gap in the numbering or a file that is not valid Avro fails the test.
fn folders() -> Vec<Folder> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(schemas_dir()).expect("schemas/ is readable") {
        let path = entry.unwrap().path();
        assert!(path.is_dir(), "{} is not a schema folder", path.display());
        let mut versions = BTreeMap::new();
        for file in std::fs::read_dir(&path).unwrap() {
            let file = file.unwrap().path();
            let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
            let version: usize = file_name
                .strip_prefix('v')
                .and_then(|rest| rest.strip_suffix(".avsc"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{} is not named v<N>.avsc", file.display()));
            let source = std::fs::read_to_string(&file).unwrap();
            let schema = Schema::parse_str(&source)
                .unwrap_or_else(|e| panic!("{} is not valid Avro: {e}", file.display()));
            versions.insert(version, schema);
        }
        let numbers: Vec<usize> = versions.keys().copied().collect();
        let expected: Vec<usize> = (1..=versions.len()).collect();
        assert_eq!(
            numbers,
            expected,
            "{}: versions must be v1.avsc, v2.avsc, ... without gaps",
            path.display()
        );
        folders.push(Folder {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            versions: versions.into_values().collect(),
        });
    }
    folders.sort_by(|a, b| a.name.cmp(&b.name));
    folders
}

/// The gate itself: why some version cannot read data written with an earlier one, for every
/// such pair (`versions` oldest first). Every earlier version, not only the one before: Avro
/// compatibility is not transitive (a field removed in v2 and added back with another type in
/// v3 passes both adjacent checks, and v3 still cannot read v1).
fn incompatibilities(versions: &[Schema]) -> Vec<String> {
    let mut found = Vec::new();
    for (r, reader) in versions.iter().enumerate() {
        for (w, writer) in versions[..r].iter().enumerate() {
            if let Err(e) = SchemaCompatibility::can_read(writer, reader) {
                found.push(format!(
                    "v{} cannot read data written with v{}: {e}",
                    r + 1,
                    w + 1
                ));
            }
        }
    }
    found
}

#[test]
fn every_version_reads_data_written_with_every_earlier_one() {
    let folders = folders();
    assert!(
        folders.iter().any(|f| f.versions.len() > 1),
        "no event has two versions: the gate would check nothing"
    );
    let mut problems = Vec::new();
    for folder in &folders {
        problems.extend(
            incompatibilities(&folder.versions)
                .into_iter()
                .map(|p| format!("schemas/{}: {p}", folder.name)),
        );
    }
    assert!(
        problems.is_empty(),
        "schema changes that are not backward compatible (add fields with defaults, remove only \
         fields that had defaults, never rename a field nor change a type):\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_schema_file_is_a_version_of_a_codec_family() {
    let folders = folders();
    let mut unmatched: Vec<&Folder> = folders.iter().collect();
    for family in SCHEMA_FAMILIES {
        let declared: Vec<[u8; 8]> = family.versions().iter().map(|v| v.fingerprint).collect();
        // A family is its folder's when their first versions are the same schema.
        let position = unmatched
            .iter()
            .position(|f| fingerprint_of(&f.versions[0]) == declared[0])
            .unwrap_or_else(|| {
                panic!(
                    "the codec's {} family has no folder in schemas/ whose v1.avsc is its first version",
                    family.name()
                )
            });
        let folder = unmatched.remove(position);
        let on_disk: Vec<[u8; 8]> = folder.versions.iter().map(fingerprint_of).collect();
        assert_eq!(
            on_disk,
            declared,
            "schemas/{} has {} versions, the codec's {} family lists {} (or they differ): list \
             every file, oldest first, in crates/core/src/event.rs",
            folder.name,
            on_disk.len(),
            family.name(),
            declared.len()
        );
    }
    let left: Vec<&str> = unmatched.iter().map(|f| f.name.as_str()).collect();
    assert!(
        left.is_empty(),
        "schemas/{left:?} belong to no schema family of the codec: declare them in \
         crates/core/src/event.rs and list them in SCHEMA_FAMILIES"
    );
}

/// Every published schema version with the fingerprint written before each of its messages (hex,
/// in wire order). Messages written with a version stay on the topics, and readers know it by
/// that fingerprint, so a published file never changes in a way that changes it: change an event
/// by adding a version, and add the version's line here. Editing a `doc` does not change it.
const PUBLISHED: &[(&str, &str)] = &[
    ("order_dispatched/v1.avsc", "b173c3bb424098ac"),
    ("order_placed/v1.avsc", "a14c753a8d0c10bb"),
    ("order_placed/v2.avsc", "230d0262c8444b75"),
];

#[test]
fn published_versions_never_change_and_new_ones_are_pinned() {
    let hex = |f: [u8; 8]| f.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let on_disk: BTreeMap<String, String> = folders()
        .iter()
        .flat_map(|folder| {
            folder.versions.iter().enumerate().map(|(i, schema)| {
                (
                    format!("{}/v{}.avsc", folder.name, i + 1),
                    hex(fingerprint_of(schema)),
                )
            })
        })
        .collect();
    let mut problems = Vec::new();
    for (file, pinned) in PUBLISHED {
        match on_disk.get(*file) {
            None => problems.push(format!(
                "schemas/{file} was published and is gone: messages written with it are still \
                 on the topics"
            )),
            Some(now) if now != pinned => problems.push(format!(
                "schemas/{file} was published with fingerprint {pinned} and now has {now}: a \
                 published version never changes; make the change a new version"
            )),
            Some(_) => {}
        }
    }
    for (file, now) in &on_disk {
        if !PUBLISHED.iter().any(|(pinned, _)| pinned == file) {
            problems.push(format!(
                "schemas/{file} is not pinned: add (\"{file}\", \"{now}\") to PUBLISHED"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Versions of a made-up event: v1, then `v2_fields` as the whole field list of v2.
fn made_up_family(v2_fields: &str) -> Vec<Schema> {
    let record =
        |fields: &str| format!(r#"{{"type": "record", "name": "Made", "fields": [{fields}]}}"#);
    let v1 = r#"{"name": "order_id", "type": "string"}, {"name": "note", "type": ["null", "string"], "default": null}"#;
    vec![
        Schema::parse_str(&record(v1)).unwrap(),
        Schema::parse_str(&record(v2_fields)).unwrap(),
    ]
}

#[test]
fn the_gate_refuses_changes_that_break_old_data_and_allows_the_ones_that_do_not() {
    // A new field without a default: v2 has nothing to fill it with when reading v1 data.
    let added_required = made_up_family(
        r#"{"name": "order_id", "type": "string"}, {"name": "note", "type": ["null", "string"], "default": null}, {"name": "total", "type": "long"}"#,
    );
    let found = incompatibilities(&added_required);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("v2 cannot read data written with v1"),
        "{found:?}"
    );

    // A type changed from string to long.
    let retyped = made_up_family(
        r#"{"name": "order_id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": null}"#,
    );
    assert_eq!(incompatibilities(&retyped).len(), 1);

    // A renamed field is a new field without a default.
    let renamed = made_up_family(
        r#"{"name": "order_ref", "type": "string"}, {"name": "note", "type": ["null", "string"], "default": null}"#,
    );
    assert_eq!(incompatibilities(&renamed).len(), 1);

    // Allowed: a new field with a default, and removing a field that had one.
    let compatible = made_up_family(
        r#"{"name": "order_id", "type": "string"}, {"name": "gift", "type": ["null", "string"], "default": null}"#,
    );
    assert_eq!(incompatibilities(&compatible), Vec::<String>::new());
}

#[test]
fn the_gate_compares_every_earlier_version_not_only_the_previous_one() {
    let record =
        |fields: &str| format!(r#"{{"type": "record", "name": "Made", "fields": [{fields}]}}"#);
    let parse = |fields: &str| Schema::parse_str(&record(fields)).unwrap();
    // v2 drops `code` (it had a default); v3 adds it back as a long with a default. Each step
    // is compatible, but v3 cannot read the string `code` that v1 wrote.
    let versions = [
        parse(
            r#"{"name": "id", "type": "string"}, {"name": "code", "type": "string", "default": ""}"#,
        ),
        parse(r#"{"name": "id", "type": "string"}"#),
        parse(
            r#"{"name": "id", "type": "string"}, {"name": "code", "type": "long", "default": 0}"#,
        ),
    ];
    let found = incompatibilities(&versions);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("v3 cannot read data written with v1"),
        "{found:?}"
    );
}
