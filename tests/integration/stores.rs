//! The commit protocol and the table operations on real object-store servers on loopback:
//! SeaweedFS and moto (S3) and Azurite (Azure Blob), which `.ci/run` starts through
//! `.ci/stores.sh` and names in `DELTA_TEST_S3_*`, `DELTA_TEST_MOTO_ENDPOINT` and
//! `AZURITE_BLOB_STORAGE_URL`. The proxy faults run on SeaweedFS and Azurite, the crash sweep
//! on SeaweedFS; moto, the slower second S3, takes the flows, the writer processes, the
//! refusal and the interop. Without them these tests say so and
//! pass, unless `CI=true`.

use std::process::Command;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::{DeltaError, Table, TableOptions};

/// A server and what reaching it takes.
pub(crate) struct Store {
    pub name: &'static str,
    /// A fresh URL prefix for this process.
    pub base: String,
    pub options: Vec<(String, String)>,
}

impl Store {
    pub fn table_options(&self) -> TableOptions {
        TableOptions { storage_options: self.options.clone(), ..Default::default() }
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    pub fn open(&self, name: &str) -> Table {
        Table::open_with(&self.url(name), self.table_options()).unwrap()
    }
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("run-{}-{nanos}", std::process::id())
}

/// The servers this run has; an empty list (with a note) when there are none outside CI.
pub(crate) fn stores() -> Vec<Store> {
    let mut out = Vec::new();
    let id = run_id();
    if let (Ok(endpoint), Ok(bucket)) = (std::env::var("DELTA_TEST_S3_ENDPOINT"), std::env::var("DELTA_TEST_S3_BUCKET")) {
        out.push(Store {
            name: "s3 (SeaweedFS)",
            base: format!("s3://{bucket}/{id}"),
            options: vec![
                ("AWS_ENDPOINT_URL".into(), endpoint),
                ("AWS_ACCESS_KEY_ID".into(), std::env::var("DELTA_TEST_S3_ACCESS_KEY_ID").unwrap_or_default()),
                ("AWS_SECRET_ACCESS_KEY".into(), std::env::var("DELTA_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_default()),
                ("AWS_REGION".into(), "us-east-1".into()),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
            ],
        });
    }
    if let (Ok(endpoint), Ok(bucket)) = (std::env::var("DELTA_TEST_MOTO_ENDPOINT"), std::env::var("DELTA_TEST_S3_BUCKET")) {
        // A second S3 implementation (moto's server), with the same keys and bucket name.
        out.push(Store {
            name: "s3 (moto)",
            base: format!("s3://{bucket}/{id}"),
            options: vec![
                ("AWS_ENDPOINT_URL".into(), endpoint),
                ("AWS_ACCESS_KEY_ID".into(), std::env::var("DELTA_TEST_S3_ACCESS_KEY_ID").unwrap_or_default()),
                ("AWS_SECRET_ACCESS_KEY".into(), std::env::var("DELTA_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_default()),
                ("AWS_REGION".into(), "us-east-1".into()),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
            ],
        });
    }
    if let (Ok(_), Ok(container)) = (std::env::var("AZURITE_BLOB_STORAGE_URL"), std::env::var("DELTA_TEST_AZURE_CONTAINER")) {
        // The emulator's well-known account; its URL comes from AZURITE_BLOB_STORAGE_URL.
        out.push(Store { name: "azure (Azurite)", base: format!("az://{container}/{id}"), options: vec![("AZURE_STORAGE_USE_EMULATOR".into(), "true".into())] });
    }
    if out.len() < 3 {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but the object-store servers are not running (.ci/run starts them with .ci/stores.sh)");
        }
        eprintln!("stores: SeaweedFS/moto/Azurite not running (.ci/stores.sh start); skipping the missing ones");
    }
    out
}

fn batch(ids: &[i64], tag: &str) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("part", DataType::Utf8, true),
        Field::new("tag", DataType::Utf8, true),
    ]));
    let parts: Vec<String> = ids.iter().map(|i| format!("p{}", i % 3)).collect();
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(parts)), Arc::new(StringArray::from(vec![tag; ids.len()]))],
    )
    .unwrap()
}

