//! The feature pipeline at a tiny scale, in process and as `delta pipeline`: the feature table
//! equals a recomputation after incremental days, no training row sees a feature value that
//! became valid after its label, the model's lineage names the versions read and re-reading
//! them gives the same rows.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use delta_cli::pipeline::{run, Config};
use delta_core::Table;
use delta_exec::Session;
use delta_ml::PipelineModel;

use crate::{delta, dir};

fn ints(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let c = arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Int64).unwrap();
        let c = c.as_primitive::<Int64Type>();
        out.extend((0..c.len()).map(|i| if c.is_null(i) { i64::MIN } else { c.value(i) }));
    }
    out
}

/// Timestamps as microseconds (arrow casts a timestamp to its raw count).
fn micros(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    ints(batches, name)
}

#[test]
fn the_pipeline_at_a_tiny_scale() {
    let out = dir("pipeline");
    let cfg = Config { scale: 0.004, days: 6, out: out.clone(), verbose: false, gbt_iterations: 10, ..Config::default() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let s = run(&cfg).await.unwrap();
        assert!(s.incremental_equals_full);
        assert_eq!(s.users_recomputed.len(), cfg.days as usize);
        // Later days recompute only the users seen that day, not everyone.
        assert!(s.users_recomputed[1..].iter().all(|n| *n < s.feature_rows), "{:?} of {}", s.users_recomputed, s.feature_rows);
        assert!(s.schema_refusal.contains("device"), "{}", s.schema_refusal);
        // The label read skips the days before the lookback.
        assert!(s.label_scan.1 < s.label_scan.0, "{:?}", s.label_scan);
        assert!(s.auc_gbt > 0.6 && s.auc_lr > 0.6, "AUC GBT {} LR {}", s.auc_gbt, s.auc_lr);
        assert_eq!(s.train_rows + s.test_rows, s.training_rows);

        // Lineage: the model names the training set's version; that commit names its sources.
        let model = PipelineModel::load(&s.model_dir).unwrap();
        let lineage = model.lineage().unwrap();
        let training = s.versions.iter().find(|v| v.table == "training_set").unwrap();
        let features = s.versions.iter().find(|v| v.table == "user_features").unwrap();
        assert_eq!(lineage.tables.len(), 1);
        assert!(lineage.tables[0].uri.trim_end_matches('/').ends_with("training_set"), "{}", lineage.tables[0].uri);
        assert_eq!(lineage.tables[0].version, training.version);
        assert_eq!(lineage.rows as usize, s.train_rows);
        let sources: serde_json::Value = serde_json::from_slice(&std::fs::read(s.model_dir.join("sources.json")).unwrap()).unwrap();
        let names: Vec<&str> = sources["tables"].as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
        assert_eq!(names, ["events", "user_features", "training_set"]);
        let history = Table::open(&training.location).unwrap().history(None).await.unwrap();
        let commit = history.iter().find(|c| c.version == training.version).unwrap();
        let meta: serde_json::Value = serde_json::from_str(commit.commit_info.get("userMetadata").and_then(|v| v.as_str()).unwrap()).unwrap();
        assert_eq!(meta["user_features"]["version"], serde_json::json!(features.version));

        // Re-reading the training version gives the same rows, though the tables moved on.
        let session = Session::new();
        let again = session.read().version_as_of(training.version).delta(&training.location).await.unwrap();
        assert_eq!(again.filter("split = 'train'").unwrap().count().await.unwrap(), s.train_rows);
        let ufv = Table::open(&features.location).unwrap().snapshot().await.unwrap().version();
        assert!(ufv > features.version, "the last day's MERGE came after training");
        assert!(s.changes_since.iter().any(|(k, n)| k == "update_postimage" && *n > 0), "{:?}", s.changes_since);

        // No leakage: each row's features came from a version whose values were valid at the
        // label's time, and no later valid version of that user was passed over.
        let rows = again.select(&["user_id", "event_timestamp", "_feature_version"]).unwrap().collect().await.unwrap();
        let feed = session
            .read()
            .option("readChangeFeed", "true")
            .unwrap()
            .option("startingVersion", "0")
            .unwrap()
            .option("endingVersion", &features.version.to_string())
            .unwrap()
            .delta(&features.location)
            .await
            .unwrap()
            .filter("_change_type IN ('insert', 'update_postimage')")
            .unwrap()
            .select(&["user_id", "_commit_version", "feature_time"])
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut valid_from: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for ((u, v), t) in ints(&feed, "user_id").into_iter().zip(ints(&feed, "_commit_version")).zip(micros(&feed, "feature_time")) {
            valid_from.entry(u).or_default().push((v, t));
        }
        let (users, at, used) = (ints(&rows, "user_id"), micros(&rows, "event_timestamp"), ints(&rows, "_feature_version"));
        assert!(!users.is_empty());
        for i in 0..users.len() {
            let versions = &valid_from[&users[i]];
            let chosen = versions.iter().find(|(v, _)| *v == used[i]).unwrap_or_else(|| panic!("row {i}: version {} wrote no value for user {}", used[i], users[i]));
            assert!(chosen.1 <= at[i], "row {i}: features valid from {} used for a label at {}", chosen.1, at[i]);
            let newest = versions.iter().filter(|(_, t)| *t <= at[i]).map(|(v, t)| (*t, *v)).max().unwrap();
            assert_eq!((newest.1, newest.0), *chosen, "row {i}: a newer valid version was passed over");
        }
        assert!(std::fs::read_to_string(&s.report).unwrap().matches("<svg").count() >= 2);
    });
    let _ = std::fs::remove_dir_all(&out);
}

