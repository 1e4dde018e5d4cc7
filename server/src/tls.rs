//! TLS for kmipd: rustls with TLS 1.3 and 1.2 (ECDHE, AES-GCM only),
//! session resumption, and a client-certificate verifier that accepts all
//! four of vCenter's trust methods.
//!
//! Client certificates are verified by chain (kmipd's CA, trusted foreign
//! CAs, extra CA bundles: EKU clientAuth when an EKU is present, any usage
//! when absent) or by a SHA-256 pin of the leaf itself (vCenter's
//! self-signed certificate, which may say CA:TRUE and carry no EKU, and
//! which a chain verifier rejects). By default a client certificate is
//! requested but not required, so vCenter's certificate-reading connection
//! (handshake, then close) completes; a request without a certificate is
//! answered Authentication Not Successful.
//!
//! The configuration is rebuilt on reload (SIGHUP or a changed file)
//! without touching established connections.

use crate::config::TlsConfig;
use kmipd_certs::TrustStore;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use std::sync::{Arc, RwLock};

/// Errors building the TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file.
    #[error("{0}")]
    Certs(#[from] kmipd_certs::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// The crypto provider: ring, with AES-GCM suites only.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    Arc::new(p)
}

/// Accepts pinned leaves, or chains through the inner verifier.
#[derive(Debug)]
struct KmipdVerifier {
    pins: Vec<[u8; 32]>,
    chain: Option<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

fn validity_ok(der: &[u8], now: UnixTime) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let now = now.as_secs() as i64;
    let v = cert.validity();
    if now < v.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidYet,
        ));
    }
    if now > v.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
    }
    Ok(())
}

impl ClientCertVerifier for KmipdVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a client then presents whatever certificate it has, which
        // is what a pinned self-signed vCenter certificate needs.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fp = kmipd_certs::fingerprint_sha256(end_entity.as_ref());
        if self.pins.contains(&fp) {
            validity_ok(end_entity.as_ref(), now)?;
            return Ok(ClientCertVerified::assertion());
        }
        match &self.chain {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A certificate kmipd serves or trusts, with its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// `server`, `ca`, `trusted-ca` or `pinned`.
    pub kind: &'static str,
    /// Subject (or pin name).
    pub name: String,
    /// Not After, seconds since the epoch.
    pub not_after: i64,
}

fn expiry(kind: &'static str, der: &[u8]) -> Option<Expiry> {
    let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(Expiry {
        kind,
        name: c.subject().to_string(),
        not_after: c.validity().not_after.timestamp(),
    })
}

/// Days before expiry from which kmipd warns.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Logs a warning for every certificate expiring within 30 days.
pub fn warn_expiring(expiries: &[Expiry], now: i64) {
    for e in expiries {
        let days = (e.not_after - now).div_euclid(86_400);
        if days < 0 {
            tracing::error!(kind = e.kind, subject = %e.name, "certificate has expired");
        } else if days < EXPIRY_WARNING_DAYS {
            tracing::warn!(kind = e.kind, subject = %e.name, days, "certificate expires soon");
        }
    }
}

/// A built TLS configuration and the trust store it was built from.
#[derive(Debug)]
pub struct TlsState {
    /// What each verified client certificate says (CN, SANs, role), by
    /// SHA-256: parsing a certificate and finding its role costs a signature
    /// check, which a reconnecting vCenter or ESXi host should pay once.
    facts: RwLock<std::collections::HashMap<[u8; 32], Arc<crate::access::CertFacts>>>,
    /// Expiry of the server certificate and every trusted certificate.
    pub expiries: Vec<Expiry>,
    /// For the acceptor.
    pub config: Arc<ServerConfig>,
    /// For mapping client certificates to roles.
    pub trust: TrustStore,
    /// Extra CA roots from `tls.client_ca` (their clients get the role in their OU).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// Builds the TLS state from configuration and the PKI directory.
pub fn build(cfg: &TlsConfig) -> Result<TlsState, TlsError> {
    let provider = provider();
    let chain = kmipd_certs::load_certs(&cfg.cert)?;
    let leaf_for_expiry = chain.clone();
    let key = kmipd_certs::load_private_key(&cfg.key)?;
    let trust = kmipd_certs::load_trust(&cfg.pki_dir)?;
    let mut extra_roots = Vec::new();
    for p in &cfg.client_ca {
        extra_roots.extend(kmipd_certs::load_certs(p)?);
    }
    let mut roots = RootCertStore::empty();
    for c in trust
        .ca_roots()
        .into_iter()
        .chain(extra_roots.iter().cloned())
    {
        roots
            .add(c)
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    }
    let chain_verifier = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?,
        )
    };
    let verifier = Arc::new(KmipdVerifier {
        pins: trust.pins.iter().map(|p| p.fingerprint).collect(),
        chain: chain_verifier,
        mandatory: cfg.require_client_cert,
        provider: provider.clone(),
    });
    let versions: &[&rustls::SupportedProtocolVersion] = if cfg.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.session_storage = ServerSessionMemoryCache::new(16_384);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    let mut expiries: Vec<Expiry> = Vec::new();
    expiries.extend(
        leaf_for_expiry
            .first()
            .and_then(|c| expiry("server", c.as_ref())),
    );
    expiries.extend(trust.own_ca.as_ref().and_then(|c| expiry("ca", c.as_ref())));
    for c in &trust.trusted_cas {
        expiries.extend(expiry("trusted-ca", c.cert.as_ref()));
    }
    for p in &trust.pins {
        if let Some(c) = &p.cert {
            expiries.extend(expiry("pinned", c.as_ref()));
        }
    }
    for c in &extra_roots {
        expiries.extend(expiry("client-ca", c.as_ref()));
    }
    Ok(TlsState {
        facts: RwLock::new(std::collections::HashMap::new()),
        config: Arc::new(config),
        trust,
        extra_roots,
        expiries,
    })
}