async fn ids(table: &Table) -> Vec<i64> {
    let batches = table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap();
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
        .collect();
    out.sort();
    out
}

/// The local tests' flows on each server: create, append, DELETE (deletion vectors), UPDATE,
/// MERGE, checkpoint, time travel, the change feed, OPTIMIZE, VACUUM, and SQL text.
#[tokio::test]
async fn table_flows_on_s3_and_azure() {
    for store in stores() {
        let name = store.name;
        let table = store.open("flows");
        let props = [("delta.enableDeletionVectors", "true"), ("delta.enableChangeDataFeed", "true")];
        let opts = WriteOptions {
            partition_by: Some(vec!["part".into()]),
            properties: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        table.write(vec![batch(&(0..30).collect::<Vec<_>>(), "a")], opts).await.unwrap();
        table.write(vec![batch(&(30..40).collect::<Vec<_>>(), "b")], WriteOptions::default()).await.unwrap();
        assert_eq!(ids(&table).await, (0..40).collect::<Vec<_>>(), "{name}");

        let r = table.delete(Some("id % 10 = 0")).await.unwrap();
        assert_eq!(r.metric("numDeletedRows"), 4, "{name}");
        assert!(table.snapshot().await.unwrap().has_deletion_vectors(), "{name}: DVs written to the store and read back");
        let r = table.update(Some("id < 5"), &[("tag", "'u'")]).await.unwrap();
        assert_eq!(r.metric("numUpdatedRows"), 4, "{name}");
        let source = batch(&[1, 2, 100, 101], "m");
        let r = table
            .merge(vec![source], "t.id = s.id")
            .with_target_alias("t")
            .with_source_alias("s")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
            .await
            .unwrap();
        assert_eq!((r.metric("numTargetRowsUpdated"), r.metric("numTargetRowsInserted")), (2, 2), "{name}");
        let v = table.checkpoint().await.unwrap();
        let after_checkpoint = Table::open_with(&store.url("flows"), store.table_options()).unwrap();
        assert_eq!(after_checkpoint.snapshot().await.unwrap().version(), v, "{name}: a fresh reader starts from the checkpoint");
        let expected: Vec<i64> = (0..40).filter(|i| i % 10 != 0).chain([100, 101]).collect();
        assert_eq!(ids(&after_checkpoint).await, expected, "{name}");
        let at_1 = table.snapshot_at(1).await.unwrap();
        assert_eq!(at_1.scan().build().unwrap().count().await.unwrap(), 40, "{name}: time travel");

        let changes = table.table_changes(2, None, None).await.unwrap().collect().await.unwrap();
        let change_rows: usize = changes.iter().map(|b| b.num_rows()).sum();
        // DELETE 4, UPDATE 4 pre + 4 post, MERGE 2 pre + 2 post + 2 inserts.
        assert_eq!(change_rows, 18, "{name}: change feed");

        let r = table.optimize().execute().await.unwrap();
        assert!(r.version.is_some(), "{name}: OPTIMIZE compacts");
        assert_eq!(ids(&table).await, expected, "{name}");
        let vacuum = table.vacuum().retain_hours(0.0).enforce_retention(false).dry_run(true).execute().await.unwrap();
        assert!(!vacuum.files.is_empty(), "{name}: files OPTIMIZE removed are VACUUM's");
        let vacuum = table.vacuum().retain_hours(0.0).enforce_retention(false).execute().await.unwrap();
        assert_eq!(ids(&Table::open_with(&store.url("flows"), store.table_options()).unwrap()).await, expected, "{name}: {vacuum:?}");

        // SQL text with the same options.
        let sql = format!("ALTER TABLE delta.`{}` SET TBLPROPERTIES ('owner' = 'stores')", store.url("flows"));
        delta_core::sql::execute(&sql, &store.table_options(), None).await.unwrap();
        let s = table.snapshot().await.unwrap();
        assert_eq!(s.metadata().property("owner"), Some("stores"), "{name}");
    }
}

/// A data file larger than two upload parts (8 MB each) goes up as a multipart upload (S3
/// CreateMultipartUpload / Azure Put Block List), is complete when the commit names it, and reads
/// back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_go_up_in_parts() {
    for store in stores() {
        let name = store.name;
        let table = store.open("large");
        // 3M distinct pseudo-random values: no dictionary, little compression, about 24 MB.
        let n = 3_000_000i64;
        let values: Vec<i64> = (0..n).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64)) >> 3).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.clone()))]).unwrap();
        let r = table.write(vec![batch], WriteOptions::default()).await.unwrap();
        assert_eq!((r.version, r.files_added, r.rows_written), (Some(0), 1, n as u64), "{name}");
        let fresh = Table::open_with(&store.url("large"), store.table_options()).unwrap();
        let snapshot = fresh.snapshot().await.unwrap();
        let files = snapshot.add_files().unwrap();
        assert!(files[0].size > 16 << 20, "{name}: {} bytes is not more than two parts", files[0].size);
        let batches = snapshot.scan().build().unwrap().collect().await.unwrap();
        let mut read: Vec<i64> =
            batches.iter().flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect();
        let mut want = values;
        read.sort_unstable();
        want.sort_unstable();
        assert!(read == want, "{name}: the file read back differs ({} rows)", read.len());
    }
}

