//! kmipd's configuration: TOML with unknown keys rejected, validated into a
//! typed [`Config`] whose errors name the key and the problem.
//!
//! `kmipd --dev` builds the same structure from embedded defaults
//! ([`Config::dev`]); `kmipd --config FILE` reads it from TOML. The commented
//! example in `docs/kmipd.example.toml` is parsed by a unit test.

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// A configuration error: which key, what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown key (the message names it).
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What serde/toml said, with the key and line.
        message: String,
    },
    /// A value is present but invalid.
    #[error("{key}: {problem}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

/// Roles, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, on every object.
    Admin,
    /// vCenter: create, register, get, attributes, activate, locate, query on its group.
    Vcenter,
    /// ESXi hosts: get and get attributes on their group's objects.
    Host,
    /// Read attributes, never material.
    Auditor,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "vcenter" => Ok(Role::Vcenter),
            "host" => Ok(Role::Host),
            "auditor" => Ok(Role::Auditor),
            other => Err(format!(
                "unknown role {other:?} (admin, vcenter, host, auditor)"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Vcenter => "vcenter",
            Role::Host => "host",
            Role::Auditor => "auditor",
        })
    }
}

// ---- raw TOML shape -------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    tls: RawTls,
    hsm: Option<kmipd_hsm::HsmConfig>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    access: RawAccess,
    #[serde(default)]
    identities: Vec<RawIdentity>,
    #[serde(default)]
    policies: RawPolicies,
    #[serde(default)]
    object_groups: Vec<RawObjectGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectGroup {
    name: String,
    algorithm: String,
    length: i32,
    usage: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    max_connections: Option<usize>,
    handshake_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_message_size: Option<usize>,
    shutdown_grace_ms: Option<u64>,
    vendor_identification: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    pki_dir: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    #[serde(default)]
    client_ca: Vec<PathBuf>,
    tls12: Option<bool>,
    require_client_cert: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    backend: Option<String>,
    path: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCache {
    enabled: Option<bool>,
    max_entries: Option<usize>,
    ttl_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
    audit_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    default_group: Option<String>,
    lockdown: Option<bool>,
    #[serde(default)]
    admin_from: Vec<String>,
    #[serde(default)]
    allow_from: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    check_interval_secs: Option<u64>,
    state_transitions: Option<bool>,
    rotate_master_key_days: Option<u32>,
    rotation_max_keys_per_sec: Option<u64>,
    #[serde(default)]
    cryptoperiod: Vec<RawCryptoperiod>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCryptoperiod {
    name: String,
    #[serde(rename = "match")]
    matches: std::collections::BTreeMap<String, String>,
    rekey_after_days: u32,
    deactivate_after_days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    name: String,
    cn: Option<String>,
    san: Option<String>,
    fingerprint: Option<String>,
    role: String,
    group: Option<String>,
    username: Option<String>,
    password_sha256: Option<String>,
}

// ---- validated config -----------------------------------------------------

/// How a client certificate is matched to a configured identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMatch {
    /// Subject common name.
    Cn(String),
    /// A DNS, IP or email SAN.
    San(String),
    /// SHA-256 of the certificate's DER.
    Fingerprint([u8; 32]),
}

/// A configured identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Name used in audit records.
    pub name: String,
    /// How certificates match it.
    pub matcher: IdentityMatch,
    /// Role.
    pub role: Role,
    /// Group its objects belong to.
    pub group: String,
    /// KMIP Username/Password credential, checked when the client sends one.
    pub credential: Option<(String, [u8; 32])>,
}

/// Server listener settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Concurrent connections.
    pub max_connections: usize,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Idle deadline between requests.
    pub idle_timeout: Duration,
    /// Deadline to read a request body and to process a request.
    pub request_timeout: Duration,
    /// Largest message accepted.
    pub max_message_size: usize,
    /// Time given to in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// Vendor Identification in Query responses.
    pub vendor_identification: String,
}

/// TLS settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PKI directory (own CA, pins, trusted CAs).
    pub pki_dir: PathBuf,
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// Extra CA bundles whose clients are trusted (role from the certificate's OU).
    pub client_ca: Vec<PathBuf>,
    /// Offer TLS 1.2 besides 1.3.
    pub tls12: bool,
    /// Refuse handshakes without a client certificate (otherwise the first
    /// request gets Authentication Not Successful).
    pub require_client_cert: bool,
}

