//! TLS acceptance (issue 12, item 2): three `mcpd node` processes with mutual TLS under a
//! CA made by `mcpd certs init`. The cluster forms and serves calls over TLS; plaintext
//! clients are refused; a node whose certificate comes from another CA can neither join
//! (its votes never reach the cluster) nor send Raft RPCs, and a client certificate of the
//! right CA is not a node's; a certificate replaced on disk is served without a restart.
//! `/metrics` and `/mcp` can speak TLS too, and then only TLS.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{free_port, mcpd_bin, wait_for, ClusterOptions, TestCluster};
use mcp_client::channel::{self, Profile};
use mcp_client::tls::ClientTls;
use mcp_proto::raft::raft_service_client::RaftServiceClient;
use mcp_proto::raft::RaftPayload;
use serde_json::{json, Value};

fn certs_init(dir: &Path, nodes: &str) {
    let out = Command::new(mcpd_bin())
        .args([
            "certs",
            "init",
            "--dir",
            dir.to_str().expect("utf8"),
            "--nodes",
            nodes,
        ])
        .output()
        .expect("run mcpd certs init");
    assert!(
        out.status.success(),
        "mcpd certs init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn node_tls_args(dir: &Path, name: &str) -> Vec<String> {
    let path = |file: String| dir.join(file).display().to_string();
    vec![
        "--tls-cert".into(),
        path(format!("node-{name}.pem")),
        "--tls-key".into(),
        path(format!("node-{name}-key.pem")),
        "--tls-ca".into(),
        path("ca.pem".into()),
    ]
}

/// `mcpd -o json ARGS` against `addr` with exactly the TLS flags given (none: plaintext).
fn cli(addr: &str, tls: &[&str], args: &[&str]) -> Output {
    Command::new(mcpd_bin())
        .args(["--endpoint", addr, "-o", "json"])
        .args(tls)
        .args(args)
        .env_remove("MCPD_CA_FILE")
        .env_remove("MCPD_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run mcpd")
}

fn status(addr: &str, ca: &Path) -> Option<Value> {
    let out = cli(addr, &["--ca-file", ca.to_str()?], &["status"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// The certificate node `addr` serves now, as DER.
async fn served_cert(addr: &str, ca: &Path) -> Vec<u8> {
    let tls = ClientTls::from_files(ca, None, None).expect("client tls");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls.config()))
        .connect(name, tcp)
        .await
        .expect("handshake with the cluster CA");
    let (_, connection) = stream.get_ref();
    connection.peer_certificates().expect("a certificate")[0].to_vec()
}

/// `GET path` over TLS (HTTP/1.1) from a client trusting `ca`: the raw response.
async fn https_get(addr: &str, ca: &Path, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tls = ClientTls::from_files(ca, None, None).expect("client tls");
    let mut config = (**tls.config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// `GET path` in plaintext: whatever comes back before the connection closes.
async fn plain_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let _ = tcp.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tcp.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// Sends a Raft `Vote` to `addr` presenting `tls`; the payload is not a valid vote, so a
/// request that gets through the layers is refused by the Raft service, not as
/// unauthenticated.
async fn vote(addr: &str, tls: &ClientTls) -> Result<(), tonic::Status> {
    let channel = channel::lazy_with(addr, Profile::Peer, Some(tls)).expect("channel");
    RaftServiceClient::new(channel)
        .vote(RaftPayload {
            data: b"not a vote".to_vec(),
        })
        .await
        .map(|_| ())
}

fn client_tls(dir: &Path, cert: &str, key: &str) -> ClientTls {
    ClientTls::from_files(
        &dir.join("ca.pem"),
        Some(&dir.join(cert)),
        Some(&dir.join(key)),
    )
    .expect("client tls")
}

fn term(status: &Value) -> u64 {
    status["term"].as_u64().unwrap_or(0)
}

#[test]
fn a_mutual_tls_cluster_refuses_strangers_and_follows_its_certificate_files() {
    let work = tempfile::tempdir().expect("tempdir");
    let certs = work.path().join("certs");
    let other = work.path().join("other");
    certs_init(&certs, "n1,n2,n3");
    certs_init(&other, "n4");
    let ca = certs.join("ca.pem");

    let mut options = ClusterOptions::default();
    for id in 1..=3 {
        options
            .node_args
            .insert(id, node_tls_args(&certs, &format!("n{id}")));
    }
    // Node 1 also serves its metrics and /mcp over TLS.
    let mcp_addr = format!("127.0.0.1:{}", free_port());
    options.node_args.entry(1).or_default().extend([
        "--metrics-tls".to_owned(),
        "true".to_owned(),
        "--mcp-addr".to_owned(),
        mcp_addr.clone(),
        "--mcp-tls".to_owned(),
        "true".to_owned(),
    ]);
    // The harness's own CLI calls speak TLS through the environment they inherit; this
    // test binary runs this one test only, so nothing else reads the variable.
    std::env::set_var("MCPD_CA_FILE", &ca);
    let cluster = TestCluster::start(3, options);
    let leader = cluster.wait_leader();
    let addr = |id: u64| cluster.node(id).addr.clone();

    // It forms: three voters, seen over TLS.
    let members = cluster.json(leader, &["members"]);
    assert_eq!(
        members.to_string().matches("\"voter\"").count(),
        3,
        "{members}"
    );

    // It serves calls over TLS, through every node.
    let spec =
        json!({"name": "demo", "command": env!("CARGO_BIN_EXE_mcp-test-server"), "replicas": 1});
    cluster.deploy_json(1, &spec);
    for id in 1..=3 {
        let reply =
            cluster.call_eventually(id, "demo", "echo", &json!({"text": format!("tls-{id}")}));
        assert!(reply.to_string().contains(&format!("tls-{id}")), "{reply}");
    }

    // Plaintext clients are refused; with only the CA (no client certificate) a client
    // may read, as the token rules would let it.
    let plain = cli(&addr(2), &[], &["status"]);
    assert!(!plain.status.success(), "a plaintext status was answered");
    assert!(status(&addr(2), &ca).is_some());
    // The CA can come from the client's TOML file too.
    let client_toml = work.path().join("client.toml");
    std::fs::write(
        &client_toml,
        format!("ca_file = {:?}\n", ca.display().to_string()),
    )
    .expect("client config");
    let from_file = cli(
        &addr(3),
        &["--client-config", client_toml.to_str().expect("utf8")],
        &["status"],
    );
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // The HTTP listeners of node 1 speak TLS only.
    let metrics_addr = cluster.node(1).metrics_addr.clone();
    runtime.block_on(async {
        let healthz = https_get(&metrics_addr, &ca, "/healthz").await;
        assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
        let gateway = https_get(&mcp_addr, &ca, "/mcp").await;
        assert!(gateway.starts_with("HTTP/1.1 "), "{gateway}");
        for addr in [&metrics_addr, &mcp_addr] {
            let plain = plain_get(addr, "/healthz").await;
            assert!(
                !plain.starts_with("HTTP/"),
                "{addr} answered plaintext: {plain}"
            );
        }
    });
    runtime.block_on(async {
        // A node certificate of the cluster CA gets through to Raft itself.
        let node = client_tls(&certs, "node-n3.pem", "node-n3-key.pem");
        let through = vote(&addr(1), &node).await.expect_err("not a valid vote");
        assert_ne!(through.code(), tonic::Code::Unauthenticated, "{through:?}");
        assert_ne!(through.code(), tonic::Code::Unavailable, "{through:?}");

        // A client certificate of the same CA is not a node's: Raft RPCs are refused.
        let client = client_tls(&certs, "client.pem", "client-key.pem");
        let refused = vote(&addr(1), &client).await.expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

        // A node certificate of another CA does not even finish the handshake.
        let mut stranger = ClientTls::from_files(
            &ca,
            Some(&other.join("node-n4.pem")),
            Some(&other.join("node-n4-key.pem")),
        )
        .expect("stranger tls");
        let refused = vote(&addr(1), &stranger).await.expect_err("refused");
        assert!(
            refused.metadata().get(mcp_proto::ERROR_KIND).is_none(),
            "the node answered instead of refusing the handshake: {refused:?}"
        );
        // Nor does a node that trusts only the other CA.
        stranger = client_tls(&other, "node-n4.pem", "node-n4-key.pem");
        assert!(vote(&addr(1), &stranger).await.is_err());
    });

    // A node of another CA started as a member of this cluster campaigns again and again;
    // none of its votes arrives (one would force the cluster onto its higher term).
    let rogue_addr = format!("127.0.0.1:{}", free_port());
    let initial = format!("1={},2={},3={},4={rogue_addr}", addr(1), addr(2), addr(3));
    let rogue_dir = work.path().join("rogue");
    let rogue_log = std::fs::File::create(work.path().join("rogue.log")).expect("log");
    let mut rogue = common::ChildGuard(
        Command::new(mcpd_bin())
            .args(["node", "--id", "4", "--grpc-addr", &rogue_addr])
            .args(["--data-dir", rogue_dir.to_str().expect("utf8")])
            .args(["--initial-cluster", &initial])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .args([
                "--leader-election-timeout-ms",
                "400",
                "--heartbeat-interval-ms",
                "100",
            ])
            .args(node_tls_args(&other, "n4"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(rogue_log.try_clone().expect("fd"))
            .stderr(rogue_log)
            .spawn()
            .expect("spawn the rogue node"),
    );
    let other_ca = other.join("ca.pem");
    let rogue_term = wait_for(
        "the rogue node to campaign well past the cluster's term",
        Duration::from_secs(120),
        || {
            let rogue = status(&rogue_addr, &other_ca)?;
            let cluster_term = term(&status(&addr(leader), &ca)?);
            (term(&rogue) > cluster_term + 5).then_some(term(&rogue))
        },
    );
    for id in 1..=3 {
        let seen = status(&addr(id), &ca).expect("a cluster node answers");
        assert!(
            term(&seen) < rogue_term,
            "node {id} took the rogue's term: {seen}"
        );
        assert!(!seen.to_string().contains(&rogue_addr), "{seen}");
    }
    let rogue_status = status(&rogue_addr, &other_ca).expect("rogue status");
    assert_ne!(rogue_status["role"], "leader", "{rogue_status}");
    let members = cluster.json(leader, &["members"]);
    assert!(!members.to_string().contains(&rogue_addr), "{members}");
    let _ = rogue.0.kill();

    // A certificate replaced on disk is served without a restart.
    let before = runtime.block_on(served_cert(&addr(1), &ca));
    certs_init(&certs, "n1");
    let after = wait_for(
        "node 1 to serve its new certificate",
        Duration::from_secs(60),
        || {
            let now = runtime.block_on(served_cert(&addr(1), &ca));
            (now != before).then_some(now)
        },
    );
    let on_disk = std::fs::read_to_string(certs.join("node-n1.pem")).expect("new cert");
    let on_disk = rustls::pki_types::pem::PemObject::from_pem_slice(on_disk.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
        .expect("pem");
    assert_eq!(after, on_disk, "node 1 serves the file's certificate");
    // And the cluster keeps working with it: calls through node 1 still run.
    let reply = cluster.call_eventually(1, "demo", "echo", &json!({"text": "rotated"}));
    assert!(reply.to_string().contains("rotated"), "{reply}");
}