/// Eight writer processes, fifty blind appends each, on a table created by one more commit:
/// exactly versions 0..=400, every row once — the store's conditional create is the only lock.
///
/// Not on moto: its server answers `If-None-Match: *` by looking the key up and then writing it,
/// with no lock between the two (moto 5.2.5, `s3/responses.py`), so two racing creates can both
/// succeed. It did once under load (version 399 of 400: one commit overwritten). SeaweedFS and
/// Azurite create atomically, as S3 and Azure do.
#[tokio::test]
async fn eight_writer_processes_append_to_one_table() {
    for store in stores().into_iter().filter(|s| s.name != "s3 (moto)") {
        let name = store.name;
        let url = store.url("writers");
        let table = store.open("writers");
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("worker", DataType::Int64, true)]));
        table.write(vec![RecordBatch::new_empty(schema)], WriteOptions { mode: SaveMode::ErrorIfExists, ..Default::default() }).await.unwrap();
        assert_eq!(table.snapshot().await.unwrap().version(), 0);
        let options: String = store.options.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let children: Vec<_> = (0..8)
            .map(|w| {
                Command::new(env!("CARGO_BIN_EXE_append-writer"))
                    .args([url.as_str(), &w.to_string(), "50"])
                    .env("DELTA_TEST_STORAGE_OPTIONS", &options)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let s = table.snapshot().await.unwrap();
        assert_eq!(s.version(), 400, "{name}");
        let history = table.history(None).await.unwrap();
        let mut versions: Vec<i64> = history.iter().map(|c| c.version).collect();
        versions.sort();
        assert_eq!(versions, (0..=400).collect::<Vec<_>>(), "{name}: every version once, no gaps");
        let expected: Vec<i64> = (0..8).flat_map(|w| (0..50).map(move |i| w * 1_000_000 + i)).collect();
        let mut expected = expected;
        expected.sort();
        assert_eq!(ids(&table).await, expected, "{name}: every row exactly once");
    }
}

