//! The log segment: which log files make up a snapshot at a version.
//!
//! ```text
//!  _delta_log/  00..08.json  00..10.checkpoint.parquet  00..11.json  00..12.json  00..12.crc
//!                            └──────── checkpoint ────────┘└──────── commits ─────────┘
//! ```
//!
//! A [`LogSegment`] is built from a listing and checks its invariants on construction: the
//! commits after the chosen checkpoint are contiguous up to the target version, the checkpoint is
//! complete (every part of a multi-part checkpoint present), and nothing past the target is used.
//! `_last_checkpoint` is only a hint for where to start listing: when it is unparsable or names a
//! checkpoint the listing does not contain complete, the whole log is listed and the newest
//! complete checkpoint from which the log is provably contiguous is used.

use std::collections::BTreeMap;

use object_store::ObjectMeta;
use serde::Deserialize;

use crate::error::{DeltaError, DeltaResult};
use crate::log::storage::TableLocation;
use object_store::ObjectStoreExt;

/// What kind of file a log entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFileKind {
    /// `<v>.json`
    Commit,
    /// `<v>.checkpoint.parquet`
    SinglePartCheckpoint,
    /// `<v>.checkpoint.<part>.<parts>.parquet`
    MultiPartCheckpoint { part: u32, parts: u32 },
    /// `<v>.checkpoint.<uuid>.json|parquet`
    V2Checkpoint { parquet: bool },
    /// `<start>.<end>.compacted.json`
    Compaction { end: i64 },
    /// `<v>.crc`
    Checksum,
}

/// A parsed log file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileName {
    pub version: i64,
    pub kind: LogFileKind,
}

fn parse_version(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl LogFileName {
    /// Parses a file name inside `_delta_log` (not a path). Anything else is `None`.
    pub fn parse(name: &str) -> Option<Self> {
        let mut parts = name.split('.');
        let version = parse_version(parts.next()?)?;
        let rest: Vec<&str> = parts.collect();
        let kind = match rest.as_slice() {
            ["json"] => LogFileKind::Commit,
            ["crc"] => LogFileKind::Checksum,
            ["checkpoint", "parquet"] => LogFileKind::SinglePartCheckpoint,
            ["checkpoint", part, parts, "parquet"] if part.len() == 10 && parts.len() == 10 => {
                let part: u32 = part.parse().ok()?;
                let parts: u32 = parts.parse().ok()?;
                if part == 0 || part > parts {
                    return None;
                }
                LogFileKind::MultiPartCheckpoint { part, parts }
            }
            ["checkpoint", uuid, ext] if (*ext == "json" || *ext == "parquet") && uuid.len() >= 8 => {
                LogFileKind::V2Checkpoint { parquet: *ext == "parquet" }
            }
            [end, "compacted", "json"] => {
                let end = parse_version(end)?;
                if end < version {
                    return None;
                }
                LogFileKind::Compaction { end }
            }
            _ => return None,
        };
        Some(LogFileName { version, kind })
    }

    /// Whether this is any kind of checkpoint.
    pub fn is_checkpoint(&self) -> bool {
        matches!(self.kind, LogFileKind::SinglePartCheckpoint | LogFileKind::MultiPartCheckpoint { .. } | LogFileKind::V2Checkpoint { .. })
    }
}

/// A log file with its parsed name.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub name: LogFileName,
    pub meta: ObjectMeta,
}

/// The files of one complete checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointFiles {
    pub version: i64,
    /// One file, or every part of a multi-part checkpoint in part order.
    pub parts: Vec<LogFile>,
}

/// `_last_checkpoint` contents (only the fields used as hints).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastCheckpointHint {
    pub version: i64,
    #[serde(default)]
    pub parts: Option<u32>,
}

/// The files that make up a snapshot at `end_version`.
#[derive(Debug, Clone)]
pub struct LogSegment {
    /// The snapshot's version.
    pub end_version: i64,
    /// The checkpoint replay starts from, if any.
    pub checkpoint: Option<CheckpointFiles>,
    /// Commits after the checkpoint up to `end_version`, ascending and contiguous.
    pub commits: Vec<LogFile>,
    /// Compacted log files that may replace runs of `commits`, ascending, non-overlapping.
    pub compactions: Vec<LogFile>,
    /// The `.crc` file of `end_version`, when present.
    pub checksum: Option<LogFile>,
    /// Every commit file of the listing up to `end_version` (for timestamps and history).
    pub all_commits: Vec<LogFile>,
}

/// Parsed listing of `_delta_log`.
#[derive(Debug, Default)]
pub struct LogListing {
    pub commits: BTreeMap<i64, LogFile>,
    pub checkpoints: BTreeMap<i64, Vec<LogFile>>,
    pub compactions: Vec<LogFile>,
    pub checksums: BTreeMap<i64, LogFile>,
    /// Whether the listing saw any object under `_delta_log` at all.
    pub any_object: bool,
}