/// Storage backend choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// sled in a directory.
    Sled(PathBuf),
    /// In memory (tests only: nothing survives).
    Memory,
}

/// Unwrapped-key cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// On or off.
    pub enabled: bool,
    /// Entries.
    pub max_entries: usize,
    /// Lifetime of an entry.
    pub ttl: Duration,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// JSON lines instead of text.
    pub json: bool,
    /// Filter (tracing env-filter syntax).
    pub level: String,
    /// Audit log file (hash-chained JSON lines); `None` sends audit records to the log.
    pub audit_file: Option<PathBuf>,
}

/// Access control.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// Group of identities not configured explicitly.
    pub default_group: String,
    /// Lockdown: admin operations only from `admin_from`.
    pub lockdown: bool,
    /// Addresses admin operations are accepted from in lockdown.
    pub admin_from: Vec<Cidr>,
    /// Per-role source allowlists (absent role: any address).
    pub allow_from: Vec<(Role, Vec<Cidr>)>,
}

/// A cryptoperiod: keys whose custom attributes match are re-keyed after
/// `rekey_after` and the old key is deactivated `grace` later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cryptoperiod {
    /// Name, for logs and audit.
    pub name: String,
    /// Custom attributes (`x-...` name, text value) that must all match.
    pub matches: Vec<(String, String)>,
    /// Age (from Activation Date, else Initial Date) after which the key is re-keyed.
    pub rekey_after: Duration,
    /// Time between the re-key and the old key's Deactivation Date.
    pub grace: Duration,
}

/// Policies the scheduler inside kmipd applies by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoliciesConfig {
    /// How often the scheduler looks (a random jitter of up to 10 % is added).
    pub check_interval: Duration,
    /// Persist date-driven state changes (Activation, Deactivation dates)
    /// and audit Process Start and Protect Stop dates as they pass.
    pub state_transitions: bool,
    /// Rotate the master key this often (`None`: never by itself).
    pub rotate_master_key: Option<Duration>,
    /// Upper bound of the re-wrap rate of a rotation (`None`: unbounded).
    pub rotation_max_keys_per_sec: Option<u64>,
    /// Cryptoperiods (none by default: vCenter re-keys from its side).
    pub cryptoperiods: Vec<Cryptoperiod>,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        Self {
            check_interval: Duration::from_secs(3600),
            state_transitions: true,
            rotate_master_key: None,
            rotation_max_keys_per_sec: None,
            cryptoperiods: Vec::new(),
        }
    }
}

const DAY: u64 = 86_400;

fn validate_policies(raw: RawPolicies) -> Result<PoliciesConfig, ConfigError> {
    let d = PoliciesConfig::default();
    let check_interval = match raw.check_interval_secs {
        None => d.check_interval,
        Some(s) if (10..=7 * DAY).contains(&s) => Duration::from_secs(s),
        Some(_) => {
            return Err(invalid(
                "policies.check_interval_secs",
                "must be between 10 and 604800",
            ))
        }
    };
    let rotate_master_key = match raw.rotate_master_key_days {
        None => None,
        Some(0) => {
            return Err(invalid(
                "policies.rotate_master_key_days",
                "must be at least 1 (omit it to never rotate by itself)",
            ))
        }
        Some(n) => Some(Duration::from_secs(n as u64 * DAY)),
    };
    if raw.rotation_max_keys_per_sec == Some(0) {
        return Err(invalid(
            "policies.rotation_max_keys_per_sec",
            "must be at least 1 (omit it for no limit)",
        ));
    }
    let mut cryptoperiods = Vec::new();
    for (i, c) in raw.cryptoperiod.into_iter().enumerate() {
        let key = |k: &str| format!("policies.cryptoperiod[{i}].{k}");
        if c.matches.is_empty() {
            return Err(invalid(key("match"), "at least one attribute is required"));
        }
        for name in c.matches.keys() {
            if !name.starts_with("x-") && !name.starts_with("y-") {
                return Err(invalid(
                    key("match"),
                    format!("{name:?}: only custom attributes (x-...) can be matched"),
                ));
            }
        }
        if c.rekey_after_days == 0 {
            return Err(invalid(key("rekey_after_days"), "must be at least 1"));
        }
        cryptoperiods.push(Cryptoperiod {
            name: c.name,
            matches: c.matches.into_iter().collect(),
            rekey_after: Duration::from_secs(c.rekey_after_days as u64 * DAY),
            grace: Duration::from_secs(c.deactivate_after_days.unwrap_or(30) as u64 * DAY),
        });
    }
    Ok(PoliciesConfig {
        check_interval,
        state_transitions: raw.state_transitions.unwrap_or(d.state_transitions),
        rotate_master_key,
        rotation_max_keys_per_sec: raw.rotation_max_keys_per_sec,
        cryptoperiods,
    })
}

