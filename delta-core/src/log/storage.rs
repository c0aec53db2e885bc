//! Storage: where a table lives, its log store, and the one path resolver.
//!
//! [`TableLocation`] pairs an [`ObjectStore`] with the table root. Every path the log names (data
//! files, deletion vectors, change data, sidecars) goes through [`TableLocation::resolve`], which
//! percent-decodes, normalises (`.`/`..`, `file:` spellings) and refuses anything outside the table
//! root unless [`TableOptions::allowed_external_prefixes`] lists it.
//!
//! # Contract of the log store
//! * A version becomes visible only by `put_if_absent(_delta_log/<v>.json)`. On stores other
//!   than the local file system and memory, the first `put_if_absent` of a location probes
//!   that the store refuses a second conditional create of one object, and refuses to commit
//!   otherwise ([`crate::DeltaError::UnsafeStore`]); a probe object whose delete failed is left
//!   in `_delta_log` under a name no reader takes for a log file.
//! * Reads of log files are bounded by [`TableOptions::max_commit_bytes`].
//! * Listing returns log files in lexicographic (= version) order.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{DeltaError, DeltaResult, PathKind};

/// Options for opening a table. `Debug` never prints storage option values (they may be secrets).
#[derive(Clone)]
pub struct TableOptions {
    /// Options passed to the object store builder (credentials, endpoints …).
    pub storage_options: Vec<(String, String)>,
    /// URL prefixes outside the table root that the log may name (e.g. shallow clones).
    pub allowed_external_prefixes: Vec<Url>,
    /// Largest commit (or checkpoint JSON) file read, in bytes.
    pub max_commit_bytes: u64,
    /// Most actions accepted from one commit file.
    pub max_actions_per_commit: u64,
    /// Files read concurrently by scans and replay.
    pub io_concurrency: usize,
    /// Refuse a snapshot whose `.crc` file disagrees with the replayed state. Off by default, as
    /// in delta-spark: the mismatch is recorded on the snapshot ([`crate::read::snapshot::Snapshot::checksum_mismatch`]).
    pub strict_checksums: bool,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            storage_options: Vec::new(),
            allowed_external_prefixes: Vec::new(),
            max_commit_bytes: 1 << 30,
            max_actions_per_commit: 50_000_000,
            io_concurrency: 16,
            strict_checksums: false,
        }
    }
}

impl fmt::Debug for TableOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.storage_options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TableOptions")
            .field("storage_option_keys", &keys)
            .field("allowed_external_prefixes", &self.allowed_external_prefixes)
            .field("max_commit_bytes", &self.max_commit_bytes)
            .field("max_actions_per_commit", &self.max_actions_per_commit)
            .field("io_concurrency", &self.io_concurrency)
            .finish()
    }
}

/// A resolved path: the canonical URL (the replay key) and the object-store path to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    pub url: Url,
    pub store_path: Path,
}

/// Where a table lives: store + root.
#[derive(Clone)]
pub struct TableLocation {
    store: Arc<dyn ObjectStore>,
    /// Root URL with a trailing slash.
    root_url: Url,
    /// Root as an object-store path.
    root: Path,
    options: Arc<TableOptions>,
    /// The local directory of `_delta_log` when the store is this machine's file system: listing
    /// reads the directory and stats only the entries it keeps (object_store's local listing
    /// stats every entry, which dominates snapshot loads of long logs).
    local_log_dir: Option<std::path::PathBuf>,
    /// Whether the store was seen to refuse a second conditional create (checked once, before
    /// the first commit, on stores other than the local file system and memory).
    conditional_put_checked: Arc<tokio::sync::OnceCell<()>>,
}

impl fmt::Debug for TableLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableLocation").field("root_url", &self.root_url.as_str()).field("options", &self.options).finish()
    }
}