impl LogListing {
    /// Classifies listed objects; unknown names are ignored.
    pub fn from_objects(objects: Vec<ObjectMeta>) -> Self {
        let mut listing = LogListing { any_object: !objects.is_empty(), ..Default::default() };
        for meta in objects {
            // Only direct children of _delta_log (not _sidecars/ or _staged_commits/).
            let parts: Vec<_> = meta.location.parts().collect();
            let n = parts.len();
            if n < 2 || parts[n - 2].as_ref() != "_delta_log" {
                continue;
            }
            let Some(name) = LogFileName::parse(parts[n - 1].as_ref()) else { continue };
            let file = LogFile { name: name.clone(), meta };
            match name.kind {
                LogFileKind::Commit => {
                    listing.commits.insert(name.version, file);
                }
                LogFileKind::Checksum => {
                    listing.checksums.insert(name.version, file);
                }
                LogFileKind::Compaction { .. } => listing.compactions.push(file),
                _ => listing.checkpoints.entry(name.version).or_default().push(file),
            }
        }
        listing
    }

    /// The newest version any commit or checkpoint names.
    pub fn latest_version(&self) -> Option<i64> {
        let c = self.commits.keys().next_back().copied();
        let k = self.checkpoints.keys().next_back().copied();
        c.max(k)
    }

    /// The oldest version readable from this listing: the oldest complete checkpoint or commit 0.
    pub fn earliest_version(&self) -> Option<i64> {
        let first_cp = self.checkpoints.keys().find(|v| self.complete_checkpoint(**v).is_some()).copied();
        let zero = self.commits.contains_key(&0).then_some(0);
        match (zero, first_cp) {
            (Some(z), _) => Some(z),
            (None, cp) => cp,
        }
    }

    /// A complete checkpoint at `version`, if the listing has one. Prefers a single file, then a
    /// V2 checkpoint, then a complete multi-part set.
    pub fn complete_checkpoint(&self, version: i64) -> Option<CheckpointFiles> {
        let files = self.checkpoints.get(&version)?;
        if let Some(f) = files.iter().find(|f| f.name.kind == LogFileKind::SinglePartCheckpoint) {
            return Some(CheckpointFiles { version, parts: vec![f.clone()] });
        }
        if let Some(f) = files.iter().find(|f| matches!(f.name.kind, LogFileKind::V2Checkpoint { .. })) {
            return Some(CheckpointFiles { version, parts: vec![f.clone()] });
        }
        // Multi-part: group by the number of parts; complete when parts 1..=n are all present.
        let mut by_count: BTreeMap<u32, BTreeMap<u32, &LogFile>> = BTreeMap::new();
        for f in files {
            if let LogFileKind::MultiPartCheckpoint { part, parts } = f.name.kind {
                by_count.entry(parts).or_default().insert(part, f);
            }
        }
        by_count
            .into_iter()
            .rev()
            .find(|(n, parts)| parts.len() == *n as usize)
            .map(|(_, parts)| CheckpointFiles { version, parts: parts.into_values().cloned().collect() })
    }

    /// Builds the segment for `target` (latest when `None`).
    pub fn segment(&self, location: &str, target: Option<i64>) -> DeltaResult<LogSegment> {
        let Some(latest) = self.latest_version() else {
            return Err(if self.any_object {
                DeltaError::NoCommits { location: location.to_string() }
            } else {
                DeltaError::NotATable { location: location.to_string() }
            });
        };
        let end = target.unwrap_or(latest);
        let earliest = self.earliest_version().unwrap_or(latest);
        if end > latest || end < 0 {
            return Err(DeltaError::VersionNotFound { requested: end, earliest, latest });
        }
        // The newest complete checkpoint at or before `end`.
        let checkpoint = self.checkpoints.range(..=end).rev().find_map(|(v, _)| self.complete_checkpoint(*v));
        let start = checkpoint.as_ref().map(|c| c.version + 1).unwrap_or(0);
        let commits: Vec<LogFile> =
            if start <= end { self.commits.range(start..=end).map(|(_, f)| f.clone()).collect() } else { Vec::new() };
        // Contiguity: start..=end must all be present.
        let mut expected = start;
        for c in &commits {
            if c.name.version != expected {
                return Err(DeltaError::VersionsNotContiguous { before: expected - 1, after: c.name.version });
            }
            expected += 1;
        }
        if expected != end + 1 {
            if checkpoint.is_none() && !self.commits.contains_key(&0) && end < latest {
                return Err(DeltaError::VersionNotFound { requested: end, earliest, latest });
            }
            return Err(DeltaError::VersionsNotContiguous { before: expected - 1, after: end });
        }
        if checkpoint.is_none() && start == 0 && commits.is_empty() {
            return Err(DeltaError::VersionNotFound { requested: end, earliest, latest });
        }
        // Compactions fully inside (checkpoint, end], chosen greedily without overlap.
        let mut compactions: Vec<LogFile> = self
            .compactions
            .iter()
            .filter(|f| matches!(f.name.kind, LogFileKind::Compaction { end: e } if f.name.version >= start && e <= end))
            .cloned()
            .collect();
        compactions.sort_by_key(|f| (f.name.version, std::cmp::Reverse(compaction_end(f))));
        let mut chosen: Vec<LogFile> = Vec::new();
        let mut covered_to = start - 1;
        for f in compactions {
            if f.name.version > covered_to {
                covered_to = compaction_end(&f);
                chosen.push(f);
            }
        }
        let all_commits = self.commits.range(..=end).map(|(_, f)| f.clone()).collect();
        Ok(LogSegment {
            end_version: end,
            checkpoint,
            commits,
            compactions: chosen,
            checksum: self.checksums.get(&end).cloned(),
            all_commits,
        })
    }
}