/// Storage options: unknown keys are refused by name, and secrets never show in `Debug`.
#[tokio::test]
async fn storage_options_are_checked_and_kept_secret() {
    let options = TableOptions {
        storage_options: vec![
            ("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "hunter2-very-secret".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ],
        ..Default::default()
    };
    let t = Table::open_with("s3://bucket/table", options.clone()).unwrap();
    assert!(!format!("{options:?}").contains("hunter2"));
    assert!(!format!("{:?}", t.location()).contains("hunter2"));
    let bad = TableOptions { storage_options: vec![("AWS_ENDPIONT".into(), "x".into())], ..Default::default() };
    match Table::open_with("s3://bucket/table", bad) {
        Err(DeltaError::InvalidLocation { reason, .. }) => assert!(reason.contains("`AWS_ENDPIONT`"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Each scheme reaches its store's builder (no request is made until a read).
    for (url, key, value) in [
        ("s3a://bucket/t", "AWS_REGION", "us-east-1"),
        ("az://container/t", "AZURE_STORAGE_ACCOUNT_NAME", "account"),
        ("abfss://container@account.dfs.core.windows.net/t", "AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
    ] {
        let opts = TableOptions { storage_options: options.storage_options.iter().cloned().chain([(key.into(), value.into())]).filter(|(k, _)| url.starts_with('s') || !k.starts_with("AWS")).collect(), ..Default::default() };
        let t = Table::open_with(url, opts);
        assert!(t.is_ok(), "{url}: {:?}", t.err());
    }
}

/// A store that cannot refuse a second create of the same object (here: S3 with conditional
/// puts switched off) is refused at the first commit, before anything is written.
#[tokio::test]
async fn a_store_without_conditional_creates_is_refused() {
    for store in stores().into_iter().filter(|s| s.name.starts_with("s3")) {
        let mut options = store.table_options();
        options.storage_options.push(("aws_conditional_put".into(), "disabled".into()));
        let table = Table::open_with(&store.url("unsafe"), options).unwrap();
        let err = table.write(vec![batch(&[1], "x")], WriteOptions::default()).await.unwrap_err();
        assert!(matches!(err, DeltaError::UnsafeStore { .. }), "{err:?}");
        assert!(err.to_string().contains("conditional"), "{err}");
        assert!(matches!(store.open("unsafe").snapshot().await, Err(DeltaError::NotATable { .. } | DeltaError::NoCommits { .. })), "nothing committed");
    }
}

/// Tables written to S3/Azure here read identically in `deltalake` pointed at the same server,
/// and a table `deltalake` wrote there is appended to here and read back by it.
#[tokio::test]
async fn deltalake_reads_and_writes_the_same_tables_on_the_servers() {
    let Some(py) = std::env::var("DELTA_INTEROP_PYTHON").ok() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no interop Python (DELTA_INTEROP_PYTHON)");
        }
        eprintln!("stores: no interop Python; skipping");
        return;
    };
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/check_tables.py");
    for store in stores() {
        let name = store.name;
        // delta-rs's names for the same settings (it passes unknown keys on to object_store).
        let mut dl: serde_json::Map<String, serde_json::Value> =
            store.options.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        if name.starts_with("s3") {
            dl.insert("aws_conditional_put".into(), "etag".into());
        }
        let dl = serde_json::Value::Object(dl).to_string();
        let py_run = |args: &[&str]| {
            let out = Command::new(&py).arg(&script).args(args).env("DELTA_INTEROP_STORAGE_OPTIONS", &dl).output().unwrap();
            assert!(out.status.success(), "{name}: {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let ours = store.open("ours");
        ours.write(vec![batch(&(0..20).collect::<Vec<_>>(), "a")], WriteOptions { partition_by: Some(vec!["part".into()]), ..Default::default() })
            .await
            .unwrap();
        ours.delete(Some("id >= 15")).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&py_run(&["read-deltalake", &store.url("ours")])).unwrap();
        assert_eq!((v["rows"].as_i64(), v["sum_id"].as_i64()), (Some(15), Some(105)), "{name}");

        let theirs_url = store.url("theirs");
        py_run(&["make-deltalake", &theirs_url]);
        let theirs = store.open("theirs");
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true), Field::new("part", DataType::Utf8, true)]));
        let more = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![10, 20])), Arc::new(StringArray::from(vec!["x", "z"])), Arc::new(StringArray::from(vec!["x", "z"]))],
        )
        .unwrap();
        theirs.write(vec![more], WriteOptions::default()).await.unwrap();
        assert_eq!(ids(&theirs).await, vec![1, 2, 3, 10, 20], "{name}");
        let v: serde_json::Value = serde_json::from_str(&py_run(&["read-deltalake", &theirs_url])).unwrap();
        assert_eq!((v["rows"].as_i64(), v["sum_id"].as_i64()), (Some(5), Some(36)), "{name}");
    }
}

/// What the proxy does to the next request it is armed for.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    /// Forward a commit PUT (`_delta_log/<version>.json`), then close the client's connection
    /// without its reply: the commit happened, the writer never heard.
    DropCommitReply,
    /// Forward a commit PUT and never answer: the writer times out.
    StallCommitReply,
    /// Forward half of a data file's PUT body, then reset both connections.
    ResetDataUpload,
    /// Until disarmed: forward every conditional PUT (`If-None-Match`), and answer one the
    /// server refused as a failed precondition (412, or Azure's 409) with `200 OK`, as a
    /// store that ignores the condition would.
    AcceptConflictingCreate,
}

