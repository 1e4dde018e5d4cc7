//! Identity and access: who a verified client certificate is, and what its
//! role may do to which objects.
//!
//! A certificate maps to an identity by a configured match (subject CN, a
//! SAN or a SHA-256 fingerprint) or, failing that, by the trust store (the
//! pin's role, the trusted CA's role, or `OU=kmipd-role:<role>` from kmipd's
//! own CA). Objects belong to the creating identity's group; admins see all.

use crate::config::{AccessConfig, Cidr, IdentityConfig, IdentityMatch, Role};
use crate::errors::OpError;
use kmip::tables::Operation;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};

/// The authenticated caller of a connection. `Debug` leaves out the
/// credential's password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// Identity name (audit).
    pub identity: String,
    /// Role.
    pub role: Role,
    /// Group owning the objects it creates and that it may see.
    pub group: String,
    /// Peer address.
    pub peer: SocketAddr,
    /// Username/password to check when the client sends a credential.
    pub credential: Option<(String, [u8; 32])>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("identity", &self.identity)
            .field("role", &self.role)
            .field("group", &self.group)
            .field("peer", &self.peer)
            .field(
                "credential",
                &self
                    .credential
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .finish()
    }
}

/// What a certificate says about its holder.
#[derive(Debug, Clone, Default)]
pub struct CertFacts {
    /// Subject CN.
    pub cn: Option<String>,
    /// DNS/IP/email SANs.
    pub sans: Vec<String>,
    /// SHA-256 of the DER.
    pub fingerprint: [u8; 32],
    /// Role from the trust store (pin, trusted CA, or own-CA OU).
    pub trust_role: Option<String>,
}

impl CertFacts {
    /// Extracts the facts from a DER certificate.
    pub fn from_der(der: &[u8], trust_role: Option<String>) -> Self {
        let fingerprint: [u8; 32] = Sha256::digest(der).into();
        let mut facts = CertFacts {
            fingerprint,
            trust_role,
            ..Default::default()
        };
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
            facts.cn = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|c| c.as_str().ok())
                .map(str::to_owned);
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                for n in &san.value.general_names {
                    use x509_parser::extensions::GeneralName;
                    match n {
                        GeneralName::DNSName(d) => facts.sans.push((*d).to_owned()),
                        GeneralName::RFC822Name(e) => facts.sans.push((*e).to_owned()),
                        GeneralName::IPAddress(b) => match b.len() {
                            4 => facts.sans.push(
                                IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())
                                    .to_string(),
                            ),
                            16 => facts.sans.push(
                                IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                                    .to_string(),
                            ),
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
        }
        facts
    }
}

/// Maps certificates to callers and decides permissions.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    identities: Vec<IdentityConfig>,
    access: AccessConfig,
}

impl AccessPolicy {
    /// A policy from configuration.
    pub fn new(identities: Vec<IdentityConfig>, access: AccessConfig) -> Self {
        Self { identities, access }
    }

    /// The caller for a verified certificate, or why it has no role.
    pub fn identify(&self, facts: &CertFacts, peer: SocketAddr) -> Result<Caller, String> {
        let configured = self.identities.iter().find(|i| match &i.matcher {
            IdentityMatch::Cn(cn) => facts.cn.as_deref() == Some(cn.as_str()),
            IdentityMatch::San(s) => facts.sans.iter().any(|x| x.eq_ignore_ascii_case(s)),
            IdentityMatch::Fingerprint(f) => *f == facts.fingerprint,
        });
        let caller = match configured {
            Some(i) => Caller {
                identity: i.name.clone(),
                role: i.role,
                group: i.group.clone(),
                peer,
                credential: i.credential.clone(),
            },
            None => {
                let role = facts
                    .trust_role
                    .as_deref()
                    .ok_or_else(|| "certificate has no role: configure an identity or issue it with kmipctl certs".to_owned())?
                    .parse::<Role>()?;
                Caller {
                    identity: facts.cn.clone().unwrap_or_else(|| {
                        format!("sha256:{}", hex::encode(&facts.fingerprint[..8]))
                    }),
                    role,
                    group: self.access.default_group.clone(),
                    peer,
                    credential: None,
                }
            }
        };
        if let Some((_, nets)) = self
            .access
            .allow_from
            .iter()
            .find(|(r, _)| *r == caller.role)
        {
            if !nets.iter().any(|n| n.contains(peer.ip())) {
                return Err(format!(
                    "role {} is not allowed from {}",
                    caller.role,
                    peer.ip()
                ));
            }
        }
        Ok(caller)
    }

    /// Whether `caller` may run `op` at all.
    pub fn may_run(&self, caller: &Caller, op: Operation) -> Result<(), OpError> {
        use Operation as O;
        let always = [O::DISCOVER_VERSIONS, O::QUERY];
        // Poll and Cancel act only on the caller's own pending operations,
        // which its role allowed it to start (ops/pending.rs).
        let own_pending = [O::POLL, O::CANCEL];
        let allowed = always.contains(&op)
            || own_pending.contains(&op)
            || match caller.role {
                Role::Admin => true,
                // kmipd's vendor operations check the admin role themselves.
                _ if crate::ops::admin::is_admin(op) => false,
                Role::Vcenter => [
                    O::CREATE,
                    O::REGISTER,
                    O::GET,
                    O::GET_ATTRIBUTES,
                    O::GET_ATTRIBUTE_LIST,
                    O::ADD_ATTRIBUTE,
                    O::MODIFY_ATTRIBUTE,
                    O::DELETE_ATTRIBUTE,
                    O::SET_ATTRIBUTE,
                    O::ACTIVATE,
                    O::LOCATE,
                    O::CHECK,
                ]
                .contains(&op),
                Role::Host => [O::GET, O::GET_ATTRIBUTES].contains(&op),
                Role::Auditor => {
                    [O::GET_ATTRIBUTES, O::GET_ATTRIBUTE_LIST, O::LOCATE].contains(&op)
                }
            };
        if !allowed {
            return Err(OpError::PermissionDenied(format!(
                "role {} may not run {}",
                caller.role,
                op.name().unwrap_or("this operation")
            )));
        }
        if caller.role == Role::Admin && self.access.lockdown && !always.contains(&op) {
            let ok = self
                .access
                .admin_from
                .iter()
                .any(|n: &Cidr| n.contains(caller.peer.ip()));
            if !ok {
                return Err(OpError::PermissionDenied(format!(
                    "lockdown: admin operations are not accepted from {}",
                    caller.peer.ip()
                )));
            }
        }
        Ok(())
    }

    /// Whether `caller` may see objects of `group`.
    pub fn may_see(&self, caller: &Caller, group: &str) -> bool {
        caller.role == Role::Admin || caller.group == group
    }
}

/// Checks a KMIP Username/Password credential against the identity's, when
/// both are present. A request without a credential from an authenticated
/// certificate is accepted (vCenter sends one on some operations only).
pub fn check_credential(
    caller: &Caller,
    username: &str,
    password: Option<&str>,
) -> Result<(), OpError> {
    let Some((user, hash)) = &caller.credential else {
        return Ok(());
    };
    let given: [u8; 32] = Sha256::digest(password.unwrap_or("").as_bytes()).into();
    // Constant-time comparison of the hashes.
    let diff = given
        .iter()
        .zip(hash.iter())
        .fold(0u8, |a, (x, y)| a | (x ^ y));
    if username != user || diff != 0 {
        return Err(OpError::AuthenticationFailed(
            "credential does not match".into(),
        ));
    }
    Ok(())
}
