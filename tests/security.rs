//! Security acceptance (issue 12) on real multi-process clusters: every RPC of the proto
//! files needs a credential and the role its policy names; API tokens with roles work the
//! same on gRPC and at `/mcp` and stop working on every node once revoked; JWT access
//! tokens at `/mcp`; and no configured secret ever shows in a log line, listing or metric.

mod common;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::http::{http_request, Reply};
use common::{free_port, text_of, tool_names, wait_for, ClusterOptions, TestCluster};
use mcp_cluster::auth::{policy, Access};
use serde_json::{json, Value};

const ADMIN: &str = "adm1n-s3cret-for-security-tests";
const META: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

fn test_server() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-test-server")
}

/// Every `/package.Service/Method` path declared in the proto files.
fn proto_paths() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/proto");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("proto dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "proto") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read proto");
        let (mut package, mut service) = (String::new(), String::new());
        for line in text
            .lines()
            .map(|l| l.split("//").next().unwrap_or("").trim())
        {
            let words: Vec<&str> = line
                .split(|c: char| c.is_whitespace() || "({;".contains(c))
                .filter(|w| !w.is_empty())
                .collect();
            match words.as_slice() {
                ["package", name, ..] => package = (*name).to_owned(),
                ["service", name, ..] => service = (*name).to_owned(),
                ["rpc", method, ..] => paths.push(format!("/{package}.{service}/{method}")),
                _ => {}
            }
        }
    }
    paths.sort();
    paths
}

/// Sends an empty message to `path` on `addr` with `token`; the status of the answer
/// (`Ok` when the handler answered).
async fn raw_call(addr: &str, path: &str, token: Option<&str>) -> Result<(), tonic::Status> {
    use mcp_proto::cluster::StatusRequest;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(StatusRequest {});
    if let Some(token) = token {
        request.metadata_mut().insert(
            mcp_proto::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_str(path).expect("path");
    // Every message decodes as an empty one (unknown fields are skipped).
    let codec = tonic_prost::ProstCodec::<StatusRequest, StatusRequest>::default();
    grpc.unary(request, path, codec).await.map(|_| ())
}

/// True if a call was refused for its credential (rather than answered, or failed later).
fn refused(result: &Result<(), tonic::Status>) -> Option<tonic::Code> {
    match result {
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ) =>
        {
            Some(s.code())
        }
        _ => None,
    }
}

/// Creates an API token through node `id` as the admin and waits until every node has
/// applied it; its secret.
fn create_token(cluster: &TestCluster, id: u64, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let created = cluster.json(id, &all);
    let revision = created["revision"].as_u64().expect("revision");
    for node in &cluster.nodes {
        cluster.wait_revision(node.id, revision);
    }
    created["token"].as_str().expect("token").to_owned()
}

/// A stateless-era (2026-07-28) request of `method` to the gateway at `addr`.
fn mcp(addr: &str, token: Option<&str>, method: &str, params: Value) -> Reply {
    let mut params = params;
    params["_meta"] = json!({META: "2026-07-28", CAPABILITIES: {}});
    let mut headers = vec![
        ("MCP-Protocol-Version", "2026-07-28".to_owned()),
        ("Mcp-Method", method.to_owned()),
    ];
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        headers.push(("Mcp-Name", name.to_owned()));
    }
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http_request(addr, "POST", "/mcp", &headers, &body.to_string())
}

/// Asserts that none of `secrets` appears in `text` (named `what`).
fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} shows a secret ({}...)",
            &secret[..8.min(secret.len())]
        );
    }
}

