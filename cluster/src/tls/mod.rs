//! A node's TLS: its certificate and key, the cluster CA, and what they are used for.
//!
//! - The node serves its certificate on the gRPC listener (and, when asked, on `/metrics`
//!   and `/mcp`), and presents the same certificate as a client to its peers: mutual TLS
//!   under the cluster CA. A certificate from any other CA fails the handshake both ways.
//! - Client certificates are checked against the CA. A certificate carrying the
//!   `serverAuth` extended key usage (every node certificate of `mcpd certs init`) is a
//!   node's: only such a connection may send Raft RPCs ([`PeerCert::node`]).
//!   Certificates made for clients carry `clientAuth` only.
//! - The files are polled every [`RELOAD_POLL`]: a changed certificate, key or CA is read,
//!   checked (the key must fit the certificate) and swapped in for new handshakes without
//!   a restart; open connections keep what they negotiated. A broken set of files is
//!   logged and the previous one kept.
//!
//! [`incoming`] runs the handshakes of a listener off its accept loop; [`peer_layer`]
//! refuses Raft RPCs that come without a node certificate.

pub mod incoming;
pub mod peer_layer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use mcp_client::tls::{provider, read_certs, read_key, root_store, ClientTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::error::ClusterError;

/// How often the certificate files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Whether the gRPC listener demands a client certificate from every caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// Callers may present one (peers do: Raft RPCs need it); clients may connect with
    /// only the CA and authenticate with a token.
    #[default]
    Optional,
    /// A handshake without a certificate of the cluster CA is refused.
    Required,
}

/// What a node is told about TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The node's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The cluster CA (PEM): peers and client certificates are checked against it.
    pub ca: PathBuf,
    /// Whether every gRPC caller must present a certificate.
    pub client_auth: ClientAuth,
    /// Serve `/metrics`, `/healthz` and `/readyz` over TLS too.
    pub metrics: bool,
    /// Serve `/mcp` over TLS too.
    pub gateway: bool,
}

/// What a connection's client certificate proved, as seen by the request handlers (tonic
/// puts it in each request's extensions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCert {
    /// The caller presented a certificate of the cluster CA.
    pub client_cert: bool,
    /// That certificate is a node's (`serverAuth` usage): the caller is a peer.
    pub node: bool,
}

/// When the files were last seen changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamps(Vec<Option<(SystemTime, u64)>>);

impl Stamps {
    fn of(paths: &[&Path]) -> Self {
        Self(
            paths
                .iter()
                .map(|p| {
                    std::fs::metadata(p)
                        .ok()
                        .and_then(|m| Some((m.modified().ok()?, m.len())))
                })
                .collect(),
        )
    }
}

/// One consistent set of material, read from the files.
struct Loaded {
    key: Arc<CertifiedKey>,
    ca: Vec<CertificateDer<'static>>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    server_verifier: Arc<WebPkiServerVerifier>,
}

impl Loaded {
    fn read(settings: &TlsSettings) -> Result<Self, ClusterError> {
        let config = |e: mcp_client::Error| ClusterError::Config(format!("TLS: {}", e.message));
        let certs = read_certs(&settings.cert, "tls_cert").map_err(config)?;
        let key = read_key(&settings.key, "tls_key").map_err(config)?;
        let ca = read_certs(&settings.ca, "tls_ca").map_err(config)?;
        let key = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
            ClusterError::Config(format!(
                "TLS: the key in {} does not fit the certificate in {}: {e}",
                settings.key.display(),
                settings.cert.display()
            ))
        })?;
        let roots = Arc::new(root_store(&ca, "tls_ca").map_err(config)?);
        let client_verifier = {
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider());
            match settings.client_auth {
                ClientAuth::Optional => builder.allow_unauthenticated(),
                ClientAuth::Required => builder,
            }
            .build()
            .map_err(|e| ClusterError::Config(format!("TLS: cluster CA unusable: {e}")))?
        };
        let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| ClusterError::Config(format!("TLS: cluster CA unusable: {e}")))?;
        Ok(Self {
            key: Arc::new(key),
            ca,
            client_verifier,
            server_verifier,
        })
    }
}

