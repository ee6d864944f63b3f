//! A node whose disk fills up (issue 18): writes fail with an error naming the cause, the
//! node exits instead of lingering unable to write, and once space is freed a restart
//! brings it back with every acknowledged write.
//!
//! The data dir lives on a small tmpfs, which takes root to mount; without root the test
//! says so and checks nothing (CI runs it as root).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{free_port, stdio_spec, wait_for, ClusterOptions, TestCluster};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(megabytes: u32) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .output()
            .ok()?;
        mounted.status.success().then_some(Self { path, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the file system holding `dir` with a file; returns it.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output();
    filler
}

#[test]
fn a_full_disk_fails_writes_clearly_and_a_restart_after_freeing_space_loses_nothing() {
    let Some(fs) = Tmpfs::mount(16) else {
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cluster = TestCluster::start_at(Vec::new(), ClusterOptions::default());
    // The node's data dir on the tmpfs: the harness puts it at DIR/node-1, so make that a
    // link to the small file system.
    std::os::unix::fs::symlink(&fs.path, cluster.dir.path().join("node-1")).expect("link");
    cluster.add_node(1, &addr, Some(&format!("1={addr}")));
    cluster.wait_leader();

    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let name = format!("before-{i}");
        let out = cluster.deploy(1, &stdio_spec(&name));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        acknowledged.push(name);
    }

    let filler = fill(&fs.path);
    eprintln!(
        "disk filled after {} acknowledged writes",
        acknowledged.len()
    );
    // Writes go on while sled still has room in its preallocated segments; one of them
    // fails, naming the cause.
    let mut failure = None;
    for i in 0..2000 {
        let name = format!("full-{i}");
        let out = cluster.deploy(1, &stdio_spec(&name));
        if out.status.success() {
            acknowledged.push(name);
        } else {
            failure = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let failure = failure.expect("a write failed on the full disk");
    eprintln!(
        "{} writes acknowledged in all; the failed one said: {failure}",
        acknowledged.len()
    );
    assert!(
        failure.contains("No space left on device"),
        "the error does not name the cause: {failure}"
    );
    // The node exits with the cause instead of answering without being able to write.
    wait_for("the node to exit", Duration::from_secs(30), || {
        cluster.status(1).is_none().then_some(())
    });
    let log = std::fs::read_to_string(&cluster.node(1).log).expect("log");
    assert!(log.contains("Raft stopped"), "{log}");

    // Space freed, restarted: everything acknowledged is there and writes work again.
    std::fs::remove_file(filler).expect("remove filler");
    cluster.kill(1);
    cluster.restart(1);
    cluster.wait_leader();
    let listing = cluster.json(1, &["ls"]);
    let names: Vec<&str> = listing["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for name in &acknowledged {
        assert!(names.contains(&name.as_str()), "lost acknowledged {name}");
    }
    let out = cluster.deploy(1, &stdio_spec("after"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