/// Everything a user or operator can read of `cluster`: every node's log, its metrics,
/// and the listings (servers, tokens, members, status).
fn everything_visible(cluster: &TestCluster) -> String {
    let mut all = cluster.logs();
    for node in &cluster.nodes {
        all.push_str(&http_request(&node.metrics_addr, "GET", "/metrics", &[], "").body);
        for args in [
            vec!["-o", "json", "ls"],
            vec!["-o", "json", "token", "ls"],
            vec!["-o", "json", "members"],
            vec!["-o", "json", "status"],
            vec!["token", "ls"],
            vec!["ls"],
        ] {
            let out = cluster.cli(node.id, &args);
            all.push_str(&String::from_utf8_lossy(&out.stdout));
            all.push_str(&String::from_utf8_lossy(&out.stderr));
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_needs_a_credential_and_the_role_its_policy_names() {
    let cluster = TestCluster::start(
        3,
        ClusterOptions {
            admin_token: Some(ADMIN.to_owned()),
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    let reader = create_token(&cluster, 1, &["ro", "--role", "reader"]);

    let paths = proto_paths();
    assert!(paths.len() >= 20, "parsed only {paths:?}");
    for node in &cluster.nodes {
        for path in &paths {
            let access = policy(path).unwrap_or_else(|| panic!("{path} has no policy"));
            for bad in [None, Some("wrong-token"), Some(&ADMIN[1..])] {
                let result = raw_call(&node.addr, path, bad).await;
                let expected = (access != Access::Open).then_some(tonic::Code::Unauthenticated);
                assert_eq!(
                    refused(&result),
                    expected,
                    "{path} on node {} with {bad:?}: {result:?}",
                    node.id
                );
            }
            let result = raw_call(&node.addr, path, Some(&reader)).await;
            let expected = match access {
                Access::Open | Access::Read => None,
                _ => Some(tonic::Code::PermissionDenied),
            };
            assert_eq!(
                refused(&result),
                expected,
                "{path} on node {} as a reader: {result:?}",
                node.id
            );
        }
    }

    // `mcpd call` without a token, or with a reader's, is refused on every node.
    cluster.deploy_json(1, &json!({"name": "sh", "command": test_server()}));
    cluster.call_eventually(1, "sh", "echo", &json!({"text": "warm"}));
    for node in &cluster.nodes {
        let args = ["call", "sh", "echo", r#"{"text": "x"}"#];
        let out = cluster.cli_with_token(node.id, None, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "call without a token ran on {}",
            node.id
        );
        assert!(stderr.contains("[unauthorized]"), "{stderr}");
        let out = cluster.cli_with_token(node.id, Some(&reader), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a reader's call ran on {}", node.id);
        assert!(stderr.contains("[forbidden]"), "{stderr}");
    }
    let seen = everything_visible(&cluster);
    assert_no_secret("logs, listings and metrics", &seen, &[ADMIN, &reader]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_reaches_only_its_tools_on_grpc_and_mcp_until_revoked_everywhere() {
    let gateways: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let cluster = TestCluster::start(
        3,
        ClusterOptions {
            admin_token: Some(ADMIN.to_owned()),
            node_args: gateways
                .iter()
                .map(|(id, addr)| {
                    let audit = audit_dir.path().join(format!("audit-{id}.jsonl"));
                    (
                        *id,
                        vec![
                            "--mcp-addr".to_owned(),
                            addr.clone(),
                            "--audit-log".to_owned(),
                            audit.display().to_string(),
                        ],
                    )
                })
                .collect(),
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    // The repo's test server under two names: `time` the caller may use, `notes` not;
    // `time` has its call arguments audited.
    for name in ["time", "notes"] {
        let audited = name == "time";
        let spec = json!({"name": name, "command": test_server(), "audit_arguments": audited});
        cluster.deploy_json(1, &spec);
        cluster.call_eventually(1, name, "echo", &json!({"text": "warm"}));
    }
    let app = create_token(
        &cluster,
        2,
        &["app", "--role", "caller", "--allow", "time__*"],
    );

    for node in &cluster.nodes {
        let id = node.id;
        // gRPC: the allowed tool runs, the other is refused, tools/list is filtered.
        let out = cluster.cli_with_token(
            id,
            Some(&app),
            &["-o", "json", "call", "time", "echo", r#"{"text": "ok"}"#],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reply: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(text_of(&reply), "ok");
        let out = cluster.cli_with_token(
            id,
            Some(&app),
            &["call", "notes", "echo", r#"{"text": "no"}"#],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("[forbidden]"),
            "{stderr}"
        );
        let out = cluster.cli_with_token(
            id,
            Some(&app),
            &["exec", "notes", r#"{"method": "tools/list"}"#],
        );
        assert!(!out.status.success(), "a caller listed notes' tools");
        for write in [
            vec!["scale", "time", "2"],
            vec!["token", "ls"],
            vec!["undeploy", "notes"],
        ] {
            let out = cluster.cli_with_token(id, Some(&app), &write);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains("[forbidden]"),
                "{write:?}: {stderr}"
            );
        }

        // /mcp: only time's tools are listed, notes' are refused with 403.
        let gateway = &gateways[&id];
        let names = wait_for(
            "the gateway to list time's tools",
            Duration::from_secs(45),
            || {
                let names = tool_names(&mcp(gateway, Some(&app), "tools/list", json!({})).json());
                names.iter().any(|n| n == "time__echo").then_some(names)
            },
        );
        assert!(names.iter().all(|n| n.starts_with("time__")), "{names:?}");
        let admin_names = tool_names(&mcp(gateway, Some(ADMIN), "tools/list", json!({})).json());
        assert!(
            admin_names.iter().any(|n| n.starts_with("notes__")),
            "{admin_names:?}"
        );
        let called = mcp(
            gateway,
            Some(&app),
            "tools/call",
            json!({"name": "time__echo", "arguments": {"text": "hi"}}),
        );
        assert_eq!(called.status, 200, "{}", called.body);
        assert_eq!(text_of(&called.json()), "hi");
        let denied = mcp(
            gateway,
            Some(&app),
            "tools/call",
            json!({"name": "notes__echo", "arguments": {"text": "no"}}),
        );
        assert_eq!(denied.status, 403, "{}", denied.body);
        assert!(denied.headers["www-authenticate"].contains("insufficient_scope"));
        let anonymous = mcp(gateway, None, "tools/list", json!({}));
        assert_eq!(anonymous.status, 401);
        assert!(anonymous.headers["www-authenticate"].starts_with("Bearer"));
    }

    // Revoke, then measure how long each node takes to refuse the token from the moment
    // the revocation was committed (the CLI returned).
    let started = Instant::now();
    let out = cluster.cli(3, &["token", "revoke", "app"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = started.elapsed();
    let waits = cluster.nodes.iter().map(|node| {
        let (addr, app) = (node.addr.clone(), app.clone());
        async move {
            let path = "/mcp.cluster.v1.ClusterService/ListServers";
            loop {
                if refused(&raw_call(&addr, path, Some(&app)).await).is_some() {
                    return started.elapsed();
                }
                assert!(started.elapsed() < Duration::from_secs(30), "never refused");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let refused_after = futures::future::join_all(waits).await;
    let farthest = refused_after.iter().max().copied().unwrap_or_default();
    println!(
        "revoke-to-refusal: committed after {committed:?}; refused on nodes after {refused_after:?}; farthest node {:?} after the commit",
        farthest.saturating_sub(committed)
    );
    for node in &cluster.nodes {
        let out = cluster.cli_with_token(
            node.id,
            Some(&app),
            &["call", "time", "echo", r#"{"text": "x"}"#],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("[unauthorized]"),
            "{stderr}"
        );
        let after = mcp(&gateways[&node.id], Some(&app), "tools/list", json!({}));
        assert_eq!(after.status, 401, "{}", after.body);
    }

    // The audit log names the principal, the tool and the outcome; never a token.
    let mut audit = String::new();
    for id in 1..=3 {
        audit.push_str(
            &std::fs::read_to_string(audit_dir.path().join(format!("audit-{id}.jsonl")))
                .unwrap_or_default(),
        );
    }
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect();
    let has = |f: &dyn Fn(&Value) -> bool| lines.iter().any(f);
    assert!(has(&|l| l["principal"] == "app"
        && l["tool"] == "echo"
        && l["server"] == "time"
        && l["outcome"] == "ok"
        && l["via"] == "mcp"));
    assert!(has(&|l| l["principal"] == "app"
        && l["server"] == "notes"
        && l["outcome"] == "denied"));
    assert!(has(&|l| l["principal"] == "app"
        && l["via"] == "grpc"
        && l["outcome"] == "ok"
        && l["request_id"].is_string()));
    assert!(has(&|l| l["principal"] == "admin"
        && l["method"] == "RevokeToken"
        && l["outcome"] == "ok"));
    assert!(has(
        &|l| l["principal"] == "admin" && l["method"] == "CreateToken"
    ));
    assert!(has(&|l| l["method"] == "RevokeToken" && l["token"] == "app"));
    assert!(has(&|l| l["method"] == "CreateToken" && l["token"] == "app"));
    assert!(has(&|l| l["method"] == "Deploy" && l["server"] == "notes"));
    assert!(has(&|l| l["method"] == "Deploy"
        && l["node"].is_u64()
        && l["duration_ms"].is_number()));
    // Arguments only for the server that asks for them.
    assert!(has(&|l| l["server"] == "time"
        && l["via"] == "mcp"
        && l["arguments"]["text"] == "hi"));
    assert!(has(&|l| l["server"] == "time"
        && l["via"] == "grpc"
        && l["arguments"]["text"] == "ok"));
    assert!(has(&|l| l["server"] == "notes" && l["outcome"] == "ok"));
    assert!(!has(
        &|l| l["server"] == "notes" && l.get("arguments").is_some()
    ));

    let mut seen = everything_visible(&cluster);
    seen.push_str(&audit);
    for gateway in gateways.values() {
        seen.push_str(&mcp(gateway, Some(ADMIN), "tools/list", json!({})).body);
    }
    assert_no_secret("logs, listings, metrics and audit", &seen, &[ADMIN, &app]);
}

/// An ES256 signing key made for the test, its JWK (with `kid`) and encoding key.
struct SigningKey {
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
    jwk: jsonwebtoken::jwk::Jwk,
}

fn signing_key(kid: &str) -> SigningKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let encoding = jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der());
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, jsonwebtoken::Algorithm::ES256)
            .expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    SigningKey {
        kid: kid.to_owned(),
        encoding,
        jwk,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn jwt(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let _ = &key.kid;
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

#[test]
fn jwt_access_tokens_at_mcp() {
    const ISSUER: &str = "https://idp.test.invalid";
    let key = signing_key("k1");
    let stranger = signing_key("k2");
    let impostor = signing_key("k1");
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.jwk]}).to_string()).expect("jwks");
    let gateway = format!("127.0.0.1:{}", free_port());
    let audience = format!("http://{gateway}/mcp");
    let cluster = TestCluster::start(
        1,
        ClusterOptions {
            admin_token: Some(ADMIN.to_owned()),
            extra_args: vec![
                "--mcp-addr".to_owned(),
                gateway.clone(),
                "--oauth-issuer".to_owned(),
                ISSUER.to_owned(),
                "--oauth-jwks".to_owned(),
                jwks.display().to_string(),
            ],
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    for name in ["time", "notes"] {
        cluster.deploy_json(1, &json!({"name": name, "command": test_server()}));
        cluster.call_eventually(1, name, "echo", &json!({"text": "warm"}));
    }
    let claims = |aud: &str, exp: u64, scope: &str| json!({"iss": ISSUER, "aud": aud, "sub": "alice", "exp": exp, "nbf": now() - 10, "iat": now(), "scope": scope});
    let valid = jwt(&key, "k1", &claims(&audience, now() + 300, "tools:time__*"));

    // Accepted: the caller sees and calls time's tools only.
    let names = wait_for(
        "time's tools through a JWT",
        Duration::from_secs(45),
        || {
            let names = tool_names(&mcp(&gateway, Some(&valid), "tools/list", json!({})).json());
            names.iter().any(|n| n == "time__echo").then_some(names)
        },
    );
    assert!(names.iter().all(|n| n.starts_with("time__")), "{names:?}");
    let called = mcp(
        &gateway,
        Some(&valid),
        "tools/call",
        json!({"name": "time__echo", "arguments": {"text": "jwt"}}),
    );
    assert_eq!(
        (called.status, text_of(&called.json())),
        (200, "jwt".to_owned()),
        "{}",
        called.body
    );
    let denied = mcp(
        &gateway,
        Some(&valid),
        "tools/call",
        json!({"name": "notes__echo", "arguments": {}}),
    );
    assert_eq!(denied.status, 403);
    assert!(denied.headers["www-authenticate"].contains("error=\"insufficient_scope\""));

    // An operator scope calls everything.
    let operator = jwt(&key, "k1", &claims(&audience, now() + 300, "mcp:operator"));
    let called = mcp(
        &gateway,
        Some(&operator),
        "tools/call",
        json!({"name": "notes__echo", "arguments": {"text": "op"}}),
    );
    assert_eq!(called.status, 200, "{}", called.body);

    // Refused with 401 and a pointer to the metadata: wrong audience, expired, not yet
    // valid, unknown key, bad signature, no token. A token granting nothing is 403.
    let metadata_url = format!("http://{gateway}/.well-known/oauth-protected-resource/mcp");
    let cases = [
        (
            "wrong audience",
            jwt(
                &key,
                "k1",
                &claims("https://other.example/mcp", now() + 300, "mcp:operator"),
            ),
            401,
        ),
        (
            "expired",
            jwt(&key, "k1", &claims(&audience, now() - 600, "mcp:operator")),
            401,
        ),
        (
            "unknown key",
            jwt(
                &stranger,
                "k2",
                &claims(&audience, now() + 300, "mcp:operator"),
            ),
            401,
        ),
        (
            "bad signature",
            jwt(
                &impostor,
                "k1",
                &claims(&audience, now() + 300, "mcp:operator"),
            ),
            401,
        ),
        (
            "no scope",
            jwt(
                &key,
                "k1",
                &claims(&audience, now() + 300, "openid profile"),
            ),
            403,
        ),
    ];
    for (what, token, status) in &cases {
        let reply = mcp(&gateway, Some(token), "tools/list", json!({}));
        assert_eq!(reply.status, *status, "{what}: {}", reply.body);
        let challenge = &reply.headers["www-authenticate"];
        assert!(
            challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
            "{what}: {challenge}"
        );
        let error = if *status == 401 {
            "invalid_token"
        } else {
            "insufficient_scope"
        };
        assert!(challenge.contains(error), "{what}: {challenge}");
    }
    let mut not_yet = claims(&audience, now() + 600, "mcp:operator");
    not_yet["nbf"] = json!(now() + 300);
    let reply = mcp(
        &gateway,
        Some(&jwt(&key, "k1", &not_yet)),
        "tools/list",
        json!({}),
    );
    assert_eq!(reply.status, 401, "not yet valid: {}", reply.body);
    let reply = mcp(&gateway, None, "tools/list", json!({}));
    assert_eq!(reply.status, 401);
    assert!(reply.headers["www-authenticate"].contains("resource_metadata="));

    // The RFC 9728 document, at the path-suffixed and the bare well-known path.
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let doc = http_request(&gateway, "GET", path, &[], "");
        assert_eq!(doc.status, 200, "{path}");
        let doc = doc.json();
        assert_eq!(doc["resource"], audience.as_str());
        assert_eq!(doc["authorization_servers"], json!([ISSUER]));
        assert!(doc["bearer_methods_supported"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("header"))));
        assert!(doc["scopes_supported"]
            .as_array()
            .is_some_and(|s| !s.is_empty()));
    }

    let mut secrets: Vec<&str> = vec![ADMIN, &valid, &operator];
    secrets.extend(cases.iter().map(|(_, t, _)| t.as_str()));
    assert_no_secret(
        "logs, listings and metrics",
        &everything_visible(&cluster),
        &secrets,
    );
}