/// The last version a compaction file covers.
pub fn compaction_end(f: &LogFile) -> i64 {
    match f.name.kind {
        LogFileKind::Compaction { end } => end,
        _ => f.name.version,
    }
}

impl LogSegment {
    /// The segment of `target` (latest when `None`) as an extension of `previous`, an older
    /// segment of the same table, from one listing that starts at `previous`'s last commit
    /// (no `_last_checkpoint` read, no listing of the whole log): `previous`'s checkpoint and
    /// commits, then the newer commits. `None` when the listing shows anything else to account
    /// for (a newer checkpoint or compacted file, a gap, `previous`'s last commit missing, or
    /// fewer commits than `target` asks for): a full [`LogSegment::build`] decides then.
    pub async fn after(location: &TableLocation, previous: &LogSegment, target: Option<i64>) -> DeltaResult<Option<LogSegment>> {
        let from = previous.end_version;
        if from < 0 || target.is_some_and(|t| t < from) {
            return Ok(None);
        }
        let listing = LogListing::from_objects(location.list_log(Some(&format!("{from:020}"))).await?);
        let beyond = |v: i64| v > from && target.is_none_or(|t| v <= t);
        // A checkpoint written since (also one of `from` itself, which the next readers start
        // from) makes a new start: the full build takes it.
        let known = previous.checkpoint.as_ref().map(|c| c.version);
        let new_checkpoint = listing.checkpoints.keys().any(|v| (*v == from || beyond(*v)) && Some(*v) != known);
        if new_checkpoint || !listing.compactions.is_empty() {
            return Ok(None);
        }
        // The listing's own copy of `previous`'s last commit (its size, mtime and etag now).
        let Some(last) = listing.commits.get(&from) else { return Ok(None) };
        let mut all_commits: Vec<LogFile> = previous.all_commits.iter().filter(|c| c.name.version < from).cloned().collect();
        all_commits.push(last.clone());
        let mut commits: Vec<LogFile> = previous.commits.iter().filter(|c| c.name.version < from).cloned().collect();
        if previous.commits.iter().any(|c| c.name.version == from) {
            commits.push(last.clone());
        }
        let mut end = from;
        for (v, f) in listing.commits.range(from + 1..) {
            if !beyond(*v) {
                break;
            }
            if *v != end + 1 {
                return Ok(None);
            }
            commits.push(f.clone());
            all_commits.push(f.clone());
            end = *v;
        }
        if target.is_some_and(|t| t != end) {
            return Ok(None);
        }
        Ok(Some(LogSegment {
            end_version: end,
            checkpoint: previous.checkpoint.clone(),
            commits,
            compactions: Vec::new(),
            checksum: listing.checksums.get(&end).cloned(),
            all_commits,
        }))
    }

