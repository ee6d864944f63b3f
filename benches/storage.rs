//! Bounded storage: data dir size and memory of a three-node cluster under a long stream
//! of registry writes (issue 18, acceptance 5).
//!
//! Starts three release `mcpd node` processes on loopback, registers `--servers` servers
//! (registry only, no replicas), then updates them round-robin `--writes` times (each write
//! a deploy whose spec changes, so each one is a new revision) from `--concurrency` tasks
//! of one cluster client. While it runs it samples every node's data dir (bytes on disk)
//! and RSS; the registry itself stays the same size, so whatever grows is storage that is
//! not reclaimed. Prints a markdown table for docs/benchmarks.md.
//!
//! Run: `cargo build --release --bin mcpd && cargo bench --bench storage`
//! (`-- --writes 100000` for a quick run; `--mcpd PATH` for another binary).

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_client::{ClientSettings, ClusterClient};
use serde_json::json;

struct Options {
    writes: usize,
    servers: usize,
    concurrency: usize,
    mcpd: PathBuf,
}

fn options() -> Options {
    let mut o = Options {
        writes: 1_000_000,
        servers: 1000,
        concurrency: 256,
        mcpd: PathBuf::from("target/release/mcpd"),
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--writes" => o.writes = value.parse().expect("--writes N"),
            "--servers" => o.servers = value.parse().expect("--servers N"),
            "--concurrency" => o.concurrency = value.parse().expect("--concurrency N"),
            "--mcpd" => o.mcpd = PathBuf::from(value),
            // cargo bench passes --bench; ignore what is not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Bytes the files under `dir` occupy on disk.
fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += disk_bytes(&entry.path());
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

struct Nodes {
    children: Vec<Child>,
    dirs: Vec<PathBuf>,
    addrs: Vec<String>,
    _root: tempfile::TempDir,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(mcpd: &Path) -> Nodes {
    let root = tempfile::tempdir().expect("tempdir");
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let initial = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    let mut dirs = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let dir = root.path().join(format!("node-{}", i + 1));
        let log = std::fs::File::create(root.path().join(format!("node-{}.log", i + 1)))
            .expect("log file");
        let child = Command::new(mcpd)
            .args(["node", "--id", &(i + 1).to_string(), "--grpc-addr", addr])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--initial-cluster", &initial])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .env_remove("MCPD_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", mcpd.display()));
        children.push(child);
        dirs.push(dir);
    }
    Nodes {
        children,
        dirs,
        addrs,
        _root: root,
    }
}

struct Sample {
    writes: usize,
    elapsed: Duration,
    disk_max: u64,
    rss_max: u64,
}

fn sample(nodes: &Nodes, writes: usize, started: Instant) -> Sample {
    Sample {
        writes,
        elapsed: started.elapsed(),
        disk_max: nodes.dirs.iter().map(|d| disk_bytes(d)).max().unwrap_or(0),
        rss_max: nodes
            .children
            .iter()
            .map(|c| rss_bytes(c.id()))
            .max()
            .unwrap_or(0),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn spec(server: usize, write: usize) -> String {
    json!({
        "name": format!("s-{server}"),
        "transport": "stdio",
        "command": "python3",
        "args": ["-m", "mcp_server_time"],
        "replicas": 0,
        "env": {"WRITE": write.to_string()},
    })
    .to_string()
}

#[tokio::main]
async fn main() {
    let o = options();
    let nodes = start(&o.mcpd);
    let client = Arc::new(
        ClusterClient::new(ClientSettings {
            seeds: nodes.addrs.clone(),
            admin_token: None,
            failover_window: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        })
        .expect("client"),
    );
    client.wait_for_leader().await.expect("a leader");
    for s in 0..o.servers {
        client.deploy(&spec(s, 0)).await.expect("initial deploy");
    }
    let baseline = sample(&nodes, 0, Instant::now());

    let done = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..o.concurrency)
        .map(|_| {
            let (client, done, next) = (client.clone(), done.clone(), next.clone());
            let (writes, servers) = (o.writes, o.servers);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= writes {
                        return;
                    }
                    client
                        .deploy(&spec(i % servers, i + 1))
                        .await
                        .expect("deploy");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let step = (o.writes / 10).max(1);
    let mut samples = Vec::new();
    let mut next_mark = step;
    let mut peak_disk = 0;
    let mut peak_rss = 0;
    while done.load(Ordering::Relaxed) < o.writes {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = sample(&nodes, done.load(Ordering::Relaxed), started);
        peak_disk = peak_disk.max(s.disk_max);
        peak_rss = peak_rss.max(s.rss_max);
        if s.writes >= next_mark {
            eprintln!(
                "{} writes in {:.0} s: data dir {:.1} MiB, RSS {:.1} MiB",
                s.writes,
                s.elapsed.as_secs_f64(),
                mib(s.disk_max),
                mib(s.rss_max)
            );
            next_mark += step;
            samples.push(s);
        }
    }
    for w in workers {
        w.await.expect("worker");
    }
    let wall = started.elapsed();
    // Storage after the stream, once the last snapshot and purge had time to run.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = sample(&nodes, o.writes, started);
    let status = client.status_of_all().await;

    println!(
        "{} registry writes (deploys updating {} servers round-robin, {} concurrent, one cluster client) in {:.0} s: {:.0} writes/s.",
        o.writes,
        o.servers,
        o.concurrency,
        wall.as_secs_f64(),
        o.writes as f64 / wall.as_secs_f64()
    );
    println!();
    println!("| writes | elapsed (s) | largest data dir (MiB) | largest RSS (MiB) |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| 0 ({} servers registered) | - | {:.1} | {:.1} |",
        o.servers,
        mib(baseline.disk_max),
        mib(baseline.rss_max)
    );
    for s in &samples {
        println!(
            "| {} | {:.0} | {:.1} | {:.1} |",
            s.writes,
            s.elapsed.as_secs_f64(),
            mib(s.disk_max),
            mib(s.rss_max)
        );
    }
    println!(
        "| {} (settled, 5 s later) | {:.0} | {:.1} | {:.1} |",
        o.writes,
        settled.elapsed.as_secs_f64(),
        mib(settled.disk_max),
        mib(settled.rss_max)
    );
    println!();
    println!(
        "Peak over the run: data dir {:.1} MiB, RSS {:.1} MiB (largest of the three nodes, sampled every 0.5 s).",
        mib(peak_disk),
        mib(peak_rss)
    );
    for s in status {
        let kept = s
            .last_log_index
            .unwrap_or(0)
            .saturating_sub(s.purged_index.unwrap_or(0));
        println!(
            "Node {}: registry revision {}, last log index {}, snapshot at {}, {} log entries kept.",
            s.node_id,
            s.revision,
            s.last_log_index.unwrap_or(0),
            s.snapshot_index.unwrap_or(0),
            kept
        );
    }
}
