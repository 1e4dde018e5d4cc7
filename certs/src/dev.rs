//! The development PKI that `kmipd --dev` creates on first start and reuses afterwards.
//!
//! Key types: the server and the two client certificates use [`DevPkiOptions::key_type`]
//! (RSA-2048 by default, the combination vCenter is known to accept, including for an uploaded
//! client certificate and key); the CA uses [`DevPkiOptions::ca_key_type`] (RSA-2048 by
//! default too). Tests that want speed pick ECDSA P-256 for both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::fsutil::{ensure_dir, write_atomic, KEY_MODE, PUBLIC_MODE};
use crate::issue::{check_issued_by, check_key_matches, Ca, CaOptions, ServerOptions};
use crate::keys::{KeyType, PrivateKey};
use crate::layout;
use crate::role::{ClientName, Role};

/// Options of the development PKI.
#[derive(Debug, Clone)]
pub struct DevPkiOptions {
    /// Key type of the server and client certificates.
    pub key_type: KeyType,
    /// Key type of the CA.
    pub ca_key_type: KeyType,
    /// Host name for the server certificate's SAN and CN; `None` reads the machine's.
    pub host_name: Option<String>,
    /// More DNS SANs for the server certificate.
    pub extra_dns: Vec<String>,
    /// More IP SANs for the server certificate.
    pub extra_ips: Vec<IpAddr>,
    /// Validity of the leaf certificates, in days.
    pub validity_days: u32,
    /// Validity of the CA, in days.
    pub ca_validity_days: u32,
}

impl Default for DevPkiOptions {
    fn default() -> Self {
        Self {
            key_type: KeyType::Rsa2048,
            ca_key_type: KeyType::Rsa2048,
            host_name: None,
            extra_dns: Vec::new(),
            extra_ips: Vec::new(),
            validity_days: 825,
            ca_validity_days: 3650,
        }
    }
}

/// Where the development PKI's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPkiPaths {
    /// The PKI directory.
    pub dir: PathBuf,
    /// `ca.crt`
    pub ca_cert: PathBuf,
    /// `ca.key`
    pub ca_key: PathBuf,
    /// `server.crt`
    pub server_cert: PathBuf,
    /// `server.key`
    pub server_key: PathBuf,
    /// `admin.crt` (`CN=admin`, role admin)
    pub admin_cert: PathBuf,
    /// `admin.key`
    pub admin_key: PathBuf,
    /// `vcenter.crt` (`CN=vcenter`, role vcenter)
    pub vcenter_cert: PathBuf,
    /// `vcenter.key`
    pub vcenter_key: PathBuf,
    /// Whether this call created the files (false: existing files were reused).
    pub created: bool,
}

impl DevPkiPaths {
    fn new(dir: &Path, created: bool) -> Self {
        Self {
            dir: dir.to_owned(),
            ca_cert: dir.join(layout::CA_CERT),
            ca_key: dir.join(layout::CA_KEY),
            server_cert: dir.join(layout::SERVER_CERT),
            server_key: dir.join(layout::SERVER_KEY),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            vcenter_cert: dir.join("vcenter.crt"),
            vcenter_key: dir.join("vcenter.key"),
            created,
        }
    }

    fn all(&self) -> [&PathBuf; 8] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
            &self.admin_cert,
            &self.admin_key,
            &self.vcenter_cert,
            &self.vcenter_key,
        ]
    }

    fn leaves(&self) -> [(&PathBuf, &PathBuf); 3] {
        [
            (&self.server_cert, &self.server_key),
            (&self.admin_cert, &self.admin_key),
            (&self.vcenter_cert, &self.vcenter_key),
        ]
    }
}