/// An HTTP/1.1 proxy on loopback between a writer and an object-store server, one thread per
/// connection, which injects one armed [`Fault`].
struct Proxy {
    port: u16,
    armed: Arc<std::sync::Mutex<Option<Fault>>>,
    fired: Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed: Arc<std::sync::Mutex<Option<Fault>>> = Arc::default();
        let fired: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (a, f) = (armed.clone(), fired.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let (a, f) = (a.clone(), f.clone());
                std::thread::spawn(move || {
                    let _ = relay(client, upstream, &a, &f);
                });
            }
        });
        Proxy { port, armed, fired }
    }

    fn arm(&self, fault: Fault) {
        *self.armed.lock().unwrap() = Some(fault);
    }

    fn disarm(&self) {
        *self.armed.lock().unwrap() = None;
    }

    fn fired(&self) -> usize {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One HTTP message: its head (request or status line and headers) and its body, both raw.
fn read_message(r: &mut impl std::io::BufRead, no_body: bool) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return if head.is_empty() { Ok(None) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let header = |name: &str| text.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
    let status_without_body = text.starts_with("http/") && (text.contains(" 204 ") || text.contains(" 304 ") || text.starts_with("http/1.1 1"));
    let mut body = Vec::new();
    if no_body || status_without_body {
        return Ok(Some((head, body)));
    }
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)?;
            body.extend_from_slice(&size_line);
            let size = usize::from_str_radix(String::from_utf8_lossy(&size_line).trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some((head, body)))
}

