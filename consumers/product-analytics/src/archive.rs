//! Where the Parquet files go: a local folder (the default) or an S3 bucket, both through
//! `object_store`, whose `put` is atomic (a temporary file renamed into place, or one S3 PUT), so a
//! reader never sees half a file. Paths are deterministic per batch and date, so writing a batch
//! again after a crash replaces a file with the same content instead of adding a second copy.

use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chrono::NaiveDate;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutOptions, PutPayload};

/// The folder, under the archive root, of the sold-lines data set.
pub const DATA_SET: &str = "sold_lines";

/// `ORDERFLOW_ANALYTICS_ARCHIVE_URL`: a folder (`./analytics-archive`, `/data/archive`,
/// `file:///data/archive`) or `s3://bucket[/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveUrl {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl FromStr for ArchiveUrl {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket name, as in s3://bucket/prefix".into());
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some(path) = value.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err("a file:// URL needs an absolute path, as in file:///data".into());
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if value.contains("://") {
            return Err("expected a folder, a file:/// URL or s3://bucket/prefix".into());
        }
        Ok(Self::Local(PathBuf::from(value)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot create the archive folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("archive store: {0}")]
    Store(#[from] object_store::Error),
}

/// An opened archive.
#[derive(Debug, Clone)]
pub struct Archive {
    store: Arc<dyn ObjectStore>,
    /// The key prefix inside the store (the S3 prefix; empty for a folder, which is the root).
    prefix: String,
    /// The folder, for a local archive.
    folder: Option<PathBuf>,
}

impl Archive {
    /// Opens the archive; a local folder is created if missing. S3 settings (credentials,
    /// region, endpoint) come from the standard `AWS_*` variables; nothing is contacted yet.
    pub fn open(url: &ArchiveUrl) -> Result<Self, ArchiveError> {
        match url {
            ArchiveUrl::Local(folder) => {
                std::fs::create_dir_all(folder).map_err(|source| ArchiveError::Folder {
                    path: folder.clone(),
                    source,
                })?;
                // fsync: a batch is marked written only after its files are durable.
                let store = LocalFileSystem::new_with_prefix(folder)?.with_fsync(true);
                Ok(Self {
                    store: Arc::new(store),
                    prefix: String::new(),
                    folder: Some(folder.clone()),
                })
            }
            ArchiveUrl::S3 { bucket, prefix } => {
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()?;
                Ok(Self {
                    store: Arc::new(store),
                    prefix: prefix.clone(),
                    folder: None,
                })
            }
        }
    }

    /// Where a batch's lines of one day go, relative to the archive root:
    /// `sold_lines/date=YYYY-MM-DD/batch-<id, 12 digits>.parquet`.
    pub fn file_name(date: NaiveDate, batch_id: i64) -> String {
        format!(
            "{DATA_SET}/date={}/batch-{batch_id:012}.parquet",
            date.format("%Y-%m-%d")
        )
    }

    /// Stores a file at `name` (from [`Archive::file_name`]), replacing what is there.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        let key = if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        };
        self.store
            .put_opts(&key, PutPayload::from(bytes), PutOptions::default())
            .await?;
        Ok(())
    }

    /// Deletes the temporary files (`<name>#<n>`) that a local write killed halfway leaves next
    /// to the real ones: Spark and pandas would try to read them as data. Returns how many.
    /// Another instance writing into the same folder at this moment loses its temporary file,
    /// fails its write and writes the batch again on its next cycle.
    pub fn remove_interrupted_writes(&self) -> std::io::Result<usize> {
        match &self.folder {
            Some(folder) => remove_staged_files(&folder.join(DATA_SET)),
            None => Ok(0),
        }
    }
}

impl std::fmt::Display for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.folder {
            Some(folder) => write!(f, "{}", folder.display()),
            None => write!(f, "{} (prefix {:?})", self.store, self.prefix),
        }
    }
}

fn remove_staged_files(dir: &FsPath) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            removed += remove_staged_files(&path)?;
        } else if is_staged_upload(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// `object_store`'s local temporary files are the final name plus `#` and a number.
fn is_staged_upload(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_urls_are_folders_file_urls_or_s3() {
        assert_eq!(
            "./analytics-archive".parse(),
            Ok(ArchiveUrl::Local("./analytics-archive".into()))
        );
        assert_eq!(
            "file:///data/archive".parse(),
            Ok(ArchiveUrl::Local("/data/archive".into()))
        );
        assert_eq!(
            "s3://marketing/orderflow/archive/".parse(),
            Ok(ArchiveUrl::S3 {
                bucket: "marketing".into(),
                prefix: "orderflow/archive".into()
            })
        );
        assert_eq!(
            "s3://marketing".parse(),
            Ok(ArchiveUrl::S3 {
                bucket: "marketing".into(),
                prefix: String::new()
            })
        );
        assert!("s3:///prefix".parse::<ArchiveUrl>().is_err());
        assert!("file://relative".parse::<ArchiveUrl>().is_err());
        assert!("gs://bucket".parse::<ArchiveUrl>().is_err());
    }

    #[test]
    fn an_s3_archive_opens_without_contacting_s3() {
        let url = "s3://marketing/orderflow".parse().unwrap();
        let archive = Archive::open(&url).unwrap();
        assert!(archive.to_string().contains("marketing"), "{archive}");
        assert_eq!(archive.remove_interrupted_writes().unwrap(), 0);
    }

    #[test]
    fn file_names_are_hive_partitions_with_padded_batch_ids() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        assert_eq!(
            Archive::file_name(date, 42),
            "sold_lines/date=2026-03-07/batch-000000000042.parquet"
        );
    }

    #[test]
    fn only_numbered_temporary_files_count_as_interrupted_writes() {
        assert!(is_staged_upload("batch-000000000001.parquet#1"));
        assert!(is_staged_upload("batch-000000000001.parquet#12"));
        assert!(!is_staged_upload("batch-000000000001.parquet"));
        assert!(!is_staged_upload("notes#draft"));
        assert!(!is_staged_upload("x#"));
    }
}
