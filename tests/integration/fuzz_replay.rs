//! Replays every fuzz target over its seeds on stable, so CI exercises the targets each run.
//!
//! Seeds come from `fuzz/seeds/<target>/` (committed) and, when `../shared/conformance` is present,
//! from the conformance tables: commit files, schema strings, checkpoints, DV descriptors, stats,
//! partition values, paths, log listings and predicates. Without the corpus the derived seeds are
//! skipped (and the test fails when `CI=true`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use delta_tests::fuzz_targets::TARGETS;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus() -> Option<PathBuf> {
    let p = workspace().join("../shared/conformance");
    p.join("MANIFEST.json").exists().then_some(p)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Seeds derived from the conformance tables, per target.
fn derived_seeds(root: &Path) -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let mut seeds: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    let mut files = Vec::new();
    walk(&root.join("tables"), &mut files);
    let mut listings: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let in_log = f.parent().is_some_and(|p| p.ends_with("_delta_log"));
        if in_log {
            listings.entry(f.parent().unwrap().to_path_buf()).or_default().push(name.clone());
        }
        if in_log && name.ends_with(".json") {
            let bytes = std::fs::read(f).unwrap();
            if bytes.len() < 256 * 1024 {
                for line in bytes.split(|b| *b == b'\n') {
                    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
                    if let Some(s) = v.pointer("/metaData/schemaString").and_then(|s| s.as_str()) {
                        seeds.entry("schema_json").or_default().push(s.as_bytes().to_vec());
                    }
                    if let Some(add) = v.get("add") {
                        if let Some(dv) = add.get("deletionVector") {
                            seeds.entry("dv_descriptor").or_default().push(dv.to_string().into_bytes());
                            if let Some(inline) = dv.get("pathOrInlineDv").and_then(|s| s.as_str()) {
                                seeds.entry("dv_bitmap").or_default().push(inline.as_bytes().to_vec());
                            }
                        }
                        if let Some(s) = add.get("stats").and_then(|s| s.as_str()) {
                            seeds.entry("stats_json").or_default().push(s.as_bytes().to_vec());
                        }
                        if let Some(p) = add.get("path").and_then(|s| s.as_str()) {
                            seeds.entry("path_resolution").or_default().push(p.as_bytes().to_vec());
                        }
                        if let Some(pv) = add.get("partitionValues").and_then(|s| s.as_object()) {
                            for v in pv.values().filter_map(|v| v.as_str()) {
                                seeds.entry("partition_values").or_default().push(v.as_bytes().to_vec());
                            }
                        }
                    }
                }
                seeds.entry("commit_json").or_default().push(bytes);
            }
        }
        if in_log && name.contains("checkpoint") && name.ends_with(".parquet") {
            let bytes = std::fs::read(f).unwrap();
            if bytes.len() < 512 * 1024 {
                seeds.entry("checkpoint_parquet").or_default().push(bytes);
            }
        }
        if f.to_string_lossy().contains("deletion_vector") && name.ends_with(".bin") {
            let bytes = std::fs::read(f).unwrap();
            // The bitmap of the first DV in the file: skip version byte and size.
            if bytes.len() > 5 {
                let size = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
                if bytes.len() >= 5 + size {
                    seeds.entry("dv_bitmap").or_default().push(bytes[5..5 + size].to_vec());
                }
            }
        }
    }
    for (_, names) in listings {
        seeds.entry("log_segment").or_default().push(names.join("\n").into_bytes());
    }
    seeds
}

#[test]
fn fuzz_targets_replay_their_seeds() {
    let mut per_target: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    for (name, _) in TARGETS {
        let mut files = Vec::new();
        walk(&workspace().join("fuzz/seeds").join(name), &mut files);
        per_target.insert(name, files.iter().map(|f| std::fs::read(f).unwrap()).collect());
    }
    match corpus() {
        Some(root) => {
            for (name, seeds) in derived_seeds(&root) {
                per_target.entry(name).or_default().extend(seeds);
            }
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("../shared/conformance is missing and CI=true"),
        None => eprintln!("fuzz replay: ../shared/conformance not found; replaying committed seeds only"),
    }
    for (name, target) in TARGETS {
        let seeds = per_target.get(name).map(Vec::as_slice).unwrap_or(&[]);
        assert!(!seeds.is_empty(), "fuzz target {name} has no seeds");
        for seed in seeds {
            target(seed);
            // Cheap mutations: every prefix of small seeds, and a byte flip, as a fuzzer's first steps.
            if seed.len() <= 512 {
                for cut in (0..seed.len()).step_by(7) {
                    target(&seed[..cut]);
                }
            }
            let mut flipped = seed.clone();
            if let Some(b) = flipped.get_mut(seed.len() / 2) {
                *b ^= 0x5a;
            }
            target(&flipped);
        }
        println!("fuzz replay: {name}: {} seeds", seeds.len());
    }
}