/// An object group whose fresh members kmipd makes on demand: a Locate
/// for a fresh member (Object Group Member = Group Member Fresh) of this
/// group that finds none creates one, as the caller's Create would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectGroupConfig {
    /// The Object Group value.
    pub name: String,
    /// Cryptographic Algorithm of the keys made.
    pub algorithm: kmip::tables::CryptographicAlgorithm,
    /// Cryptographic Length of the keys made.
    pub length: i32,
    /// Cryptographic Usage Mask of the keys made.
    pub usage: u32,
}

fn validate_object_groups(raw: Vec<RawObjectGroup>) -> Result<Vec<ObjectGroupConfig>, ConfigError> {
    use kmip::tables::{CryptographicAlgorithm, CryptographicUsageMask};
    let mut out: Vec<ObjectGroupConfig> = Vec::new();
    for (i, g) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("object_groups[{i}].{k}");
        if g.name.is_empty() || g.name.len() > 256 {
            return Err(invalid(key("name"), "must be 1 to 256 characters"));
        }
        if out.iter().any(|o| o.name == g.name) {
            return Err(invalid(
                key("name"),
                format!("{:?} is listed twice", g.name),
            ));
        }
        let algorithm = CryptographicAlgorithm::from_name(&g.algorithm)
            .filter(|a| {
                [
                    CryptographicAlgorithm::AES,
                    CryptographicAlgorithm::V_3DES,
                    CryptographicAlgorithm::HMAC_SHA256,
                    CryptographicAlgorithm::HMAC_SHA384,
                    CryptographicAlgorithm::HMAC_SHA512,
                ]
                .contains(a)
            })
            .ok_or_else(|| {
                invalid(
                    key("algorithm"),
                    "must be AES, 3DES, HMAC-SHA256, HMAC-SHA384 or HMAC-SHA512",
                )
            })?;
        let length_ok = match algorithm {
            CryptographicAlgorithm::AES => matches!(g.length, 128 | 192 | 256),
            CryptographicAlgorithm::V_3DES => matches!(g.length, 112 | 168 | 192),
            _ => (128..=4096).contains(&g.length) && g.length % 8 == 0,
        };
        if !length_ok {
            return Err(invalid(
                key("length"),
                format!("{} is not a key length of {algorithm}", g.length),
            ));
        }
        let usage = match &g.usage {
            None => CryptographicUsageMask::ENCRYPT.0 | CryptographicUsageMask::DECRYPT.0,
            Some(u) => kmip::tables::mask_from_names(CryptographicUsageMask::TABLE, u)
                .filter(|m| *m != 0)
                .ok_or_else(|| {
                    invalid(
                        key("usage"),
                        "Cryptographic Usage Mask names separated by spaces or |, e.g. \"Encrypt Decrypt\"",
                    )
                })?,
        };
        out.push(ObjectGroupConfig {
            name: g.name,
            algorithm,
            length: g.length,
            usage,
        });
    }
    Ok(out)
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener.
    pub server: ServerConfig,
    /// TLS.
    pub tls: TlsConfig,
    /// Key protection.
    pub hsm: kmipd_hsm::HsmConfig,
    /// Storage.
    pub store: StoreConfig,
    /// Cache.
    pub cache: CacheConfig,
    /// Logging.
    pub log: LogConfig,
    /// Metrics/health listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Access control.
    pub access: AccessConfig,
    /// Configured identities.
    pub identities: Vec<IdentityConfig>,
    /// Automatic policies (scheduler).
    pub policies: PoliciesConfig,
    /// Object groups whose fresh members are made on demand.
    pub object_groups: Vec<ObjectGroupConfig>,
}

