//! Network partitions without privileges: a fault-injecting TCP proxy in front of each
//! node's peer (gRPC/Raft) port.
//!
//! Every node advertises its proxy's address, so every connection one node opens to
//! another goes through the proxy of the destination. The proxy learns which node opened
//! a connection from the kernel's socket table (`/proc/net/tcp` gives the inode of the
//! socket on the connecting port; `/proc/<pid>/fd` says which node process holds it), so
//! each direction `from -> to` can be cut on its own. A cut direction is a black hole, as
//! in a real partition: open connections stop passing bytes (they are not reset), new ones
//! are accepted and then stay silent; when the direction heals, the stalled connections
//! are closed so the node dials again. Connections from anything that is not a node
//! (test clients) are never cut.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The cut directions, (from node, to node).
pub type Cuts = BTreeSet<(u64, u64)>;

/// The proxies of one cluster.
pub struct NetProxy {
    addrs: BTreeMap<u64, String>,
    cuts: watch::Sender<Cuts>,
    /// Node process id -> node id, kept current by the test as nodes restart.
    pids: Arc<Mutex<BTreeMap<u32, u64>>>,
}

impl NetProxy {
    /// Starts one proxy per node, forwarding to `targets[id]` (the node's real address).
    pub async fn start(targets: &BTreeMap<u64, String>) -> Self {
        let (cuts, _) = watch::channel(Cuts::new());
        let pids = Arc::new(Mutex::new(BTreeMap::new()));
        let mut addrs = BTreeMap::new();
        for (&to, target) in targets {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
            let addr = listener.local_addr().expect("proxy addr");
            addrs.insert(to, addr.to_string());
            tokio::spawn(accept_loop(
                listener,
                to,
                target.clone(),
                cuts.subscribe(),
                pids.clone(),
            ));
        }
        Self { addrs, cuts, pids }
    }

    /// The address node `id` should advertise.
    pub fn addr_of(&self, id: u64) -> String {
        self.addrs[&id].clone()
    }

    pub fn advertised(&self) -> BTreeMap<u64, String> {
        self.addrs.clone()
    }

    /// Tells the proxy which process is node `id` now (after a start or restart).
    pub fn set_pid(&self, id: u64, pid: Option<u32>) {
        let mut pids = self.pids.lock().unwrap();
        pids.retain(|_, node| *node != id);
        if let Some(pid) = pid {
            pids.insert(pid, id);
        }
    }

    /// Replaces the set of cut directions.
    pub fn set_cuts(&self, cuts: Cuts) {
        self.cuts.send_replace(cuts);
    }

    /// Cuts both directions between every node of `a` and every node of `b`.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        let mut cuts = Cuts::new();
        for &x in a {
            for &y in b {
                cuts.insert((x, y));
                cuts.insert((y, x));
            }
        }
        self.set_cuts(cuts);
    }

    pub fn heal(&self) {
        self.set_cuts(Cuts::new());
    }

    pub fn cuts(&self) -> Cuts {
        self.cuts.borrow().clone()
    }
}

async fn accept_loop(
    listener: TcpListener,
    to: u64,
    target: String,
    cuts: watch::Receiver<Cuts>,
    pids: Arc<Mutex<BTreeMap<u32, u64>>>,
) {
    let listen_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let Ok((conn, peer)) = listener.accept().await else {
            continue;
        };
        let cuts = cuts.clone();
        let pids = pids.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let from = identify(peer.port(), listen_port, &pids).await;
            serve(conn, from, to, &target, cuts).await;
        });
    }
}

/// Which node opened the connection from `port` (0: not a node).
async fn identify(port: u16, listen_port: u16, pids: &Arc<Mutex<BTreeMap<u32, u64>>>) -> u64 {
    // A node restarted a moment ago may not be registered yet: look twice.
    for _ in 0..2 {
        let known: Vec<(u32, u64)> = pids.lock().unwrap().iter().map(|(p, i)| (*p, *i)).collect();
        let found = tokio::task::spawn_blocking(move || owner_of(port, listen_port, &known))
            .await
            .ok()
            .flatten();
        if let Some(id) = found {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    0
}

fn owner_of(port: u16, listen_port: u16, known: &[(u32, u64)]) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        let remote_port = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
        (local_port == port && remote_port == listen_port)
            .then(|| f.get(9).map(|s| s.to_string()))?
    })?;
    let wanted = format!("socket:[{inode}]");
    known.iter().find_map(|(pid, id)| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == wanted))
            .then_some(*id)
    })
}

/// Waits until the direction `from -> to` is cut (`cut`) or open (`!cut`), or the proxy
/// is gone.
async fn until(cuts: &mut watch::Receiver<Cuts>, from: u64, to: u64, cut: bool) {
    // The borrowed value is not Send: keep it out of any await.
    let _changed = cuts.wait_for(|c| is_cut(c, from, to) == cut).await.is_ok();
}

fn is_cut(cuts: &Cuts, from: u64, to: u64) -> bool {
    from != 0 && cuts.contains(&(from, to))
}

async fn serve(
    mut conn: TcpStream,
    from: u64,
    to: u64,
    target: &str,
    mut cuts: watch::Receiver<Cuts>,
) {
    let cut_now = is_cut(&cuts.borrow_and_update(), from, to);
    if cut_now {
        // Accepted into a black hole: silent until healed, then closed.
        until(&mut cuts, from, to, false).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = conn.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let mut cut_watch = cuts.clone();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream) => {}
        () = until(&mut cut_watch, from, to, true) => {
            // Partitioned: hold both sockets and pass nothing until healed.
            until(&mut cuts, from, to, false).await;
        }
    }
}