/// The current TLS state, swapped on reload.
#[derive(Debug)]
pub struct Reloadable {
    cfg: TlsConfig,
    current: RwLock<Arc<TlsState>>,
}

impl Reloadable {
    /// Builds the first state.
    pub fn new(cfg: TlsConfig) -> Result<Self, TlsError> {
        let state = build(&cfg)?;
        Ok(Self {
            cfg,
            current: RwLock::new(Arc::new(state)),
        })
    }

    /// The state for a new connection.
    pub fn current(&self) -> Arc<TlsState> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rebuilds from the files; on error the old state stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let state = build(&self.cfg)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        Ok(())
    }

    /// The files whose change triggers a reload.
    pub fn watched_files(&self) -> Vec<std::path::PathBuf> {
        let mut v = vec![
            self.cfg.cert.clone(),
            self.cfg.key.clone(),
            self.cfg.pki_dir.join("pins.txt"),
            self.cfg.pki_dir.join("ca.crt"),
        ];
        v.extend(self.cfg.client_ca.iter().cloned());
        v
    }

    /// The trusted-CA folder (its change also triggers a reload).
    pub fn pki_dir(&self) -> &std::path::Path {
        &self.cfg.pki_dir
    }
}

/// Most certificates whose facts are cached (cleared when full).
const FACTS_CACHE: usize = 10_000;

/// The facts of a verified leaf, cached by fingerprint for this TLS state
/// (a reload starts a new cache, so trust changes apply at once).
pub fn cert_facts(state: &TlsState, leaf: &[u8]) -> Arc<crate::access::CertFacts> {
    let fp = kmipd_certs::fingerprint_sha256(leaf);
    if let Some(f) = state
        .facts
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&fp)
    {
        return f.clone();
    }
    let facts = Arc::new(crate::access::CertFacts::from_der(
        leaf,
        trust_role(state, leaf),
    ));
    let mut cache = state.facts.write().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= FACTS_CACHE {
        cache.clear();
    }
    cache.insert(fp, facts.clone());
    facts
}

/// The role a verified leaf gets from the trust store or the extra CAs.
pub fn trust_role(state: &TlsState, leaf: &[u8]) -> Option<String> {
    if let Some(r) = state.trust.role_for(leaf) {
        return Some(r.as_str().to_owned());
    }
    // Leaves under an extra CA bundle carry their role in the OU.
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    kmipd_certs::role_from_subject(&cert).map(|r| r.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_cover_server_ca_and_pins() {
        let d = tempfile::tempdir().unwrap();
        let (config, _) = crate::dev::prepare(d.path(), true).unwrap();
        let state = build(&config.tls).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let server = state
            .expiries
            .iter()
            .find(|e| e.kind == "server")
            .expect("server expiry");
        let days = (server.not_after - now) / 86_400;
        assert!((800..=826).contains(&days), "{days}");
        assert!(state.expiries.iter().any(|e| e.kind == "ca"));
        // The exported metric carries the days left.
        let m = crate::metrics::Metrics::default();
        m.set_certificates(
            state
                .expiries
                .iter()
                .map(|e| (e.kind.to_owned(), e.name.clone(), e.not_after))
                .collect(),
        );
        let text = m.render(&[]);
        let line = text
            .lines()
            .find(|l| l.starts_with("kmipd_certificate_expiry_days{kind=\"server\""))
            .expect("metric");
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v > 800.0 && v < 826.0, "{line}");
    }
}
