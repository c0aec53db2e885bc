//! A seeded fault-injecting `ObjectStore` for crash-safety tests.
//!
//! It wraps a real store (in-memory or local disk) and, per call, injects one of:
//! * `FailBefore` — the call fails with no effect;
//! * `FailAfter` — the effect happens, then the call fails (a lost acknowledgement);
//! * `Torn` — a non-conditional put leaves a truncated object, then fails (a crash mid-upload on
//!   a store without atomic puts); conditional puts (commits) are atomic and fail before instead;
//! * `Crash` — the process "dies": the in-flight effect lands or not (seeded), and every later
//!   call fails until [`FaultyStore::restart`];
//! * `Slow` — the call is delayed;
//! * `StaleList` — a listing omits the newest objects written (an eventually consistent list).
//!
//! Faults come from a seeded plan: random with a rate, or exactly one fault at one call index
//! (for exhaustive sweeps). Every decision is a pure function of the seed and the call index.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, Result,
};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    FailBefore,
    FailAfter,
    Torn,
    Crash,
    Slow,
    StaleList,
}

impl Fault {
    pub const ALL_SWEPT: [Fault; 4] = [Fault::FailBefore, Fault::FailAfter, Fault::Torn, Fault::Crash];
}

/// When faults happen.
#[derive(Debug, Clone, Copy)]
pub enum FaultPlan {
    None,
    /// Each call faults with probability `per_mille / 1000`, kind chosen by the seed.
    Random {
        seed: u64,
        per_mille: u64,
    },
    /// Exactly one fault, at call `index` (0-based, counting every instrumented call).
    At {
        index: u64,
        fault: Fault,
        seed: u64,
    },
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The fault-injecting store.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    plan: Mutex<FaultPlan>,
    calls: AtomicU64,
    crashed: AtomicBool,
    /// Paths written recently, newest last (for stale listings).
    recent: Mutex<Vec<Path>>,
    /// Every fault injected: (call index, fault, operation).
    pub log: Mutex<Vec<(u64, Fault, String)>>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?})", self.plan.lock().map(|p| *p).ok())
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic { store: "FaultyStore", source: format!("injected fault: {what}").into() }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, plan: FaultPlan) -> Self {
        FaultyStore {
            inner,
            plan: Mutex::new(plan),
            calls: AtomicU64::new(0),
            crashed: AtomicBool::new(false),
            recent: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Instrumented calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Clears a crash: the "process" restarts (faults stay planned).
    pub fn restart(&self) {
        self.crashed.store(false, Ordering::SeqCst);
    }

    pub fn set_plan(&self, plan: FaultPlan) {
        if let Ok(mut p) = self.plan.lock() {
            *p = plan;
        }
    }

    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Decides the fault for the next call. `kinds` are the faults that make sense for it.
    fn decide(&self, op: &str, kinds: &[Fault]) -> (Option<Fault>, u64) {
        let index = self.calls.fetch_add(1, Ordering::SeqCst);
        let plan = self.plan.lock().map(|p| *p).unwrap_or(FaultPlan::None);
        let (fault, salt) = match plan {
            FaultPlan::None => (None, 0),
            FaultPlan::Random { seed, per_mille } => {
                let r = mix(seed ^ mix(index));
                if r % 1000 < per_mille && !kinds.is_empty() {
                    (Some(kinds[(mix(r) % kinds.len() as u64) as usize]), r)
                } else {
                    (None, r)
                }
            }
            FaultPlan::At { index: at, fault, seed } => {
                let f = (at == index).then_some(fault).filter(|f| kinds.contains(f) || *f == Fault::Crash);
                // A planned fault that does not apply to this call degrades to failing before.
                let f = f.or_else(|| (at == index && fault != Fault::Slow && fault != Fault::StaleList).then_some(Fault::FailBefore));
                (f, mix(seed ^ index))
            }
        };
        if let Some(f) = fault {
            if let Ok(mut log) = self.log.lock() {
                log.push((index, f, op.to_string()));
            }
        }
        (fault, salt)
    }

    fn check_crashed(&self) -> Result<()> {
        if self.crashed() {
            return Err(injected("process crashed"));
        }
        Ok(())
    }

    fn remember(&self, path: &Path) {
        if let Ok(mut r) = self.recent.lock() {
            r.push(path.clone());
            let n = r.len();
            if n > 64 {
                r.drain(..n - 64);
            }
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.check_crashed()?;
        let conditional = matches!(opts.mode, PutMode::Create | PutMode::Update(_));
        let kinds: &[Fault] = if conditional {
            &[Fault::FailBefore, Fault::FailAfter, Fault::Crash, Fault::Slow]
        } else {
            &[Fault::FailBefore, Fault::FailAfter, Fault::Torn, Fault::Crash, Fault::Slow]
        };
        let (fault, salt) = self.decide("put", kinds);
        match fault {
            Some(Fault::FailBefore) => Err(injected("put failed before its effect")),
            Some(Fault::FailAfter) => {
                self.inner.put_opts(location, payload, opts).await?;
                self.remember(location);
                Err(injected("put succeeded but the acknowledgement was lost"))
            }
            Some(Fault::Torn) => {
                let bytes: Bytes = payload.into();
                let cut = (salt as usize) % bytes.len().max(1);
                self.inner.put(location, PutPayload::from(bytes.slice(..cut))).await?;
                self.remember(location);
                Err(injected("torn write"))
            }
            Some(Fault::Crash) => {
                self.crashed.store(true, Ordering::SeqCst);
                if salt % 2 == 0 {
                    let _ = self.inner.put_opts(location, payload, opts).await;
                    self.remember(location);
                }
                Err(injected("process crashed during put"))
            }
            Some(Fault::Slow) => {
                tokio::time::sleep(Duration::from_millis(salt % 5)).await;
                let r = self.inner.put_opts(location, payload, opts).await?;
                self.remember(location);
                Ok(r)
            }
            _ => {
                let r = self.inner.put_opts(location, payload, opts).await?;
                self.remember(location);
                Ok(r)
            }
        }
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.check_crashed()?;
        let (fault, _) = self.decide("put_multipart", &[Fault::FailBefore, Fault::Crash]);
        match fault {
            Some(Fault::Crash) => {
                self.crashed.store(true, Ordering::SeqCst);
                Err(injected("process crashed"))
            }
            Some(_) => Err(injected("multipart failed")),
            None => self.inner.put_multipart_opts(location, opts).await,
        }
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check_crashed()?;
        let (fault, salt) = self.decide("get", &[Fault::FailBefore, Fault::Slow, Fault::Crash]);
        match fault {
            Some(Fault::Crash) => {
                self.crashed.store(true, Ordering::SeqCst);
                Err(injected("process crashed during get"))
            }
            Some(Fault::FailBefore) | Some(Fault::FailAfter) | Some(Fault::Torn) => Err(injected("get failed")),
            Some(Fault::Slow) => {
                tokio::time::sleep(Duration::from_millis(salt % 5)).await;
                self.inner.get_opts(location, options).await
            }
            _ => self.inner.get_opts(location, options).await,
        }
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check_crashed()?;
        let (fault, _) = self.decide("get_ranges", &[Fault::FailBefore, Fault::Crash]);
        match fault {
            Some(Fault::Crash) => {
                self.crashed.store(true, Ordering::SeqCst);
                Err(injected("process crashed during get"))
            }
            Some(_) => Err(injected("get_ranges failed")),
            None => self.inner.get_ranges(location, ranges).await,
        }
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if self.crashed() {
            return futures::stream::once(async { Err(injected("process crashed")) }).boxed();
        }
        let (fault, salt) = self.decide("list", &[Fault::FailBefore, Fault::StaleList, Fault::Crash]);
        match fault {
            Some(Fault::Crash) => {
                self.crashed.store(true, Ordering::SeqCst);
                futures::stream::once(async { Err(injected("process crashed during list")) }).boxed()
            }
            Some(Fault::FailBefore) | Some(Fault::FailAfter) | Some(Fault::Torn) => {
                futures::stream::once(async { Err(injected("list failed")) }).boxed()
            }
            Some(Fault::StaleList) => {
                // Hide the newest 1..=3 objects written.
                let hidden: Vec<Path> =
                    self.recent.lock().map(|r| r.iter().rev().take(1 + (salt % 3) as usize).cloned().collect()).unwrap_or_default();
                self.inner.list(prefix).try_filter(move |m| futures::future::ready(!hidden.contains(&m.location))).boxed()
            }
            _ => self.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check_crashed()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check_crashed()?;
        self.inner.copy_opts(from, to, options).await
    }
}
