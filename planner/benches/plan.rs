//! Planning benchmark (issue 6, benchmark 3): the CPU part of planning a
//! run, network excluded, against a baseline measured in the same process.
//!
//! Input: a directory written by `bottlesync-plan-input` (formula.json,
//! bottles_hash.json, meta.json); `loadtest/bench/plan.sh` makes it and runs
//! this. By hand:
//!
//! ```text
//! cargo bench -p bottlesync-planner --bench plan -- DIR [--reps N] [--json FILE]
//! ```
//!
//! Both files are read into memory first (not measured). One planning run
//! is what `sync` and the fleet planner do between the downloads:
//! 1. `parse_index`: parse and validate formula.json;
//! 2. `MirrorRecord::parse` of bottles_hash.json (validated) and its
//!    sha256s as the stored set (`JournalLedger::stored_bottles` with an
//!    empty journal, then `into_keys().collect()` as `sync` does);
//! 3. the nine per-tag API files (`packages.<tag>.jws.json`, when the input
//!    has them): parsed and validated (`PackagesFile::parse`);
//! 4. `plan_for_clients`: the nine current tags from their per-tag files
//!    (fallbacks from the index for a tag without one), dedup against the
//!    ledger;
//! 5. one SQS message body (`BottleMessage::to_body`) per missing bottle.
//!
//! The baseline is `serde_json::from_slice::<serde_json::Value>` of the same
//! formula.json (the floor any planner pays to read the index), and, as a
//! second figure, of both files. Runs are interleaved (baseline, planning)
//! so load changes hit both; medians are reported. CPU time is user+sys of
//! the process (getrusage), memory the peak RSS of each phase (VmHWM, reset
//! through /proc/self/clear_refs before it) and the peak heap (a counting
//! allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bottlesync_core::Sha256Digest;
use bottlesync_core::Tag;
use bottlesync_core::model::hash_file::MirrorRecord;
use bottlesync_core::model::index::{HostPolicy, parse_index};
use bottlesync_core::model::message::BottleMessage;
use bottlesync_core::model::packages::PackagesFile;
use bottlesync_core::plan::select::{PlanRequest, TagSelection, plan_for_clients};
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// The nine tags of the issue (loadtest's CURRENT_TAGS).
const TAGS: &str = "arm64_golden_gate,arm64_tahoe,tahoe,arm64_sequoia,sequoia,arm64_sonoma,sonoma,x86_64_linux,arm64_linux";
const RUN_ID: &str = "20261129T030000Z-1a2b3c4d";

// ------------------------------------------------------------ heap counter

struct Counting;

static HEAP_NOW: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HEAP_NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                HEAP_NOW.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