/// The node's TLS material, shared by every listener and every peer channel; follows its
/// files (see [`NodeTls::watch`]). Cheap to clone.
#[derive(Clone)]
pub struct NodeTls {
    settings: Arc<TlsSettings>,
    current: Arc<RwLock<Arc<Loaded>>>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Reads the files of `settings`; any problem is a configuration error naming the file.
    pub fn load(settings: TlsSettings) -> Result<Self, ClusterError> {
        let loaded = Loaded::read(&settings)?;
        Ok(Self {
            settings: Arc::new(settings),
            current: Arc::new(RwLock::new(Arc::new(loaded))),
        })
    }

    /// The settings this was loaded from.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    fn loaded(&self) -> Arc<Loaded> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn paths(&self) -> [&Path; 3] {
        [&self.settings.cert, &self.settings.key, &self.settings.ca]
    }

    /// Polls the files every [`RELOAD_POLL`] until the returned task is aborted, swapping
    /// in a changed set once it reads and checks out.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut seen = Stamps::of(&tls.paths());
            loop {
                tokio::time::sleep(RELOAD_POLL).await;
                let now = Stamps::of(&tls.paths());
                if now == seen {
                    continue;
                }
                match Loaded::read(&tls.settings) {
                    Ok(loaded) => {
                        *tls.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
                        seen = now;
                        tracing::info!(
                            cert = %tls.settings.cert.display(),
                            "TLS certificate files changed: reloaded for new connections"
                        );
                    }
                    // Often a rotation caught half-way (the certificate written, not yet
                    // its key): the next poll tries again, the old material stays in use.
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but cannot be used yet; keeping the previous ones")
                    }
                }
            }
        })
    }

    /// The server side for a listener speaking `alpn` (`h2` for gRPC, `http/1.1` for the
    /// HTTP listeners).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, ClusterError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClusterError::Config(format!("TLS setup failed: {e}")))?
            .with_client_cert_verifier(Arc::new(Following(self.clone())))
            .with_cert_resolver(Arc::new(Following(self.clone())));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// How this node dials its peers: their certificates checked against the cluster CA,
    /// its own certificate presented.
    pub fn peer_client(&self) -> Result<ClientTls, ClusterError> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClusterError::Config(format!("TLS setup failed: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Following(self.clone())))
            .with_client_cert_resolver(Arc::new(Following(self.clone())));
        Ok(ClientTls::from_config(config))
    }

    /// What the client certificate of a finished handshake proves.
    pub fn identify(&self, presented: Option<&[CertificateDer<'static>]>) -> PeerCert {
        let Some((end_entity, intermediates)) = presented.and_then(|c| c.split_first()) else {
            return PeerCert::default();
        };
        // The handshake already checked the chain for client use; here only whether the
        // same chain also holds for server use, which marks a node's certificate.
        let loaded = self.loaded();
        let node = is_node_cert(end_entity, intermediates, &loaded.ca);
        PeerCert {
            client_cert: true,
            node,
        }
    }
}

/// True when `cert` chains to one of `ca` for `serverAuth`.
fn is_node_cert(
    cert: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'static>],
    ca: &[CertificateDer<'static>],
) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let anchors: Vec<_> = ca
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .collect();
    cert.verify_for_usage(
        provider().signature_verification_algorithms.all,
        &anchors,
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .is_ok()
}

/// The verifiers and certificate resolvers rustls calls: each looks up the material
/// current at the time of the handshake.
#[derive(Debug)]
struct Following(NodeTls);

impl ResolvesServerCert for Following {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.loaded().key))
    }
}

impl ResolvesClientCert for Following {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.loaded().key))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for Following {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.settings.client_auth == ClientAuth::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints are optional; a node and the CLI present their one certificate anyway.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .loaded()
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .loaded()
            .client_verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .loaded()
            .client_verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.loaded().client_verifier.supported_verify_schemes()
    }
}

impl ServerCertVerifier for Following {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.loaded().server_verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .loaded()
            .server_verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .loaded()
            .server_verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.loaded().server_verifier.supported_verify_schemes()
    }
}
