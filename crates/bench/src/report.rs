//! The Markdown report: machine, then one table of results against targets and etcd.

use std::fmt::Write as _;

use crate::scenarios::{ListResult, Throughput, WatchResult};
use crate::stats::{ms, rate, Samples};

/// Everything one run measured.
pub struct Results {
    /// One client, keep-alive, objects created one after the other.
    pub serial: Throughput,
    /// Several clients at once.
    pub concurrent: Throughput,
    /// How many clients `concurrent` used.
    pub clients: usize,
    /// GET of single objects.
    pub gets: Samples,
    /// LIST of the `concurrent` namespace.
    pub list: ListResult,
    /// Watch delivery.
    pub watch: WatchResult,
    /// fsync/s and SQLite commits/s on the data disk, when measured.
    pub reference: Option<(f64, f64)>,
}

/// A short description of this machine (CPU count, memory, kernel).
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs ({cpu_model}), {:.1} GiB RAM, Linux {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

fn per_second(value: f64) -> String {
    format!("{value:.0}/s")
}

/// Renders `results` as a Markdown table.
pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Machine: {}\n", machine());
    let _ = writeln!(out, "| measurement | result | target | etcd reference |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
    let mut row = |name: String, result: String, target: &str, etcd: &str| {
        let _ = writeln!(out, "| {name} | {result} | {target} | {etcd} |");
    };
    let s = &results.serial;
    row(
        format!(
            "durable creates, 1 client, keep-alive ({} objects)",
            s.count
        ),
        per_second(rate(s.count, s.elapsed)),
        "≥ 1,000/s",
        "583/s (1 client)",
    );
    row(
        "create latency p50 / p99, 1 client".into(),
        format!(
            "{} / {}",
            ms(s.latency.percentile(50.0)),
            ms(s.latency.percentile(99.0))
        ),
        "",
        "",
    );
    let c = &results.concurrent;
    row(
        format!(
            "durable creates, {} clients ({} objects)",
            results.clients, c.count
        ),
        per_second(rate(c.count, c.elapsed)),
        "≥ 5,000/s",
        "~44,000/s (1,000 clients)",
    );
    row(
        format!("create latency p50 / p99, {} clients", results.clients),
        format!(
            "{} / {}",
            ms(c.latency.percentile(50.0)),
            ms(c.latency.percentile(99.0))
        ),
        "",
        "",
    );
    row(
        format!("GET one object p50 / p99 ({} requests)", results.gets.len()),
        format!(
            "{} / {}",
            ms(results.gets.percentile(50.0)),
            ms(results.gets.percentile(99.0))
        ),
        "",
        "",
    );
    let l = &results.list;
    row(
        format!(
            "LIST {} objects, one response ({:.1} MiB, median of 3)",
            l.objects,
            l.bytes as f64 / 1048576.0
        ),
        ms(l.full),
        "",
        "",
    );
    row(
        format!("LIST {} objects in pages of {}", l.objects, l.page_size),
        ms(l.paged),
        "",
        "",
    );
    let w = &results.watch;
    row(
        format!(
            "watch delivery p50 / p99 ({} events; {} beat the create response)",
            w.latency.len(),
            w.before_response
        ),
        format!(
            "{} / {}",
            ms(w.latency.percentile(50.0)),
            ms(w.latency.percentile(99.0))
        ),
        "p99 < 10 ms",
        "",
    );
    row(
        "create request sent → watch event p50 / p99 (upper bound)".into(),
        format!(
            "{} / {}",
            ms(w.from_request.percentile(50.0)),
            ms(w.from_request.percentile(99.0))
        ),
        "",
        "",
    );
    if let Some((fsync, sqlite)) = results.reference {
        row(
            "reference: 1 KiB write + fdatasync on the data disk".into(),
            per_second(fsync),
            "",
            "",
        );
        row(
            "reference: SQLite WAL commits, synchronous=FULL, 1 row each".into(),
            per_second(sqlite),
            "",
            "",
        );
    }
    out
}