fn grew(by: usize) {
    let now = HEAP_NOW.fetch_add(by, Ordering::Relaxed) + by;
    HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ------------------------------------------------------------ probes

/// User + system CPU time of the process, in seconds.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage failed");
    // SAFETY: initialised by the successful call above.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `VmHWM` or `VmRSS` from /proc/self/status, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); false when refused.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

struct Phase {
    cpu: f64,
    wall: f64,
    /// Peak RSS during the phase (MiB), when it could be reset before it.
    peak_rss: Option<f64>,
    /// RSS before the phase (MiB).
    rss_before: f64,
    /// Peak heap during the phase, above the heap before it (MiB).
    heap_delta: f64,
    /// Peak heap during the phase, everything included (MiB).
    heap_peak: f64,
}

const MIB: f64 = 1024.0 * 1024.0;

fn measure<T>(f: impl FnOnce() -> T) -> (Phase, T) {
    let reset = reset_peak_rss();
    let rss_before = status_kib("VmRSS:").unwrap_or(0) as f64 / 1024.0;
    let heap_before = HEAP_NOW.load(Ordering::Relaxed);
    HEAP_PEAK.store(heap_before, Ordering::Relaxed);
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let out = f();
    let (wall, cpu) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let heap_peak = HEAP_PEAK.load(Ordering::Relaxed);
    let peak_rss = reset
        .then(|| status_kib("VmHWM:"))
        .flatten()
        .map(|k| k as f64 / 1024.0);
    (
        Phase {
            cpu,
            wall,
            peak_rss,
            rss_before,
            heap_delta: heap_peak.saturating_sub(heap_before) as f64 / MIB,
            heap_peak: heap_peak as f64 / MIB,
        },
        out,
    )
}

// ------------------------------------------------------------ the work

#[derive(Default, Clone, Copy)]
struct Stages {
    index: f64,
    ledger: f64,
    packages: f64,
    plan: f64,
    messages: f64,
}

struct Outcome {
    formulae: usize,
    rejections: usize,
    stored: usize,
    jobs: usize,
    already_mirrored: usize,
    skipped_disabled: usize,
    body_bytes: usize,
    stages: Stages,
}

/// The per-tag files of the input, by tag (as fetched: bytes).
type PackagesInput = Vec<(Tag, Vec<u8>)>;

fn planning(
    index_bytes: &[u8],
    hash_bytes: &[u8],
    packages: &PackagesInput,
    hosts: &HostPolicy,
) -> Outcome {
    let mut stages = Stages::default();
    let mut t = cpu_seconds();
    let mut lap = |slot: &mut f64| {
        let now = cpu_seconds();
        *slot = now - t;
        t = now;
    };
    let index = parse_index(index_bytes, hosts).expect("the index parses");
    lap(&mut stages.index);
    let record = MirrorRecord::parse(hash_bytes).expect("the hash file parses");
    let mirrored: HashSet<Sha256Digest> = record.bottles.into_keys().collect();
    lap(&mut stages.ledger);
    // `parse` keeps the bytes it is given (to publish them): the copy is
    // part of what a planner pays.
    let clients: BTreeMap<Tag, PackagesFile> = packages
        .iter()
        .map(|(tag, bytes)| {
            let file = PackagesFile::parse(tag, bytes.clone()).expect("a per-tag file parses");
            (tag.clone(), file)
        })
        .collect();
    lap(&mut stages.packages);
    let request = PlanRequest {
        tags: TagSelection::parse("--tags", TAGS).expect("tags"),
        formulae: vec![],
        with_deps: false,
        linux_host_formulae: true,
        include_disabled: false,
        date: NaiveDate::from_ymd_opt(2026, 11, 29).expect("date"),
    };
    let plan =
        plan_for_clients(&index, &clients, &request, &mirrored, &HashSet::new()).expect("plan");
    lap(&mut stages.plan);
    let jobs = plan.jobs.len();
    let bodies: Vec<String> = plan
        .jobs
        .into_iter()
        .map(|job| BottleMessage::new(RUN_ID, job).to_body())
        .collect();
    let body_bytes = bodies.iter().map(String::len).sum();
    lap(&mut stages.messages);
    Outcome {
        formulae: index.formulae.len(),
        rejections: index.rejections.len(),
        stored: mirrored.len(),
        jobs,
        already_mirrored: plan.already_mirrored.len(),
        skipped_disabled: plan.skipped_disabled.len(),
        body_bytes,
        stages,
    }
}

// ------------------------------------------------------------ main

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn max_of(xs: impl IntoIterator<Item = f64>) -> f64 {
    xs.into_iter().fold(0.0, f64::max)
}

fn main() {
    let mut dir: Option<PathBuf> = std::env::var_os("BOTTLESYNC_PLAN_INPUT").map(PathBuf::from);
    let mut reps: usize = 5;
    let mut json_out: Option<PathBuf> = None;
    let mut probe: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" => reps = args.next().and_then(|n| n.parse().ok()).expect("--reps N"),
            "--probe" => probe = args.next(),
            "--json" => json_out = args.next().map(PathBuf::from),
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            other if other.starts_with("--") => {}
            other => dir = Some(PathBuf::from(other)),
        }
    }
    let Some(dir) = dir else {
        eprintln!(
            "usage: cargo bench -p bottlesync-planner --bench plan -- DIR [--reps N] [--json FILE]\n\
             DIR from `bottlesync-plan-input --out DIR` (loadtest/bench/plan.sh does both)"
        );
        std::process::exit(2);
    };
    let reps = reps.max(1);

    // ---- load (not measured)
    let read = |name: &str| {
        std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
    };
    let index_bytes = read("formula.json");
    let hash_bytes = read("bottles_hash.json");
    let packages: PackagesInput = TAGS
        .split(',')
        .filter_map(|tag| {
            let bytes = std::fs::read(dir.join(format!("packages.{tag}.jws.json"))).ok()?;
            Some((Tag::parse(tag).expect("tag"), bytes))
        })
        .collect();
    let packages_bytes: usize = packages.iter().map(|(_, b)| b.len()).sum();
    let meta: serde_json::Value = serde_json::from_slice(&read("meta.json")).expect("meta.json");
    let api_url: url::Url = meta["api_url"]
        .as_str()
        .expect("meta.json: api_url")
        .parse()
        .expect("api_url");
    let hosts = HostPolicy::new(&api_url, &[]);
    let rss_loaded = status_kib("VmRSS:").unwrap_or(0) as f64 / 1024.0;
    if let Some(which) = probe {
        // A fresh process doing one phase once: its VmHWM is that phase's
        // peak RSS, untouched by what the other phase left in the heap.
        let (cpu0, w0) = (cpu_seconds(), Instant::now());
        match which.as_str() {
            "planning" => {
                planning(&index_bytes, &hash_bytes, &packages, &hosts);
            }
            "baseline" => {
                let v: serde_json::Value = serde_json::from_slice(&index_bytes).expect("JSON");
                assert!(v.is_array());
            }
            other => panic!("--probe {other}: planning or baseline"),
        }
        let (cpu, wall) = (cpu_seconds() - cpu0, w0.elapsed().as_secs_f64());
        let probe = serde_json::json!({
            "rss_loaded_mib": rss_loaded,
            "peak_rss_mib": status_kib("VmHWM:").map(|k| k as f64 / 1024.0),
            "heap_peak_mib": HEAP_PEAK.load(Ordering::Relaxed) as f64 / MIB,
            "cpu_ms": cpu * 1e3,
            "wall_ms": wall * 1e3,
        });
        println!("{probe}");
        return;
    }
    eprintln!(
        "inputs: formula.json {:.1} MB ({} formulae), bottles_hash.json {:.1} MB ({} bottles); RSS after loading {rss_loaded:.1} MiB",
        index_bytes.len() as f64 / 1e6,
        meta["formulae"],
        hash_bytes.len() as f64 / 1e6,
        meta["stored"],
    );

    // ---- warm-up (page faults, allocator arenas), then interleaved reps
    let warm = planning(&index_bytes, &hash_bytes, &packages, &hosts);
    if let Some(expected) = meta["expected_jobs"].as_u64() {
        assert_eq!(
            warm.jobs as u64, expected,
            "the plan must fetch exactly the bottles the ledger lacks"
        );
    }
    assert_eq!(warm.rejections, 0, "the generated index is all valid");

    let mut base = Vec::new();
    let mut base2 = Vec::new();
    let mut runs = Vec::new();
    for rep in 1..=reps {
        let (b, n) = measure(|| {
            let v: serde_json::Value = serde_json::from_slice(&index_bytes).expect("JSON");
            v.as_array().map_or(0, Vec::len)
        });
        assert!(n > 0);
        let (b2, _) = measure(|| {
            let a: serde_json::Value = serde_json::from_slice(&index_bytes).expect("JSON");
            let h: serde_json::Value = serde_json::from_slice(&hash_bytes).expect("JSON");
            a.as_array().map_or(0, Vec::len) + h.as_object().map_or(0, |o| o.len())
        });
        let (p, outcome) = measure(|| planning(&index_bytes, &hash_bytes, &packages, &hosts));
        eprintln!(
            "rep {rep}/{reps}: planning {:.0} ms CPU ({:.0} ms wall; index {:.0}, ledger {:.0}, per-tag files {:.0}, plan {:.0}, messages {:.0}), in-process peak RSS {}; baseline {:.0} ms CPU",
            p.cpu * 1e3,
            p.wall * 1e3,
            outcome.stages.index * 1e3,
            outcome.stages.ledger * 1e3,
            outcome.stages.packages * 1e3,
            outcome.stages.plan * 1e3,
            outcome.stages.messages * 1e3,
            p.peak_rss.map_or("?".into(), |m| format!("{m:.1} MiB")),
            b.cpu * 1e3,
        );
        base.push(b);
        base2.push(b2);
        runs.push((p, outcome));
    }

    // ---- memory, each phase alone in a fresh process
    let fresh = |which: &str| -> serde_json::Value {
        let out = std::process::Command::new(std::env::current_exe().expect("own path"))
            .arg(&dir)
            .args(["--probe", which])
            .output()
            .expect("running the probe");
        assert!(out.status.success(), "probe {which} failed: {out:?}");
        serde_json::from_slice(&out.stdout).expect("probe output")
    };
    let fresh_plan = fresh("planning");
    let fresh_base = fresh("baseline");
    let fresh_rss = |v: &serde_json::Value| v["peak_rss_mib"].as_f64();

    // ---- report
    let cpu = median(runs.iter().map(|(p, _)| p.cpu).collect());
    let wall = median(runs.iter().map(|(p, _)| p.wall).collect());
    let stage = |f: fn(&Stages) -> f64| median(runs.iter().map(|(_, o)| f(&o.stages)).collect());
    let peak_rss = runs
        .iter()
        .map(|(p, _)| p.peak_rss)
        .collect::<Option<Vec<f64>>>()
        .map(max_of);
    let rss_before = max_of(runs.iter().map(|(p, _)| p.rss_before));
    let heap_delta = max_of(runs.iter().map(|(p, _)| p.heap_delta));
    let heap_peak = max_of(runs.iter().map(|(p, _)| p.heap_peak));
    let base_cpu = median(base.iter().map(|p| p.cpu).collect());
    let base_wall = median(base.iter().map(|p| p.wall).collect());
    let base_heap = max_of(base.iter().map(|p| p.heap_delta));
    let base_rss = base
        .iter()
        .map(|p| p.peak_rss)
        .collect::<Option<Vec<f64>>>()
        .map(max_of);
    let base2_cpu = median(base2.iter().map(|p| p.cpu).collect());
    let o = &runs[0].1;
    let fmt_rss = |r: Option<f64>| r.map_or("?".into(), |m| format!("{m:.1} MiB"));

    println!(
        "input: {} formulae ({:.1} MB formula.json), {} stored bottles ({:.1} MB bottles_hash.json), {} tags, {} per-tag API files ({:.1} MB)",
        o.formulae,
        index_bytes.len() as f64 / 1e6,
        o.stored,
        hash_bytes.len() as f64 / 1e6,
        TAGS.split(',').count(),
        packages.len(),
        packages_bytes as f64 / 1e6
    );
    println!(
        "plan: {} bottles to fetch, {} already mirrored, {} disabled formulae skipped; {} message bodies ({:.1} MB)",
        o.jobs,
        o.already_mirrored,
        o.skipped_disabled,
        o.jobs,
        o.body_bytes as f64 / 1e6
    );
    println!(
        "planning: {:.0} ms CPU, {:.0} ms wall (median of {reps}); stages (CPU ms): index {:.0}, ledger {:.0}, per-tag files {:.0}, plan {:.0}, messages {:.0}",
        cpu * 1e3,
        wall * 1e3,
        stage(|s| s.index) * 1e3,
        stage(|s| s.ledger) * 1e3,
        stage(|s| s.packages) * 1e3,
        stage(|s| s.plan) * 1e3,
        stage(|s| s.messages) * 1e3,
    );
    println!(
        "planning memory: peak RSS {} in a fresh process (inputs loaded: {:.1} MiB; one cold run: {:.0} ms CPU); peak heap {heap_peak:.1} MiB (+{heap_delta:.1} MiB over the loaded inputs); in the bench process: peak RSS {} (RSS before {rss_before:.1} MiB: the allocator keeps what earlier runs freed)",
        fmt_rss(fresh_rss(&fresh_plan)),
        fresh_plan["rss_loaded_mib"].as_f64().unwrap_or(0.0),
        fresh_plan["cpu_ms"].as_f64().unwrap_or(0.0),
        fmt_rss(peak_rss)
    );
    println!(
        "baseline serde_json::Value parse of formula.json: {:.0} ms CPU, {:.0} ms wall, peak RSS {} in a fresh process, +{base_heap:.1} MiB heap; of both files: {:.0} ms CPU",
        base_cpu * 1e3,
        base_wall * 1e3,
        fmt_rss(fresh_rss(&fresh_base)),
        base2_cpu * 1e3,
    );
    println!(
        "ratio planning / baseline (CPU): {:.2}x (formula.json), {:.2}x (both files)",
        cpu / base_cpu,
        cpu / base2_cpu
    );
    let goal_cpu = cpu < 1.0;
    let goal_mem = fresh_rss(&fresh_plan).is_some_and(|m| m < 256.0);
    println!(
        "goal (< 1 s CPU, < 256 MiB): CPU {}, memory {}",
        if goal_cpu { "met" } else { "MISSED" },
        if goal_mem { "met" } else { "MISSED" }
    );

    if let Some(path) = json_out {
        let summary = serde_json::json!({
            "reps": reps,
            "formulae": o.formulae,
            "index_bytes": index_bytes.len(),
            "stored": o.stored,
            "hash_file_bytes": hash_bytes.len(),
            "tags": TAGS,
            "jobs": o.jobs,
            "already_mirrored": o.already_mirrored,
            "skipped_disabled": o.skipped_disabled,
            "body_bytes": o.body_bytes,
            "cpu_ms": cpu * 1e3,
            "wall_ms": wall * 1e3,
            "cpu_runs_ms": runs.iter().map(|(p, _)| p.cpu * 1e3).collect::<Vec<_>>(),
            "stage_index_ms": stage(|s| s.index) * 1e3,
            "stage_ledger_ms": stage(|s| s.ledger) * 1e3,
            "stage_packages_ms": stage(|s| s.packages) * 1e3,
            "packages_files": packages.len(),
            "packages_files_bytes": packages_bytes,
            "stage_plan_ms": stage(|s| s.plan) * 1e3,
            "stage_messages_ms": stage(|s| s.messages) * 1e3,
            "peak_rss_mib": fresh_rss(&fresh_plan),
            "fresh_rss_loaded_mib": fresh_plan["rss_loaded_mib"],
            "fresh_cpu_ms": fresh_plan["cpu_ms"],
            "fresh_wall_ms": fresh_plan["wall_ms"],
            "baseline_fresh_peak_rss_mib": fresh_rss(&fresh_base),
            "baseline_fresh_cpu_ms": fresh_base["cpu_ms"],
            "in_process_peak_rss_mib": peak_rss,
            "rss_before_mib": rss_before,
            "rss_loaded_mib": rss_loaded,
            "heap_peak_mib": heap_peak,
            "heap_delta_mib": heap_delta,
            "baseline_cpu_ms": base_cpu * 1e3,
            "baseline_wall_ms": base_wall * 1e3,
            "baseline_cpu_runs_ms": base.iter().map(|p| p.cpu * 1e3).collect::<Vec<_>>(),
            "baseline_in_process_peak_rss_mib": base_rss,
            "baseline_heap_delta_mib": base_heap,
            "baseline_both_cpu_ms": base2_cpu * 1e3,
            "ratio": cpu / base_cpu,
            "ratio_both": cpu / base2_cpu,
            "goal_cpu_met": goal_cpu,
            "goal_memory_met": goal_mem,
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&summary).expect("json"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