fn relay(
    client: std::net::TcpStream,
    upstream: std::net::SocketAddr,
    armed: &std::sync::Mutex<Option<Fault>>,
    fired: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut server = std::net::TcpStream::connect(upstream)?;
    let mut from_client = std::io::BufReader::new(client.try_clone()?);
    let mut from_server = std::io::BufReader::new(server.try_clone()?);
    let mut to_client = client;
    loop {
        let Some((head, body)) = read_message(&mut from_client, false)? else { return Ok(()) };
        let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
        let path = line.split_whitespace().nth(1).unwrap_or("").split('?').next().unwrap_or("").to_string();
        let is_put = line.starts_with("PUT ");
        let file = path.rsplit('/').next().unwrap_or("");
        let is_commit = is_put && path.contains("/_delta_log/") && file.len() == 25 && file.ends_with(".json");
        let is_data = is_put && file.ends_with(".parquet") && !path.contains("/_delta_log/");
        let fault = {
            let mut a = armed.lock().unwrap();
            let hit = match *a {
                Some(Fault::DropCommitReply | Fault::StallCommitReply) => is_commit,
                Some(Fault::ResetDataUpload) => is_data && body.len() > 1,
                Some(Fault::AcceptConflictingCreate) => is_put && String::from_utf8_lossy(&head).to_ascii_lowercase().contains("\nif-none-match:"),
                None => false,
            };
            match *a {
                Some(Fault::AcceptConflictingCreate) if hit => *a,
                _ if hit => a.take(),
                _ => None,
            }
        };
        if fault == Some(Fault::ResetDataUpload) {
            fired.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            server.write_all(&head)?;
            server.write_all(&body[..body.len() / 2])?;
            let _ = server.shutdown(std::net::Shutdown::Both);
            let _ = to_client.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        server.write_all(&head)?;
        server.write_all(&body)?;
        let Some((rhead, rbody)) = read_message(&mut from_server, line.starts_with("HEAD "))? else { return Ok(()) };
        match fault {
            Some(Fault::DropCommitReply) => {
                fired.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = to_client.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
            Some(Fault::StallCommitReply) => {
                fired.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_secs(30));
                return Ok(());
            }
            Some(Fault::AcceptConflictingCreate) if rhead.starts_with(b"HTTP/1.1 412") || rhead.starts_with(b"HTTP/1.1 409") => {
                fired.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let ok = "HTTP/1.1 200 OK\r\nETag: \"0x1\"\r\nLast-Modified: Thu, 03 Dec 2026 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n";
                to_client.write_all(ok.as_bytes())?;
                continue;
            }
            _ => {}
        }
        to_client.write_all(&rhead)?;
        to_client.write_all(&rbody)?;
    }
}

/// The proxy faults, one after another, on the table at `url` opened with `options` whose
/// endpoint is already the proxy's.
async fn faults_through(proxy: &Proxy, url: &str, options: TableOptions, name: &str) {
    let table = Table::open_with(url, options.clone()).unwrap();
    // For the stalled reply: given up on after two seconds. (Only there: under a loaded CI
    // machine, large transfers through the proxy can take longer than that.)
    let mut impatient = options.clone();
    impatient.storage_options.push(("timeout".into(), "2s".into()));
    let impatient = Table::open_with(url, impatient).unwrap();
    table.write(vec![batch(&[0, 1, 2], "a")], WriteOptions::default()).await.unwrap();
    for (n, fault) in [Fault::DropCommitReply, Fault::StallCommitReply, Fault::ResetDataUpload].into_iter().enumerate() {
        proxy.arm(fault);
        let first = 10 * (n as i64 + 1);
        let writer = if fault == Fault::StallCommitReply { &impatient } else { &table };
        let r = writer.write(vec![batch(&[first, first + 1], "b")], WriteOptions::default()).await;
        let r = r.unwrap_or_else(|e| panic!("{name}: {fault:?}: {e}"));
        assert_eq!(r.version, Some(n as i64 + 1), "{name}: {fault:?}");
        assert_eq!(proxy.fired(), n + 1, "{name}: {fault:?} was injected");
    }
    // A reset in the first part of a multipart upload (a file of more than one 8 MB part).
    proxy.arm(Fault::ResetDataUpload);
    let big: Vec<i64> = (1_000..1_000 + 1_500_000).collect();
    let parts: Vec<String> = big.iter().map(|i| format!("{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64))).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("part", DataType::Utf8, true),
        Field::new("tag", DataType::Utf8, true),
    ]));
    let wide = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(big.clone())), Arc::new(StringArray::from(parts)), Arc::new(StringArray::from(vec!["big"; big.len()]))],
    )
    .unwrap();
    let r = table.write(vec![wide], WriteOptions::default()).await.unwrap_or_else(|e| panic!("{name}: multipart reset: {e}"));
    assert_eq!(r.version, Some(4), "{name}: multipart reset");
    assert_eq!(proxy.fired(), 4, "{name}: the multipart reset was injected");
    let fresh = || Table::open_with(url, options.clone()).unwrap();
    let s = fresh().snapshot().await.unwrap();
    assert_eq!(s.version(), 4, "{name}: one version per write, none twice");
    assert!(s.add_files().unwrap().iter().any(|f| f.size > 8 << 20), "{name}: the big file took more than one part");
    let mut versions: Vec<i64> = fresh().history(None).await.unwrap().iter().map(|c| c.version).collect();
    versions.sort();
    assert_eq!(versions, [0, 1, 2, 3, 4], "{name}");
    let want: Vec<i64> = [0, 1, 2, 10, 11, 20, 21, 30, 31].into_iter().chain(big).collect();
    assert_eq!(ids(&fresh()).await, want, "{name}");

    // The same server seen through a proxy that turns its refusal of a second conditional create
    // into success, as a store that ignores If-None-Match answers: a new location's first commit
    // is refused before anything is written.
    proxy.arm(Fault::AcceptConflictingCreate);
    let unsafe_url = format!("{url}-unsafe");
    let err = Table::open_with(&unsafe_url, options.clone()).unwrap().write(vec![batch(&[1], "x")], WriteOptions::default()).await.unwrap_err();
    proxy.disarm();
    match &err {
        DeltaError::UnsafeStore { reason, .. } => assert!(reason.contains("second conditional create"), "{name}: {reason}"),
        other => panic!("{name}: {other:?}"),
    }
    assert_eq!(proxy.fired(), 5, "{name}: the refusal was turned into success");
    let after = Table::open_with(&unsafe_url, options.clone()).unwrap().snapshot().await;
    assert!(matches!(after, Err(DeltaError::NotATable { .. } | DeltaError::NoCommits { .. })), "{name}: nothing committed: {after:?}");
}

