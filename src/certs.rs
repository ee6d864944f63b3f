//! `mcpd certs init`: a cluster CA, one certificate per node and a client certificate,
//! made with rcgen and written as PEM files for `mcpd node --tls-cert/--tls-key/--tls-ca`
//! and the clients' `--ca-file/--cert/--key`.
//!
//! A CA already in the directory is kept and signs the new certificates, so running it
//! again re-issues node and client certificates (a rotation: nodes pick the new files up
//! without a restart) or adds nodes. Node certificates carry `serverAuth` and `clientAuth`
//! (a node serves, and dials its peers with the same certificate); the client certificate
//! carries `clientAuth` only, which is how a node tells a peer from a client.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use crate::cli::CertsInitArgs;

/// The CA's subject; a CA found in the directory is re-created as an issuer with it (its
/// certificate is not parsed), so it must never change.
const CA_COMMON_NAME: &str = "mcpd cluster CA";
const ORGANIZATION: &str = "mcp-rust";
/// How long the CA is valid.
const CA_DAYS: i64 = 3650;

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The files `init` wrote.
#[derive(Debug)]
pub struct Written {
    pub ca: PathBuf,
    /// Per node: name, certificate, key.
    pub nodes: Vec<(String, PathBuf, PathBuf)>,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The CA was already there and was kept.
    pub ca_kept: bool,
}

/// The certificate file of node `name` in `dir`.
pub fn node_cert_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("node-{name}.pem"))
}

/// The key file of node `name` in `dir`.
pub fn node_key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("node-{name}-key.pem"))
}

/// Runs `mcpd certs init`.
pub fn run(args: CertsInitArgs) -> Result<(), Box<dyn std::error::Error>> {
    let written = init(&args.dir, &args.nodes, &args.san, args.days)?;
    let ca = written.ca.display();
    println!(
        "{} {ca}",
        if written.ca_kept {
            "kept CA     "
        } else {
            "created CA  "
        }
    );
    for (name, cert, key) in &written.nodes {
        println!("node {name:<7} {} {}", cert.display(), key.display());
    }
    println!(
        "client       {} {}",
        written.client_cert.display(),
        written.client_key.display()
    );
    if let Some((_, cert, key)) = written.nodes.first() {
        println!(
            "\nStart a node with:\n  mcpd node --tls-cert {} --tls-key {} --tls-ca {ca} ...\n\
             and talk to it with:\n  mcpd --ca-file {ca} --cert {} --key {} status",
            cert.display(),
            key.display(),
            written.client_cert.display(),
            written.client_key.display()
        );
    }
    Ok(())
}

/// Writes (or keeps) the CA in `dir` and issues a certificate for each of `nodes` (valid
/// for the node's name, `localhost`, 127.0.0.1, ::1 and `extra_sans`) and one client
/// certificate, each valid for `days`.
pub fn init(
    dir: &Path,
    nodes: &[String],
    extra_sans: &[String],
    days: u32,
) -> Result<Written, CertsError> {
    if nodes.is_empty() {
        return Err(CertsError::Invalid(
            "--nodes: name at least one node".to_owned(),
        ));
    }
    if days == 0 {
        return Err(CertsError::Invalid("--days must be at least 1".to_owned()));
    }
    for name in nodes {
        let safe = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
        if !safe {
            return Err(CertsError::Invalid(format!(
                "--nodes: {name:?} is not a host name or IP address"
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| CertsError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let ca_cert = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    let (issuer, ca_kept) = match (ca_cert.exists(), ca_key.exists()) {
        (true, true) => {
            let pem = std::fs::read_to_string(&ca_key).map_err(|source| CertsError::Read {
                path: ca_key.display().to_string(),
                source,
            })?;
            (Issuer::new(ca_params()?, KeyPair::from_pem(&pem)?), true)
        }
        (false, false) => {
            let key = KeyPair::generate()?;
            let cert = ca_params()?.self_signed(&key)?;
            write(&ca_key, &key.serialize_pem(), true)?;
            write(&ca_cert, &cert.pem(), false)?;
            (Issuer::new(ca_params()?, key), false)
        }
        _ => {
            return Err(CertsError::Invalid(format!(
                "{} holds only half a CA (ca.pem and ca-key.pem go together): remove the other \
                 file or restore the missing one",
                dir.display()
            )))
        }
    };
    let mut written_nodes = Vec::new();
    for name in nodes {
        let mut sans = vec![
            name.clone(),
            "localhost".into(),
            "127.0.0.1".into(),
            "::1".into(),
        ];
        sans.extend(extra_sans.iter().cloned());
        let mut params = leaf_params(name, &sans, days)?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let (cert_path, key_path) = (node_cert_path(dir, name), node_key_path(dir, name));
        write(&key_path, &key.serialize_pem(), true)?;
        write(&cert_path, &cert.pem(), false)?;
        written_nodes.push((name.clone(), cert_path, key_path));
    }
    let mut params = leaf_params("mcpd client", &[], days)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let (client_cert, client_key) = (dir.join("client.pem"), dir.join("client-key.pem"));
    write(&client_key, &key.serialize_pem(), true)?;
    write(&client_cert, &cert.pem(), false)?;
    Ok(Written {
        ca: ca_cert,
        nodes: written_nodes,
        client_cert,
        client_key,
        ca_kept,
    })
}

fn ca_params() -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(CA_DAYS);
    Ok(params)
}

fn leaf_params(
    common_name: &str,
    sans: &[String],
    days: u32,
) -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::default();
    for san in sans {
        params.subject_alt_names.push(match san.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(san.clone().try_into().map_err(|_| {
                CertsError::Invalid(format!("{san:?} is not a host name or IP address"))
            })?),
        });
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    Ok(params)
}

/// Writes `contents` to `path` through a temporary file and a rename, so a node polling
/// the file never reads half of it; `secret` files are readable by their owner only.
fn write(path: &Path, contents: &str, secret: bool) -> Result<(), CertsError> {
    let err = |source| CertsError::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    if !secret {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
    }
    // NamedTempFile is created 0600, which is what a key needs.
    tmp.write_all(contents.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_ca_nodes_and_a_client_and_keeps_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = vec!["n1".to_owned(), "10.0.0.7".to_owned()];
        let first = init(dir.path(), &nodes, &["node1.example".into()], 30).unwrap();
        assert!(!first.ca_kept);
        let ca = std::fs::read_to_string(&first.ca).unwrap();
        let n1 = std::fs::read_to_string(node_cert_path(dir.path(), "n1")).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(n1.starts_with("-----BEGIN CERTIFICATE-----"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(node_key_path(dir.path(), "n1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keys are private: {mode:o}");
        let again = init(dir.path(), &nodes[..1], &[], 30).unwrap();
        assert!(again.ca_kept);
        assert_eq!(std::fs::read_to_string(&again.ca).unwrap(), ca);
        assert_ne!(
            std::fs::read_to_string(node_cert_path(dir.path(), "n1")).unwrap(),
            n1,
            "re-issued"
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(init(dir.path(), &[], &[], 30).is_err());
        assert!(init(dir.path(), &["a b".into()], &[], 30).is_err());
        assert!(init(dir.path(), &["n1".into()], &[], 0).is_err());
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let half = init(dir.path(), &["n1".into()], &[], 30).unwrap_err();
        assert!(half.to_string().contains("half a CA"), "{half}");
    }
}
