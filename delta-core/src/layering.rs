//! The crate's shape, checked: every module names only its own layer and the layers below it,
//! and no two files of a layer name each other in a circle.
//!
//! Layers, lowest first: `error`, `table`, `log`, `read`, `write`, `ops`, `sql` (see each folder's
//! `mod.rs`). A module's layer is its folder under `src/` (or its file name at the root). Every
//! `crate::…` path in a module's code — its tests excluded, which may build fixtures with
//! anything — must start with a layer at or below its own; the flat re-exports kept at the crate
//! root for the public API (`crate::schema`, `crate::Snapshot` …) are not for use inside the
//! crate, because they hide which layer a name lives in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[&str] = &["error", "table", "log", "read", "write", "ops", "sql"];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// A source file's layer and its module name within the layer (`mod` for a folder's `mod.rs`;
/// a nested module folder such as `ops/merge/` counts as its folder's module).
fn place(src: &Path, file: &Path) -> (String, String) {
    let rel: Vec<String> = file.strip_prefix(src).unwrap().iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let stem = |s: &str| s.trim_end_matches(".rs").to_string();
    match rel.as_slice() {
        [one] => (stem(one), stem(one)),
        [layer, module, ..] => (layer.clone(), stem(module)),
        [] => unreachable!(),
    }
}

/// The code of a file without comments and without its `#[cfg(test)]` module.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        let code = match t.find("//") {
            Some(k) if !t[..k].contains('"') => &t[..k],
            _ => t,
        };
        out.push((i + 1, code));
    }
    out
}

/// The first two segments of every `crate::a::b` path in `line` (`b` empty when absent).
fn crate_paths(line: &str) -> Vec<(String, String)> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(k) = rest.find("crate::") {
        let before = rest[..k].chars().last();
        rest = &rest[k + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `delta_crate::`
        }
        let first = ident(rest);
        let second = rest[first.len()..].strip_prefix("::").map(ident).unwrap_or_default();
        out.push((first, second));
    }
    out
}

/// Modules of the same layer a file names by `super::x` (inside a layer folder).
fn super_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(k) = rest.find("super::") {
        let before = rest[..k].chars().last();
        rest = &rest[k + "super::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        out.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
    }
    out
}

/// A circle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

struct Findings {
    upward: Vec<String>,
    /// Per layer: module → modules of the same layer it names.
    graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

fn check(src: &Path) -> Findings {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut findings = Findings { upward: Vec::new(), graphs: BTreeMap::new() };
    for file in files {
        let (layer, module) = place(src, &file);
        if layer == "lib" || layer == "layering" {
            continue;
        }
        let shown = file.strip_prefix(src).unwrap().display().to_string();
        let Some(own) = rank(&layer) else {
            findings.upward.push(format!("{shown}: `{layer}` is not a layer ({LAYERS:?})"));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let graph = findings.graphs.entry(layer.clone()).or_default();
        graph.entry(module.clone()).or_default();
        for (n, line) in code_lines(&text) {
            for (first, second) in crate_paths(line) {
                match rank(&first) {
                    None => findings.upward.push(format!(
                        "{shown}:{n}: `crate::{first}` is not a layer; name the layer the item lives in (`crate::<layer>::…`)"
                    )),
                    Some(r) if r > own => {
                        findings.upward.push(format!("{shown}:{n}: the `{layer}` layer uses `crate::{first}::{second}`, a layer above it"))
                    }
                    Some(r) if r == own && !second.is_empty() && second != module && second.chars().all(|c| !c.is_uppercase()) => {
                        graph.entry(module.clone()).or_default().insert(second);
                    }
                    Some(_) => {}
                }
            }
            if file.file_name().is_some_and(|f| f != "mod.rs") && file.parent() != Some(src) {
                for m in super_paths(line) {
                    if !m.is_empty() && m != module && m.chars().all(|c| !c.is_uppercase()) {
                        graph.entry(module.clone()).or_default().insert(m);
                    }
                }
            }
        }
    }
    findings
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let findings = check(&src_dir());
    assert!(findings.upward.is_empty(), "upward or unlayered imports:\n{}", findings.upward.join("\n"));
}

#[test]
fn no_circles_between_the_files_of_a_layer() {
    let findings = check(&src_dir());
    for (layer, graph) in &findings.graphs {
        if let Some(cycle) = find_cycle(graph) {
            panic!("the `{layer}` layer has an import circle: {}", cycle.join(" → "));
        }
    }
}

/// The checker itself: a tree with an upward import, a flat-path import and a circle is caught.
#[test]
fn the_checker_finds_what_it_should() {
    let dir = std::env::temp_dir().join(format!("delta-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["table", "read"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let write = |p: &str, s: &str| std::fs::write(dir.join(p), s).unwrap();
    write("error.rs", "pub enum E {}\n");
    write("table/mod.rs", "pub mod a;\npub mod b;\n");
    write("table/a.rs", "use crate::read::scan::Scan; // upward\nuse super::b::X;\n");
    write("table/b.rs", "use crate::table::a::Y;\n#[cfg(test)]\nmod tests { use crate::read::x; }\n");
    write("read/scan.rs", "use crate::schema::StructType;\n/// crate::ops::never in a comment\n");
    let findings = check(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(findings.upward.len(), 2, "{:?}", findings.upward);
    assert!(findings.upward[0].contains("crate::schema"), "{:?}", findings.upward);
    assert!(findings.upward[1].contains("crate::read::scan"), "{:?}", findings.upward);
    let cycle = find_cycle(&findings.graphs["table"]).expect("a ↔ b is a circle");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
}
