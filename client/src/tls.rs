//! TLS towards nodes: the roots a caller trusts (the cluster CA), the certificate it may
//! present, and the connector that dials TCP and runs the rustls handshake for a channel.
//!
//! One crypto provider for the whole workspace: aws-lc-rs ([`provider`]), the one reqwest
//! already brings, so there is one crypto stack in every binary.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use hyper_util::rt::TokioIo;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::Uri;

use crate::error::{Error, ErrorKind};

/// The ALPN protocol gRPC speaks.
pub const ALPN_H2: &[u8] = b"h2";

/// The workspace's crypto provider (aws-lc-rs), built once.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())))
}

/// How a caller speaks TLS to nodes: a rustls client configuration (roots, optional client
/// certificate, ALPN `h2`). Cheap to clone; its `Debug` shows no key material.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field(
                "client_cert",
                &self.config.client_auth_cert_resolver.has_certs(),
            )
            .finish()
    }
}

impl ClientTls {
    /// Trusts the CA certificates in `ca_file` (PEM) and, when both are given, presents the
    /// certificate chain in `cert_file` with the private key in `key_file`.
    pub fn from_files(
        ca_file: &Path,
        cert_file: Option<&Path>,
        key_file: Option<&Path>,
    ) -> Result<Self, Error> {
        let roots = root_store(&read_certs(ca_file, "ca_file")?, "ca_file")?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("ca_file", format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots);
        let config = match (cert_file, key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(read_certs(cert, "cert")?, read_key(key, "key")?)
                .map_err(|e| {
                    config_error(
                        "key",
                        format!(
                            "the key in {} does not fit the certificate in {}: {e}",
                            key.display(),
                            cert.display()
                        ),
                    )
                })?,
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(config_error(
                    "key",
                    "a client certificate needs its private key (--key)",
                ))
            }
            (None, Some(_)) => {
                return Err(config_error(
                    "cert",
                    "a private key needs its client certificate (--cert)",
                ))
            }
        };
        Ok(Self::from_config(config))
    }

    /// TLS with `config` as built by the caller (a node builds one whose certificate and
    /// roots follow its files); ALPN is set to `h2` here.
    pub fn from_config(mut config: ClientConfig) -> Self {
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Self {
            config: Arc::new(config),
        }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }
}

/// The certificates in the PEM file at `path`; `field` names the setting in errors.
pub fn read_certs(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| config_error(field, format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            config_error(
                field,
                format!("{} is not a PEM certificate file: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(config_error(
            field,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The private key in the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path, field: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        config_error(
            field,
            format!("cannot read a PEM private key from {}: {e}", path.display()),
        )
    })
}

/// A root store holding every certificate of `certs`.
pub fn root_store(certs: &[CertificateDer<'static>], field: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert.clone())
            .map_err(|e| config_error(field, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn config_error(field: &str, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config, message).with_field(field)
}

/// A TLS handshake with a node that failed: nothing was sent, the connection never opened.
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake with {addr} failed: {source}")]
pub struct HandshakeError {
    addr: String,
    #[source]
    source: std::io::Error,
}

/// Dials `uri`'s host and port and runs the TLS handshake, checking the node's certificate
/// against the host name (or IP address) dialed.
pub(crate) async fn connect(
    tls: ClientTls,
    uri: Uri,
) -> Result<TokioIo<TlsStream<TcpStream>>, Box<dyn std::error::Error + Send + Sync>> {
    let host = uri
        .host()
        .ok_or_else(|| format!("address {uri} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri
        .port_u16()
        .ok_or_else(|| format!("address {uri} has no port"))?;
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(host.clone())
        .map_err(|e| format!("{host} is not a host name or IP address: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config))
        .connect(name, tcp)
        .await
        .map_err(|source| HandshakeError {
            addr: format!("{host}:{port}"),
            source,
        })?;
    Ok(TokioIo::new(stream))
}