fn parse_cidrs(key: &str, v: &[String]) -> Result<Vec<Cidr>, ConfigError> {
    v.iter()
        .map(|s| s.parse().map_err(|e| invalid(key, e)))
        .collect()
}

fn parse_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse()
        .map_err(|_| invalid(key, format!("{s:?} is not an address:port")))
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates TOML text; relative paths resolve against the data dir.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::validate(raw)
    }

    /// The embedded defaults of `kmipd --dev` for `data_dir`.
    pub fn dev(data_dir: &Path) -> Self {
        let raw = RawConfig {
            server: RawServer {
                listen: Some("127.0.0.1:5696".into()),
                data_dir: Some(data_dir.to_owned()),
                ..Default::default()
            },
            hsm: Some(kmipd_hsm::HsmConfig::Software(kmipd_hsm::SoftwareConfig {
                key_file: "master.key".into(),
                create_if_missing: true,
            })),
            // The OASIS test cases (TC-151) expect fresh members of the
            // group "default" on demand; dev mode is what they run against.
            object_groups: vec![RawObjectGroup {
                name: "default".into(),
                algorithm: "AES".into(),
                length: 256,
                usage: None,
            }],
            ..Default::default()
        };
        // The embedded defaults are valid by construction (a unit test checks it).
        Self::validate(raw).unwrap_or_else(|e| panic!("dev defaults invalid: {e}"))
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let data_dir = raw
            .server
            .data_dir
            .ok_or_else(|| invalid("server.data_dir", "required"))?;
        let rel = |p: PathBuf| if p.is_absolute() { p } else { data_dir.join(p) };
        let listen = parse_addr(
            "server.listen",
            raw.server.listen.as_deref().unwrap_or("0.0.0.0:5696"),
        )?;
        let max_connections = raw.server.max_connections.unwrap_or(10_000);
        if max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        let max_message_size = raw.server.max_message_size.unwrap_or(1 << 20);
        if !(1024..=64 << 20).contains(&max_message_size) {
            return Err(invalid(
                "server.max_message_size",
                "must be between 1024 and 67108864",
            ));
        }
        let ms = |key: &str, v: Option<u64>, default: u64| -> Result<Duration, ConfigError> {
            match v.unwrap_or(default) {
                0 => Err(invalid(key, "must be greater than 0")),
                n => Ok(Duration::from_millis(n)),
            }
        };
        let server = ServerConfig {
            listen,
            max_connections,
            handshake_timeout: ms(
                "server.handshake_timeout_ms",
                raw.server.handshake_timeout_ms,
                10_000,
            )?,
            idle_timeout: ms(
                "server.idle_timeout_ms",
                raw.server.idle_timeout_ms,
                120_000,
            )?,
            request_timeout: ms(
                "server.request_timeout_ms",
                raw.server.request_timeout_ms,
                30_000,
            )?,
            max_message_size,
            shutdown_grace: ms(
                "server.shutdown_grace_ms",
                raw.server.shutdown_grace_ms,
                10_000,
            )?,
            vendor_identification: raw
                .server
                .vendor_identification
                .unwrap_or_else(|| "kmipd".into()),
            data_dir: data_dir.clone(),
        };
        let pki_dir = rel(raw.tls.pki_dir.unwrap_or_else(|| "certs".into()));
        let tls = TlsConfig {
            cert: raw
                .tls
                .cert
                .map(rel)
                .unwrap_or_else(|| pki_dir.join("server.crt")),
            key: raw
                .tls
                .key
                .map(rel)
                .unwrap_or_else(|| pki_dir.join("server.key")),
            client_ca: raw.tls.client_ca.into_iter().map(rel).collect(),
            tls12: raw.tls.tls12.unwrap_or(true),
            require_client_cert: raw.tls.require_client_cert.unwrap_or(false),
            pki_dir,
        };
        let hsm = raw
            .hsm
            .ok_or_else(|| invalid("hsm", "required: backend = \"software\" or \"pkcs11\""))?;
        let hsm = match hsm {
            kmipd_hsm::HsmConfig::Software(mut s) => {
                s.key_file = rel(s.key_file);
                kmipd_hsm::HsmConfig::Software(s)
            }
            other => other,
        };
        let store = match raw.store.backend.as_deref().unwrap_or("sled") {
            "sled" => StoreConfig::Sled(rel(raw.store.path.unwrap_or_else(|| "store".into()))),
            "memory" => StoreConfig::Memory,
            other => {
                return Err(invalid(
                    "store.backend",
                    format!("unknown backend {other:?} (sled, memory)"),
                ))
            }
        };
        let cache = CacheConfig {
            enabled: raw.cache.enabled.unwrap_or(true),
            max_entries: raw.cache.max_entries.unwrap_or(100_000),
            ttl: Duration::from_secs(raw.cache.ttl_secs.unwrap_or(300)),
        };
        let json = match raw.log.format.as_deref().unwrap_or("text") {
            "text" => false,
            "json" => true,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("{other:?} is not text or json"),
                ))
            }
        };
        let log = LogConfig {
            json,
            level: raw.log.level.unwrap_or_else(|| "info".into()),
            audit_file: Some(rel(raw
                .log
                .audit_file
                .unwrap_or_else(|| "audit.log".into()))),
        };
        let metrics_listen = raw
            .metrics
            .listen
            .map(|s| parse_addr("metrics.listen", &s))
            .transpose()?;
        let mut allow_from = Vec::new();
        for (role, nets) in &raw.access.allow_from {
            let r: Role = role
                .parse()
                .map_err(|e| invalid(format!("access.allow_from.{role}"), e))?;
            allow_from.push((r, parse_cidrs(&format!("access.allow_from.{role}"), nets)?));
        }
        let access = AccessConfig {
            default_group: raw.access.default_group.unwrap_or_else(|| "default".into()),
            lockdown: raw.access.lockdown.unwrap_or(false),
            admin_from: parse_cidrs("access.admin_from", &raw.access.admin_from)?,
            allow_from,
        };
        if access.lockdown && access.admin_from.is_empty() {
            return Err(invalid(
                "access.admin_from",
                "lockdown needs at least one address",
            ));
        }
        let mut identities = Vec::new();
        for (i, id) in raw.identities.into_iter().enumerate() {
            let key = |k: &str| format!("identities[{i}].{k}");
            let role: Role = id.role.parse().map_err(|e| invalid(key("role"), e))?;
            let matcher = match (id.cn, id.san, id.fingerprint) {
                (Some(cn), None, None) => IdentityMatch::Cn(cn),
                (None, Some(san), None) => IdentityMatch::San(san),
                (None, None, Some(fp)) => {
                    let hexpart = fp.strip_prefix("sha256:").unwrap_or(&fp).replace(':', "");
                    let bytes = hex::decode(&hexpart)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok());
                    IdentityMatch::Fingerprint(bytes.ok_or_else(|| {
                        invalid(key("fingerprint"), "must be sha256:<64 hex digits>")
                    })?)
                }
                _ => {
                    return Err(invalid(
                        key("cn"),
                        "exactly one of cn, san, fingerprint is required",
                    ))
                }
            };
            let credential = match (id.username, id.password_sha256) {
                (Some(u), Some(h)) => {
                    let b = hex::decode(&h)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok());
                    Some((
                        u,
                        b.ok_or_else(|| invalid(key("password_sha256"), "must be 64 hex digits"))?,
                    ))
                }
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        key("username"),
                        "username and password_sha256 go together",
                    ))
                }
            };
            identities.push(IdentityConfig {
                group: id.group.unwrap_or_else(|| access.default_group.clone()),
                name: id.name,
                matcher,
                role,
                credential,
            });
        }
        let policies = validate_policies(raw.policies)?;
        let object_groups = validate_object_groups(raw.object_groups)?;
        Ok(Config {
            server,
            tls,
            hsm,
            store,
            cache,
            log,
            metrics_listen,
            access,
            identities,
            policies,
            object_groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../docs/kmipd.example.toml");
        let c = Config::parse(text, Path::new("kmipd.example.toml")).expect("example parses");
        assert_eq!(c.server.listen.port(), 5696);
        assert!(!c.identities.is_empty());
    }

    #[test]
    fn object_groups_parse_and_validate() {
        let base = "[server]\ndata_dir='/x'\n[hsm]\nbackend='software'\nkey_file='k'\n";
        let c = Config::parse(base, Path::new("t.toml")).unwrap();
        assert!(c.object_groups.is_empty(), "none by default");
        let c = Config::parse(
            &format!("{base}[[object_groups]]\nname='default'\nalgorithm='AES'\nlength=256\n"),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            c.object_groups,
            vec![ObjectGroupConfig {
                name: "default".into(),
                algorithm: kmip::tables::CryptographicAlgorithm::AES,
                length: 256,
                usage: 0x0C,
            }]
        );
        for (extra, key) in [
            (
                "name='g'\nalgorithm='RSA'\nlength=2048\n",
                "object_groups[0].algorithm",
            ),
            (
                "name='g'\nalgorithm='AES'\nlength=100\n",
                "object_groups[0].length",
            ),
            (
                "name='g'\nalgorithm='AES'\nlength=128\nusage='Fly'\n",
                "object_groups[0].usage",
            ),
            (
                "name=''\nalgorithm='AES'\nlength=128\n",
                "object_groups[0].name",
            ),
        ] {
            let e = Config::parse(
                &format!("{base}[[object_groups]]\n{extra}"),
                Path::new("t.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let twice = "[[object_groups]]\nname='g'\nalgorithm='AES'\nlength=128\n";
        let e = Config::parse(&format!("{base}{twice}{twice}"), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("object_groups[1].name"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let e = Config::parse(
            "[server]\ndata_dir='/x'\nlisten_port=1\n",
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("listen_port"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let base = "[server]\ndata_dir='/x'\n[hsm]\nbackend='software'\nkey_file='k'\n";
        let e = Config::parse(
            &format!("{base}[access]\nadmin_from=['10.0.0.0/33']\n"),
            Path::new("t"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("access.admin_from"), "{e}");
        let e = Config::parse("[server]\ndata_dir='/x'\n", Path::new("t"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("hsm"), "{e}");
    }

    #[test]
    fn policies_parse_and_validate() {
        let base = "[server]\ndata_dir='/x'\n[hsm]\nbackend='software'\nkey_file='k'\n";
        let c = Config::parse(base, Path::new("t")).unwrap();
        assert_eq!(c.policies, PoliciesConfig::default());
        assert!(c.policies.cryptoperiods.is_empty(), "off by default");
        let c = Config::parse(
            &format!("{base}[policies]\nrotate_master_key_days=90\n[[policies.cryptoperiod]]\nname='vs'\nmatch={{ 'x-Product' = 'VMware vSphere' }}\nrekey_after_days=365\n"),
            Path::new("t"),
        )
        .unwrap();
        assert_eq!(
            c.policies.rotate_master_key,
            Some(Duration::from_secs(90 * DAY))
        );
        let cp = &c.policies.cryptoperiods[0];
        assert_eq!(
            cp.matches,
            vec![("x-Product".into(), "VMware vSphere".into())]
        );
        assert_eq!(cp.grace, Duration::from_secs(30 * DAY));
        for (bad, key) in [
            ("[policies]\nrotate_every=1\n", "rotate_every"),
            (
                "[policies]\nrotate_master_key_days=0\n",
                "policies.rotate_master_key_days",
            ),
            (
                "[[policies.cryptoperiod]]\nname='a'\nmatch={ Name = 'x' }\nrekey_after_days=1\n",
                "policies.cryptoperiod[0].match",
            ),
        ] {
            let e = Config::parse(&format!("{base}{bad}"), Path::new("t"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn dev_defaults_are_valid() {
        let c = Config::dev(Path::new("/tmp/kmipd-dev"));
        assert_eq!(c.server.listen, "127.0.0.1:5696".parse().unwrap());
        assert_eq!(c.tls.cert, Path::new("/tmp/kmipd-dev/certs/server.crt"));
        assert_eq!(c.object_groups.len(), 1, "the on-demand group 'default'");
        assert_eq!(c.object_groups[0].name, "default");
    }

    #[test]
    fn cidr_matching() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let h: Cidr = "127.0.0.1".parse().unwrap();
        assert!(h.contains("127.0.0.1".parse().unwrap()));
        assert!("300.1.1.1/8".parse::<Cidr>().is_err());
    }
}