/// Creates the development PKI in `dir` on first call; later calls check and reuse it.
///
/// Creates `ca.crt/.key`, `server.crt/.key` (SANs `localhost`, the host name, `127.0.0.1`,
/// `::1` and the extras; EKU serverAuth+clientAuth), `admin.crt/.key` (`CN=admin`,
/// `OU=kmipd-role:admin`) and `vcenter.crt/.key` (`CN=vcenter`, `OU=kmipd-role:vcenter`).
/// Keys are PKCS#8 PEM, mode 0600; every file is written atomically.
///
/// When the files exist they are checked (each key matches its certificate, each leaf is
/// signed by the CA) and reused. When only some exist, [`Error::Incomplete`] is returned and
/// nothing is overwritten.
pub fn ensure_dev_pki(dir: &Path, opts: &DevPkiOptions) -> Result<DevPkiPaths> {
    let paths = DevPkiPaths::new(dir, false);
    let (present, missing): (Vec<&PathBuf>, Vec<&PathBuf>) =
        paths.all().into_iter().partition(|p| p.exists());
    // Once the certificates exist the CA key is not needed: it may be offline.
    if missing.is_empty() || missing == [&paths.ca_key] {
        check_existing(&paths)?;
        return Ok(paths);
    }
    if !present.is_empty() {
        let names = |v: Vec<&PathBuf>| {
            v.iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect()
        };
        return Err(Error::Incomplete {
            dir: dir.to_owned(),
            missing: names(missing),
            present: names(present),
        });
    }
    create(dir, opts, OffsetDateTime::now_utc())?;
    Ok(DevPkiPaths::new(dir, true))
}

fn check_existing(paths: &DevPkiPaths) -> Result<()> {
    // The CA certificate only: the CA key may be offline or encrypted.
    let ca = crate::pem::load_cert(&paths.ca_cert)?;
    for (cert_path, key_path) in paths.leaves() {
        let cert = crate::pem::load_cert(cert_path)?;
        let key = PrivateKey::from_pem_file(key_path)?;
        check_key_matches(&cert, &key, key_path)?;
        check_issued_by(&cert, &ca, cert_path)?;
    }
    Ok(())
}

fn create(dir: &Path, opts: &DevPkiOptions, now: OffsetDateTime) -> Result<()> {
    ensure_dir(dir)?;
    let host = opts.host_name.clone().or_else(crate::net::host_name);
    let (ca, ca_key) = Ca::generate(
        &CaOptions {
            key_type: opts.ca_key_type,
            common_name: format!("kmipd dev CA {}", host.as_deref().unwrap_or("localhost")),
            validity_days: opts.ca_validity_days,
        },
        now,
    )?;

    let mut dns = vec!["localhost".to_owned()];
    dns.extend(host.iter().cloned());
    dns.extend(opts.extra_dns.iter().cloned());
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    ips.extend(opts.extra_ips.iter().copied());
    let server = ca.issue_server(
        &ServerOptions {
            key_type: opts.key_type,
            common_name: host.clone().unwrap_or_else(|| "localhost".into()),
            dns,
            ips,
            validity_days: opts.validity_days,
        },
        now,
    )?;

    let mut clients = Vec::new();
    for name in ["admin", "vcenter"] {
        let issued = ca.issue_client(
            &ClientName::new(name)?,
            &Role::new(name)?,
            opts.key_type,
            opts.validity_days,
            now,
        )?;
        clients.push((name, issued));
    }

    // Keys first, certificates after, the CA certificate last: a crash part-way leaves an
    // incomplete directory, which the next start reports instead of reusing.
    let mut writes: Vec<(String, &[u8], u32)> = Vec::new();
    writes.push((layout::CA_KEY.into(), ca_key.as_bytes(), KEY_MODE));
    if let Some(k) = &server.key_pem {
        writes.push((layout::SERVER_KEY.into(), k.as_bytes(), KEY_MODE));
    }
    for (name, issued) in &clients {
        if let Some(k) = &issued.key_pem {
            writes.push((format!("{name}.key"), k.as_bytes(), KEY_MODE));
        }
    }
    writes.push((
        layout::SERVER_CERT.into(),
        server.cert_pem.as_bytes(),
        PUBLIC_MODE,
    ));
    for (name, issued) in &clients {
        writes.push((
            format!("{name}.crt"),
            issued.cert_pem.as_bytes(),
            PUBLIC_MODE,
        ));
    }
    let ca_pem = ca.cert_pem();
    writes.push((layout::CA_CERT.into(), ca_pem.as_bytes(), PUBLIC_MODE));
    for (name, data, mode) in writes {
        write_atomic(&dir.join(name), data, mode, false)?;
    }
    Ok(())
}