/// `delta pipeline` as a whole process; bad options and a used store are clean errors.
#[test]
fn delta_pipeline_as_a_process() {
    let out = dir("pipeline-cli");
    let out_s = out.to_str().unwrap();
    let (ok, stdout, stderr) = delta(&["pipeline", "--scale", "0.002", "--days", "4", "--gbt-iterations", "5", "--out", out_s]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("== summary") && stdout.contains("AUC GBT") && stdout.contains("equal to a full recomputation: true"), "{stdout}");
    assert!(out.join("report.html").exists() && out.join("model/metadata.json").exists());
    let (ok, _, stderr) = delta(&["pipeline", "--days", "2", "--out", out_s]);
    assert!(!ok && stderr.contains("--days must be at least 4"), "{stderr}");
    let (ok, _, stderr) = delta(&["pipeline", "--conf", "nonsense", "--out", out_s]);
    assert!(!ok && stderr.contains("KEY=VALUE"), "{stderr}");
    let tables = out.join("tables");
    let (ok, _, stderr) = delta(&["pipeline", "--scale", "0.002", "--days", "4", "--out", out.join("again").to_str().unwrap(), "--store", tables.to_str().unwrap()]);
    assert!(!ok && stderr.contains("already holds an events table"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}

/// `delta pipeline --store s3://…` on SeaweedFS (started by `.ci/stores.sh`): the same run with
/// every table in the object store, credentials and endpoint as storage options.
#[test]
fn delta_pipeline_on_s3() {
    let (Ok(endpoint), Ok(bucket)) = (std::env::var("DELTA_TEST_S3_ENDPOINT"), std::env::var("DELTA_TEST_S3_BUCKET")) else {
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "CI=true but SeaweedFS is not running (.ci/run starts it with .ci/stores.sh)");
        eprintln!("delta_pipeline_on_s3: SeaweedFS not running (.ci/stores.sh start); skipped");
        return;
    };
    let out = dir("pipeline-s3");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let store = format!("s3://{bucket}/pipeline-{}-{nanos}", std::process::id());
    let key = std::env::var("DELTA_TEST_S3_ACCESS_KEY_ID").unwrap_or_default();
    let secret = std::env::var("DELTA_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_default();
    let options = [
        format!("AWS_ENDPOINT_URL={endpoint}"),
        format!("AWS_ACCESS_KEY_ID={key}"),
        format!("AWS_SECRET_ACCESS_KEY={secret}"),
        "AWS_REGION=us-east-1".to_string(),
        "AWS_ALLOW_HTTP=true".to_string(),
    ];
    let mut args: Vec<&str> = vec!["pipeline", "--scale", "0.002", "--days", "4", "--gbt-iterations", "5", "--out", out.to_str().unwrap(), "--store", &store];
    for o in &options {
        args.push("--storage-option");
        args.push(o);
    }
    let (ok, stdout, stderr) = delta(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("tables: {store}")) && stdout.contains("equal to a full recomputation: true"), "{stdout}");
    // The tables are in the bucket: the CLI reads the training set back from there.
    let training = format!("{store}/training_set");
    let mut describe: Vec<&str> = vec!["history", &training];
    for o in &options {
        describe.push("--storage-option");
        describe.push(o);
    }
    let (ok, history, stderr) = delta(&describe);
    assert!(ok && history.contains("WRITE"), "{stderr}{history}");
    let _ = std::fs::remove_dir_all(&out);
}

/// `delta pipeline --cluster`: a scheduler and two executors as processes on 127.0.0.1 run every
/// query — features, MERGE, the as-of join (IGNORE NULLS windows), model scoring on the
/// executors — and the run's numbers equal a local run's.
#[test]
fn delta_pipeline_on_a_cluster_of_processes() {
    let out = dir("pipeline-cluster");
    let (_scheduler, line) = crate::Server::start(&["cluster", "scheduler", "--bind", "127.0.0.1:0", "--executor-timeout-secs", "10"]);
    let addr = line.strip_prefix("scheduler listening on ").unwrap_or_else(|| panic!("scheduler said: {line}")).to_string();
    let mut executors = Vec::new();
    for w in ["w1", "w2"] {
        let work = out.join(w);
        let args = ["cluster", "executor", "--scheduler", &addr, "--slots", "2", "--heartbeat-secs", "1", "--work-dir", work.to_str().unwrap()];
        executors.push(crate::Server::start(&args).0);
    }
    let (ok, _, err) = delta(&["cluster", "status", "--scheduler", &addr, "--wait-for", "2", "--timeout-secs", "60"]);
    assert!(ok, "{err}");
    let run = |name: &str, cluster: Option<&str>| {
        let at = out.join(name);
        let mut args = vec!["pipeline", "--scale", "0.004", "--days", "5", "--gbt-iterations", "5", "--out", at.to_str().unwrap()];
        if let Some(url) = cluster {
            // Fewer shuffle partitions than Ballista's 16: the answers do not change.
            args.extend(["--cluster", url, "--conf", "spark.sql.shuffle.partitions=4"]);
        }
        let (ok, stdout, stderr) = delta(&args);
        assert!(ok, "{name}: {stderr}");
        stdout
    };
    let url = format!("df://{addr}");
    let remote = run("remote", Some(&url));
    let local = run("local", None);
    assert!(remote.contains(&format!("queries ran on the cluster at {url}")), "{remote}");
    // The same rows, files read, versions and AUCs (the lines without timings).
    let numbers = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("equal to a full recomputation") || l.contains("training set ") && l.contains("AUC") || l.contains("labels from") || l.contains(" v") && l.contains(": "))
            .map(|l| match l.rfind(" (") {
                Some(i) if l.ends_with(" s)") => l[..i].trim().to_string(),
                _ => l.trim().to_string(),
            })
            .collect()
    };
    let (r, l) = (numbers(&remote), numbers(&local));
    assert!(r.iter().any(|x| x.contains("AUC GBT")) && r.iter().any(|x| x.contains("events read: ")), "{remote}");
    assert_eq!(r, l, "\ncluster:\n{remote}\nlocal:\n{local}");
    let _ = std::fs::remove_dir_all(&out);
}