    /// Lists the log of `location` and builds the segment for `target` (latest when `None`).
    pub async fn build(location: &TableLocation, target: Option<i64>) -> DeltaResult<LogSegment> {
        let name = location.root_url().to_string();
        // `_last_checkpoint` only tells where listing may start.
        let hint = match location.read_optional(&location.log_path("_last_checkpoint")).await {
            Ok(Some(bytes)) => serde_json::from_slice::<LastCheckpointHint>(&bytes).ok(),
            _ => None,
        };
        if let Some(hint) = hint.filter(|h| h.version >= 0 && target.is_none_or(|t| t >= h.version)) {
            // Everything after `<version>` sorts after this exclusive bound, the checkpoint included.
            let offset = format!("{:020}", hint.version);
            let objects = location.list_log(Some(&offset)).await?;
            let listing = LogListing::from_objects(objects);
            if listing.complete_checkpoint(hint.version).is_some() {
                match listing.segment(&name, target) {
                    Ok(segment) if segment.checkpoint.as_ref().is_some_and(|c| c.version >= hint.version) => return Ok(segment),
                    // A gap may be a listing race: fall through to full listings, which retry.
                    Ok(_) | Err(DeltaError::VersionsNotContiguous { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut listing = LogListing::from_objects(location.list_log(None).await?);
        // A directory listing is not a snapshot: on a local file system a commit created while
        // `readdir` runs can be missed while a later one is seen. Before reporting a gap, each
        // missing commit is looked up directly; only a commit that is really absent is a gap.
        loop {
            match listing.segment(&name, target) {
                Err(DeltaError::VersionsNotContiguous { before, after }) => {
                    let mut filled = false;
                    for v in (before + 1)..after {
                        let path = location.log_path(&format!("{v:020}.json"));
                        match location.store().head(&path).await {
                            Ok(meta) => {
                                listing.commits.insert(v, LogFile { name: LogFileName { version: v, kind: LogFileKind::Commit }, meta });
                                filled = true;
                            }
                            Err(object_store::Error::NotFound { .. }) => return Err(DeltaError::VersionsNotContiguous { before, after }),
                            Err(e) => return Err(e.into()),
                        }
                    }
                    if !filled {
                        return Err(DeltaError::VersionsNotContiguous { before, after });
                    }
                }
                other => return other,
            }
        }
    }

    /// Lists the whole log (for history and timestamp resolution).
    pub async fn full_listing(location: &TableLocation) -> DeltaResult<LogListing> {
        Ok(LogListing::from_objects(location.list_log(None).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use object_store::path::Path;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta { location: Path::from(format!("t/_delta_log/{name}")), last_modified: Utc::now(), size: 1, e_tag: None, version: None }
    }

    #[test]
    fn parses_every_log_file_name() {
        use LogFileKind::*;
        let cases = [
            ("00000000000000000007.json", Some((7, Commit))),
            ("00000000000000000010.checkpoint.parquet", Some((10, SinglePartCheckpoint))),
            ("00000000000000000010.checkpoint.0000000002.0000000003.parquet", Some((10, MultiPartCheckpoint { part: 2, parts: 3 }))),
            ("00000000000000000010.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.json", Some((10, V2Checkpoint { parquet: false }))),
            ("00000000000000000003.00000000000000000005.compacted.json", Some((3, Compaction { end: 5 }))),
            ("00000000000000000003.crc", Some((3, Checksum))),
            ("_last_checkpoint", None),
            ("00000000000000000010.checkpoint.0000000004.0000000003.parquet", None),
            ("00000000000000000005.00000000000000000003.compacted.json", None),
            ("abc.json", None),
        ];
        for (name, want) in cases {
            let got = LogFileName::parse(name).map(|n| (n.version, n.kind));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn incomplete_multipart_checkpoints_are_skipped() {
        let listing = LogListing::from_objects(vec![
            meta("00000000000000000000.json"),
            meta("00000000000000000001.json"),
            meta("00000000000000000001.checkpoint.0000000001.0000000002.parquet"),
            meta("00000000000000000002.json"),
        ]);
        let seg = listing.segment("t", None).unwrap();
        assert!(seg.checkpoint.is_none());
        assert_eq!(seg.commits.len(), 3);
    }

    #[test]
    fn gaps_before_a_checkpoint_are_legal_and_after_are_not() {
        let ok = LogListing::from_objects(vec![
            meta("00000000000000000005.json"),
            meta("00000000000000000010.checkpoint.parquet"),
            meta("00000000000000000011.json"),
        ]);
        let seg = ok.segment("t", None).unwrap();
        assert_eq!(seg.end_version, 11);
        assert_eq!(seg.checkpoint.unwrap().version, 10);
        let bad = LogListing::from_objects(vec![
            meta("00000000000000000010.checkpoint.parquet"),
            meta("00000000000000000011.json"),
            meta("00000000000000000013.json"),
        ]);
        assert!(matches!(bad.segment("t", None), Err(DeltaError::VersionsNotContiguous { before: 11, after: 13 })));
        // Time travel before the checkpoint without commit files is not possible.
        assert!(matches!(ok.segment("t", Some(7)), Err(DeltaError::VersionNotFound { .. } | DeltaError::VersionsNotContiguous { .. })));
    }

    #[test]
    fn empty_logs_are_typed() {
        assert!(matches!(LogListing::from_objects(vec![]).segment("t", None), Err(DeltaError::NotATable { .. })));
        let only_crc = LogListing::from_objects(vec![meta("00000000000000000000.crc")]);
        assert!(matches!(only_crc.segment("t", None), Err(DeltaError::NoCommits { .. })));
    }
}