/// Lost acknowledgements for real, through a proxy in front of each server: a commit PUT that
/// reached the server but whose reply was dropped or never came is resolved through the
/// commit's `txnId` as committed — never written twice —, a data upload reset half-way (a
/// single PUT, and a part of a multipart upload) is sent again, and a store that seems to ignore
/// If-None-Match is refused. Azure's half runs in a child process of this test binary
/// ([`azure_faults_through_a_proxy`]): object_store takes Azurite's address only from the
/// `AZURITE_BLOB_STORAGE_URL` variable, which the child points at its proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_acknowledgements_and_resets_through_a_proxy() {
    for store in stores().into_iter().filter(|s| !s.name.contains("moto")) {
        if store.name.starts_with("s3") {
            let endpoint = store.options.iter().find(|(k, _)| k == "AWS_ENDPOINT_URL").map(|(_, v)| v.clone()).unwrap();
            let upstream: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
            let proxy = Proxy::start(upstream);
            let mut options = store.table_options();
            for (k, v) in options.storage_options.iter_mut() {
                if k == "AWS_ENDPOINT_URL" {
                    *v = format!("http://127.0.0.1:{}", proxy.port);
                }
            }
            faults_through(&proxy, &store.url("lost-ack"), options, store.name).await;
        } else {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "stores::azure_faults_through_a_proxy", "--ignored", "--nocapture", "--test-threads=1"])
                .env("DELTA_TEST_AZURE_PROXY_URL", store.url("lost-ack"))
                .output()
                .unwrap();
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success() && said.contains("1 passed"), "{}: the child test failed:\n{said}", store.name);
        }
    }
}

/// The Azure half of [`lost_acknowledgements_and_resets_through_a_proxy`], run by it in a
/// process of its own (it sets `AZURITE_BLOB_STORAGE_URL`, which every Azure store of the
/// process would then use): ignored in the ordinary run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in its own process by lost_acknowledgements_and_resets_through_a_proxy"]
async fn azure_faults_through_a_proxy() {
    let (Ok(url), Ok(azurite)) = (std::env::var("DELTA_TEST_AZURE_PROXY_URL"), std::env::var("AZURITE_BLOB_STORAGE_URL")) else {
        panic!("needs DELTA_TEST_AZURE_PROXY_URL and AZURITE_BLOB_STORAGE_URL (run by lost_acknowledgements_and_resets_through_a_proxy)");
    };
    let upstream: std::net::SocketAddr = azurite.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    let proxy = Proxy::start(upstream);
    std::env::set_var("AZURITE_BLOB_STORAGE_URL", format!("http://127.0.0.1:{}", proxy.port));
    let options = TableOptions { storage_options: vec![("AZURE_STORAGE_USE_EMULATOR".into(), "true".into())], ..Default::default() };
    faults_through(&proxy, &url, options, "azure (Azurite)").await;
}

/// The crash sweep of the simulation tests (one fault of each kind at every store call of a
/// script of appends, a partition replace, a property change, an overwrite and a checkpoint),
/// with the fault-injecting store wrapping the real S3 store of SeaweedFS. (Azurite is left
/// out: it filters listings client-side and keeps blobs in one in-memory collection, so the
/// sweep's thousands of tables slow it to minutes of CPU; the proxy faults cover Azure.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_sweep_on_s3() {
    for store in stores().into_iter().filter(|s| s.name == "s3 (SeaweedFS)") {
        let location = delta_core::TableLocation::open(&store.url("sweep"), store.table_options()).unwrap();
        let inner = location.store().clone();
        let (url, root) = (location.root_url().clone(), location.root().clone());
        let fresh = move |run: u64| {
            let root = object_store::path::Path::from(format!("{}/run-{run}", root.as_ref()));
            let url = url.join(&format!("run-{run}/")).unwrap();
            delta_tests::sim::SimTable::on(inner.clone(), url, root, delta_tests::faulty_store::FaultPlan::None)
        };
        crate::simulation::crash_sweep(&fresh, store.name).await;
    }
}