/// Turns a user-supplied location (a local path or a URL) into a URL with a trailing slash.
pub fn location_url(location: &str) -> DeltaResult<Url> {
    let invalid = |reason: String| DeltaError::InvalidLocation { location: location.to_string(), reason };
    let has_scheme = location
        .split_once(':')
        .is_some_and(|(scheme, _)| scheme.len() > 1 && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
    let mut url = if has_scheme {
        Url::parse(location).map_err(|e| invalid(e.to_string()))?
    } else {
        let path = std::path::Path::new(location);
        let abs =
            if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().map_err(|e| invalid(e.to_string()))?.join(path) };
        let abs = std::fs::canonicalize(&abs).unwrap_or(abs);
        Url::from_directory_path(&abs).map_err(|_| invalid("not an absolute path".into()))?
    };
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

impl TableLocation {
    /// Opens a location: a local path, `file://`, `memory://` or any URL object_store understands.
    pub fn open(location: &str, options: TableOptions) -> DeltaResult<Self> {
        let root_url = location_url(location)?;
        let local_log_dir = if root_url.scheme() == "file" { root_url.to_file_path().ok().map(|p| p.join("_delta_log")) } else { None };
        let (store, root): (Arc<dyn ObjectStore>, Path) = if root_url.scheme() == "file" {
            // fsync on: a commit that returned must survive a machine crash.
            let store = LocalFileSystem::new().with_fsync(true);
            let root = Path::from_url_path(root_url.path())
                .map_err(|e| DeltaError::InvalidLocation { location: location.to_string(), reason: e.to_string() })?;
            (Arc::new(store), root)
        } else {
            cloud_store(&root_url, &options.storage_options).map_err(|reason| DeltaError::InvalidLocation { location: location.to_string(), reason })?
        };
        Ok(TableLocation { store, root_url, root, options: Arc::new(options), local_log_dir, conditional_put_checked: Default::default() })
    }

    /// A location over an existing store whose paths are relative to `root` (used with in-memory and
    /// fault-injecting stores in tests). `root_url` names it in errors and canonical paths.
    pub fn with_store(store: Arc<dyn ObjectStore>, root_url: Url, root: Path, options: TableOptions) -> Self {
        TableLocation { store, root_url, root, options: Arc::new(options), local_log_dir: None, conditional_put_checked: Default::default() }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn root_url(&self) -> &Url {
        &self.root_url
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn options(&self) -> &TableOptions {
        &self.options
    }

    /// The object path of `_delta_log/<name>`.
    pub fn log_path(&self, name: &str) -> Path {
        self.root.clone().join("_delta_log").join(name)
    }

    /// The `_delta_log` prefix.
    pub fn log_dir(&self) -> Path {
        self.root.clone().join("_delta_log")
    }

    /// Canonicalises a path named by the log (a URI-encoded relative path, an absolute path or a
    /// URL) without checking confinement. Used as the identity of files in log replay, so that
    /// `/p`, `file:/p` and `file:///p` are the same file.
    pub fn canonical_url(&self, kind: PathKind, raw: &str) -> DeltaResult<Url> {
        let invalid = |reason: String| DeltaError::InvalidPath { kind, path: raw.to_string(), reason };
        if raw.is_empty() {
            return Err(invalid("empty path".into()));
        }
        let has_scheme = raw
            .split_once(':')
            .is_some_and(|(s, _)| s.len() > 1 && !s.contains('/') && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
        let url = if has_scheme {
            Url::parse(raw).map_err(|e| invalid(e.to_string()))?
        } else {
            // A relative (or rooted) URI reference: it has no query or fragment, so any `?`/`#`
            // is part of the name.
            let escaped = raw.replace('?', "%3F").replace('#', "%23");
            self.root_url.join(&escaped).map_err(|e| invalid(e.to_string()))?
        };
        Ok(url)
    }

    /// Resolves a path named by the log to something readable, refusing paths outside the table
    /// root (or an allowed prefix).
    pub fn resolve(&self, kind: PathKind, raw: &str) -> DeltaResult<ResolvedPath> {
        let url = self.canonical_url(kind, raw)?;
        self.resolve_url(kind, raw, url)
    }

    /// Confinement check and conversion of a canonical URL to a store path.
    pub fn resolve_url(&self, kind: PathKind, raw: &str, url: Url) -> DeltaResult<ResolvedPath> {
        let invalid = |reason: String| DeltaError::InvalidPath { kind, path: raw.to_string(), reason };
        let same_origin =
            url.scheme() == self.root_url.scheme() && url.host_str() == self.root_url.host_str() && url.port() == self.root_url.port();
        let store_path = Path::from_url_path(url.path()).map_err(|e| invalid(e.to_string()))?;
        let inside = same_origin && url.path().starts_with(self.root_url.path());
        let allowed = inside || self.options.allowed_external_prefixes.iter().any(|p| url.as_str().starts_with(p.as_str()));
        if !allowed {
            return Err(DeltaError::PathOutsideTable { kind, path: raw.to_string() });
        }
        // Paths inside the root are addressed relative to the store's root so that stores built
        // with a prefix (in-memory, test stores) resolve too.
        let store_path = if inside {
            let rel = &url.path()[self.root_url.path().len()..];
            let rel = Path::from_url_path(rel).map_err(|e| invalid(e.to_string()))?;
            if rel.as_ref().is_empty() {
                return Err(invalid("names the table root, not a file".into()));
            }
            let mut p = self.root.clone();
            for part in rel.parts() {
                p = p.join(part);
            }
            p
        } else {
            store_path
        };
        Ok(ResolvedPath { url, store_path })
    }

    /// Lists `_delta_log`, optionally starting at `offset_name` (exclusive lower bound, as
    /// object_store defines it), sorted by name.
    pub async fn list_log(&self, offset_name: Option<&str>) -> DeltaResult<Vec<ObjectMeta>> {
        if let Some(dir) = &self.local_log_dir {
            let dir = dir.clone();
            let offset = offset_name.map(str::to_string);
            let log = self.log_dir();
            let listed = tokio::task::spawn_blocking(move || list_local(&dir, offset.as_deref(), &log))
                .await
                .map_err(|e| DeltaError::Internal(format!("listing task failed: {e}")))?;
            return listed;
        }
        let prefix = self.log_dir();
        let stream = match offset_name {
            Some(name) => self.store.list_with_offset(Some(&prefix), &self.log_path(name)),
            None => self.store.list(Some(&prefix)),
        };
        let mut files: Vec<ObjectMeta> = stream.try_collect().await?;
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(files)
    }

    /// Reads a whole object, refusing objects larger than `max_commit_bytes`.
    pub async fn read_bounded(&self, path: &Path, known_size: Option<u64>) -> DeltaResult<Bytes> {
        let limit = self.options.max_commit_bytes;
        if let Some(size) = known_size {
            if size > limit {
                return Err(DeltaError::LimitExceeded { what: "log file size", limit, actual: size });
            }
        }
        let bytes = self.store.get(path).await?.bytes().await?;
        if bytes.len() as u64 > limit {
            return Err(DeltaError::LimitExceeded { what: "log file size", limit, actual: bytes.len() as u64 });
        }
        Ok(bytes)
    }

    /// Writes `bytes` at `path` only if nothing is there: the one operation that makes a
    /// version visible. `AlreadyExists` comes back as `DeltaError::ObjectStore`.
    pub async fn put_if_absent(&self, path: &Path, bytes: Vec<u8>) -> DeltaResult<()> {
        if !matches!(self.root_url.scheme(), "file" | "memory") {
            self.conditional_put_checked.get_or_try_init(|| self.probe_conditional_put()).await?;
        }
        let opts = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
        self.store.put_opts(path, bytes.into(), opts).await?;
        Ok(())
    }

    /// Creates a probe object twice with `PutMode::Create`: a store that accepts the second create
    /// (or cannot do conditional creates at all) would let two writers both commit the same
    /// version, so it is refused before anything is committed. The probe is deleted after.
    async fn probe_conditional_put(&self) -> DeltaResult<()> {
        let path = self.log_path(&format!("_conditional_put_probe.{}", uuid::Uuid::new_v4()));
        let create = || object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
        let unsafe_store = |why: String| DeltaError::UnsafeStore { url: self.root_url.to_string(), reason: why };
        match self.store.put_opts(&path, Vec::new().into(), create()).await {
            Ok(_) => {}
            Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => {
                return Err(unsafe_store("the store cannot create an object only if it is absent".into()));
            }
            Err(e) => return Err(e.into()),
        }
        let second = self.store.put_opts(&path, Vec::new().into(), create()).await;
        let _ = self.store.delete(&path).await;
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Ok(_) => Err(unsafe_store("a second conditional create of the same object succeeded (If-None-Match is ignored)".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object: `Ok(true)` when it was deleted, `Ok(false)` when it did not exist.
    /// A delete is idempotent, so a failed attempt is tried again (three attempts, 50 ms then
    /// 200 ms apart): object_store does not retry Azure's batch-delete POST after a connection
    /// reset, and VACUUM or log cleanup should not stop half-way over one dropped connection.
    pub async fn delete(&self, path: &Path) -> DeltaResult<bool> {
        let mut wait_ms = 50;
        let mut attempt = 1;
        loop {
            match self.store.delete(path).await {
                Ok(()) => return Ok(true),
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(_) if attempt < 3 => {
                    tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
                    wait_ms *= 4;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes (or replaces) an object atomically.
    pub async fn put(&self, path: &Path, bytes: Vec<u8>) -> DeltaResult<()> {
        self.store.put(path, bytes.into()).await?;
        Ok(())
    }

    /// Reads an optional object: `None` when it does not exist.
    pub async fn read_optional(&self, path: &Path) -> DeltaResult<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Keys of other engines' storage options that mean nothing here (delta-rs's locking and rename
/// switches: commits here are conditional creates, never renames).
const IGNORED_OPTIONS: &[&str] = &["aws_s3_allow_unsafe_rename", "aws_s3_locking_provider", "dynamo_table_name", "aws_force_credential_load"];

/// The object store of a URL: `s3://` / `s3a://`, `az://` / `azure://` / `abfs[s]://` /
/// `adl://`, `gs://`, `memory://`, `http[s]://`. Configuration comes from the standard
/// environment variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`, read by the builders' `from_env`)
/// and then `options`, which win; keys are case-insensitive (`AWS_ENDPOINT_URL` and
/// `aws_endpoint_url` are one key) and an unknown key is an error naming it.
fn cloud_store(url: &Url, options: &[(String, String)]) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    // (key in lower case, key as given, value)
    let options: Vec<(String, &str, &str)> = options
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), k.as_str(), v.as_str()))
        .filter(|(k, _, _)| !IGNORED_OPTIONS.contains(&k.as_str()))
        .collect();
    let unknown = |k: &str, store: &str| format!("unknown storage option `{k}` for {store}");
    let path = Path::from_url_path(url.path()).map_err(|e| e.to_string())?;
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
            for (k, given, v) in &options {
                let key: AmazonS3ConfigKey = k.parse().map_err(|_| unknown(given, "S3"))?;
                b = b.with_config(key, *v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (k, given, v) in &options {
                let key: AzureConfigKey = k.parse().map_err(|_| unknown(given, "Azure"))?;
                b = b.with_config(key, *v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (k, given, v) in &options {
                let key: GoogleConfigKey = k.parse().map_err(|_| unknown(given, "Google Cloud Storage"))?;
                b = b.with_config(key, *v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        _ => {
            let (store, root) = object_store::parse_url_opts(url, options.iter().map(|(k, _, v)| (k.clone(), v.to_string()))).map_err(|e| e.to_string())?;
            return Ok((Arc::from(store), root));
        }
    };
    Ok((store, path))
}

/// Lists a local `_delta_log` directory: names first, then a `stat` only for names after the
/// offset. A missing directory lists as empty (as object stores do).
fn list_local(dir: &std::path::Path, offset: Option<&str>, log: &Path) -> DeltaResult<Vec<ObjectMeta>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(DeltaError::ObjectStore { source: object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) } })
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if offset.is_some_and(|o| name <= o) || name.contains('#') {
            continue;
        }
        // Entries can vanish between readdir and stat (a staged upload, a cleanup).
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let last_modified = meta.modified().map(chrono::DateTime::<chrono::Utc>::from).unwrap_or_default();
        out.push(ObjectMeta { location: log.clone().join(name), last_modified, size: meta.len(), e_tag: None, version: None });
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> TableLocation {
        TableLocation::open("file:///data/table", TableOptions::default()).unwrap()
    }

    #[test]
    fn relative_paths_are_decoded_and_confined() {
        let l = loc();
        let r = l.resolve(PathKind::Data, "a%20b/part%25x.parquet").unwrap();
        assert_eq!(r.store_path.as_ref(), "data/table/a b/part%x.parquet");
        assert!(matches!(l.resolve(PathKind::Data, "../other/x.parquet"), Err(DeltaError::PathOutsideTable { .. })));
        assert!(matches!(l.resolve(PathKind::Data, "a/%2e%2e/%2e%2e/x"), Err(DeltaError::PathOutsideTable { .. })));
        assert!(l.resolve(PathKind::Data, "/etc/passwd").is_err());
        assert!(l.resolve(PathKind::Data, "s3://bucket/x").is_err());
        assert!(l.resolve(PathKind::Data, "a%2F..%2F..%2Fx").is_err());
    }

    #[test]
    fn spellings_of_one_absolute_file_canonicalise_alike() {
        let l = loc();
        let a = l.canonical_url(PathKind::Data, "/some/with%20space/p@%23h").unwrap();
        let b = l.canonical_url(PathKind::Data, "file:/some/with%20space/p@%23h").unwrap();
        let c = l.canonical_url(PathKind::Data, "file:///some/with%20space/p@%23h").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
    }

    #[test]
    fn absolute_paths_inside_the_root_are_allowed() {
        let l = loc();
        let r = l.resolve(PathKind::Data, "file:///data/table/x.parquet").unwrap();
        assert_eq!(r.store_path.as_ref(), "data/table/x.parquet");
    }

    #[test]
    fn debug_hides_secrets() {
        let opts = TableOptions { storage_options: vec![("aws_secret_access_key".into(), "SECRET".into())], ..Default::default() };
        assert!(!format!("{opts:?}").contains("SECRET"));
    }
}
