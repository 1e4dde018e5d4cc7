//! Identity and access: who a verified client certificate is, and what its
//! role may do to which objects.
//!
//! A certificate maps to an identity by a configured match (subject CN, a
//! SAN or a SHA-256 fingerprint) or, failing that, by the trust store (the
//! pin's role, the trusted CA's role, or `OU=kmipd-role:<role>` from kmipd's
//! own CA). Objects belong to the creating identity's group; admins see all.
//!
//! Within that, a request may name a finer principal with a credential in
//! its header (Username and Password, or Device): see [`principal`] and
//! [`check_operation_policy`] for KMIP's "default" Operation Policy.

use crate::config::{AccessConfig, Cidr, IdentityConfig, IdentityMatch, Role};
use crate::errors::OpError;
use crate::model::{names, ManagedObject};
use kmip::messages::Credential;
use kmip::tables::{ObjectType, Operation};
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
                    O::CREATE_SPLIT_KEY,
                    O::JOIN_SPLIT_KEY,
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

/// The Operation Policy Name of the policy every KMIP 1.x server implements
/// (KMIP 1.x, 3.18 "Operation Policy Name", "Default Operation Policy").
pub const DEFAULT_OPERATION_POLICY: &str = "default";

/// The longest credential principal kmipd accepts (it is stored with the
/// objects the request creates and written to the audit trail).
pub const MAX_PRINCIPAL_LEN: usize = 512;

/// The principal a request's credentials name, if any: the first credential
/// that names one, in header order.
///
/// - Username and Password: `user:` and the Username (an empty Username
///   names nobody).
/// - Device: `device:` and the Device Serial Number and Device Identifier,
///   each quoted (`-` when absent): `device:"serNum123456"/"devID2233"`.
///   Those two identify the device itself; the Network, Machine and Media
///   Identifiers describe where it is and what it holds, which may change,
///   and the password is a secret. A Device credential with neither field
///   names nobody.
/// - Attestation and other types name nobody.
///
/// kmipd verifies a Username and Password only against an identity's
/// configured credential ([`check_credential`]); otherwise a principal is a
/// label the certificate's holder chooses, which narrows what a request may
/// do but never widens it.
pub fn principal(credentials: &[Credential]) -> Result<Option<String>, OpError> {
    let quoted = |v: &Option<String>| v.as_ref().map_or("-".to_owned(), |s| format!("{s:?}"));
    for c in credentials {
        let p = match c {
            Credential::UsernamePassword { username, .. } if !username.is_empty() => {
                format!("user:{username}")
            }
            Credential::Device {
                device_serial_number,
                device_identifier,
                ..
            } if device_serial_number.is_some() || device_identifier.is_some() => format!(
                "device:{}/{}",
                quoted(device_serial_number),
                quoted(device_identifier)
            ),
            _ => continue,
        };
        if p.len() > MAX_PRINCIPAL_LEN {
            return Err(OpError::InvalidField(format!(
                "the credential's identity is {} bytes long; kmipd accepts at most {MAX_PRINCIPAL_LEN}",
                p.len()
            )));
        }
        return Ok(Some(p));
    }
    Ok(None)
}

/// Whether `o` names the "default" Operation Policy.
pub fn under_default_policy(o: &ManagedObject) -> bool {
    o.all(names::OPERATION_POLICY_NAME)
        .any(|a| a.text() == Some(DEFAULT_OPERATION_POLICY))
}

/// Operations the default policy opens to everyone on an object of
/// `object_type`: reading Certificates and Public Keys (the specification's
/// "Default Operation Policy for Certificates and Public Key Objects").
/// Everything on every other object type (the policy for secret objects and
/// for private templates) and every change to Certificates and Public Keys
/// is reserved to the creator.
fn open_to_all(object_type: ObjectType, op: Option<Operation>) -> bool {
    use Operation as O;
    matches!(
        object_type,
        ObjectType::CERTIFICATE | ObjectType::PUBLIC_KEY
    ) && op.is_some_and(|op| {
        [
            O::LOCATE,
            O::CHECK,
            O::GET,
            O::GET_ATTRIBUTES,
            O::GET_ATTRIBUTE_LIST,
            O::OBTAIN_LEASE,
        ]
        .contains(&op)
    })
}

/// KMIP's "default" Operation Policy, as kmipd applies it on top of the
/// certificate's role and group (checked before this, by [`AccessPolicy`]).
///
/// A request presenting credential principal `principal` may run `op` (the
/// batch item's operation; `None` for kmipd's own jobs) on `o` unless all of
/// these hold, when it gets Permission Denied:
/// 1. `o` has an Operation Policy Name "default";
/// 2. `o` was created by a request that presented a credential (its
///    recorded creator principal);
/// 3. this request presents a credential too, naming a different principal;
/// 4. `op` is not open to all on `o`'s type ([`open_to_all`]: only reading
///    Certificates and Public Keys is).
///
/// A request without a credential is judged by its certificate alone (role
/// and group), as vCenter sends a credential on some operations only.
pub fn check_operation_policy(
    o: &ManagedObject,
    principal: Option<&str>,
    op: Option<Operation>,
) -> Result<(), OpError> {
    let (Some(creator), Some(principal)) = (o.creator.as_deref(), principal) else {
        return Ok(());
    };
    if creator == principal || !under_default_policy(o) || open_to_all(o.object_type, op) {
        return Ok(());
    }
    Err(OpError::PermissionDenied(format!(
        "access denied: object {} is reserved to its creator by the \"default\" Operation Policy",
        o.id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmip::messages::attributes::Attribute;
    use kmip::Value;

    fn user(name: &str) -> Credential {
        Credential::UsernamePassword {
            username: name.into(),
            password: Some("pw".into()),
        }
    }

    fn device(serial: Option<&str>, id: Option<&str>, network: &str) -> Credential {
        Credential::Device {
            device_serial_number: serial.map(str::to_owned),
            password: Some("secret".into()),
            device_identifier: id.map(str::to_owned),
            network_identifier: Some(network.into()),
            machine_identifier: Some("machine".into()),
            media_identifier: Some("media".into()),
        }
    }

    fn object(
        object_type: ObjectType,
        creator: Option<&str>,
        policy: Option<&str>,
    ) -> ManagedObject {
        let mut o = ManagedObject {
            id: "k1".into(),
            object_type,
            owner: "admin".into(),
            group: "default".into(),
            creator: creator.map(str::to_owned),
            revision: 1,
            attributes: Vec::new(),
            material: None,
            archived: false,
            created: 0,
        };
        if let Some(p) = policy {
            o.attributes.push(Attribute::new(
                names::OPERATION_POLICY_NAME,
                Value::TextString(p.into()),
            ));
        }
        o
    }

    /// Every operation that names an existing object.
    const OBJECT_OPS: &[Operation] = &[
        Operation::GET,
        Operation::GET_ATTRIBUTES,
        Operation::GET_ATTRIBUTE_LIST,
        Operation::ADD_ATTRIBUTE,
        Operation::MODIFY_ATTRIBUTE,
        Operation::DELETE_ATTRIBUTE,
        Operation::SET_ATTRIBUTE,
        Operation::ACTIVATE,
        Operation::REVOKE,
        Operation::DESTROY,
        Operation::ARCHIVE,
        Operation::RECOVER,
        Operation::CHECK,
        Operation::OBTAIN_LEASE,
        Operation::GET_USAGE_ALLOCATION,
        Operation::LOCATE,
        Operation::RE_KEY,
    ];

    fn denied(r: Result<(), OpError>) -> bool {
        matches!(r, Err(OpError::PermissionDenied(_)))
    }

    #[test]
    fn principals_from_credentials() {
        assert_eq!(principal(&[]).unwrap(), None);
        assert_eq!(
            principal(&[user("Fred")]).unwrap().as_deref(),
            Some("user:Fred")
        );
        // An empty username names nobody; the next credential counts.
        assert_eq!(
            principal(&[user(""), user("Barney")]).unwrap().as_deref(),
            Some("user:Barney")
        );
        let d = principal(&[device(Some("serNum123456"), Some("devID2233"), "netID9000")])
            .unwrap()
            .unwrap();
        assert_eq!(d, r#"device:"serNum123456"/"devID2233""#);
        // The same device on another network, with another medium, is the same principal.
        assert_eq!(
            principal(&[device(Some("serNum123456"), Some("devID2233"), "netID9")]).unwrap(),
            Some(d.clone())
        );
        // Another device identifier or serial number is another principal.
        assert_ne!(
            principal(&[device(Some("serNum123456"), Some("devID4444"), "netID9000")]).unwrap(),
            Some(d.clone())
        );
        assert_eq!(
            principal(&[device(None, Some("devID2233"), "n")])
                .unwrap()
                .as_deref(),
            Some(r#"device:-/"devID2233""#)
        );
        // Quoting keeps the two fields apart: no serial/id split collides.
        assert_ne!(
            principal(&[device(Some("a\"/\"b"), Some("c"), "n")]).unwrap(),
            principal(&[device(Some("a"), Some("b\"/\"c"), "n")]).unwrap()
        );
        // A device credential that identifies no device names nobody.
        assert_eq!(principal(&[device(None, None, "n")]).unwrap(), None);
        // A username and a device identifier never collide.
        assert_ne!(
            principal(&[user(r#"device:-/"x""#)]).unwrap(),
            principal(&[device(None, Some("x"), "n")]).unwrap()
        );
        // Oversized identities are refused, not stored.
        let long = "x".repeat(MAX_PRINCIPAL_LEN);
        assert!(matches!(
            principal(&[user(&long)]),
            Err(OpError::InvalidField(_))
        ));
        // Debug of what the principal comes from never shows a password.
        let shown = format!("{:?}", [user("Fred"), device(Some("s"), Some("d"), "n")]);
        assert!(
            !shown.contains("pw") && !shown.contains("secret"),
            "{shown}"
        );
    }

    #[test]
    fn the_default_policy_reserves_secret_objects_to_their_creator() {
        for t in [
            ObjectType::SYMMETRIC_KEY,
            ObjectType::PRIVATE_KEY,
            ObjectType::SECRET_DATA,
            ObjectType::SPLIT_KEY,
            ObjectType::OPAQUE_OBJECT,
            ObjectType::TEMPLATE,
        ] {
            let o = object(t, Some("user:Fred"), Some(DEFAULT_OPERATION_POLICY));
            for &op in OBJECT_OPS {
                // The creator may do everything.
                assert!(check_operation_policy(&o, Some("user:Fred"), Some(op)).is_ok());
                // Another principal nothing.
                assert!(
                    denied(check_operation_policy(&o, Some("user:Barney"), Some(op))),
                    "{t} {op:?}"
                );
                // No credential: the certificate's role and group decide.
                assert!(check_operation_policy(&o, None, Some(op)).is_ok());
            }
            // kmipd's jobs name no operation: still reserved when a principal is given.
            assert!(denied(check_operation_policy(
                &o,
                Some("user:Barney"),
                None
            )));
        }
    }

    #[test]
    fn the_default_policy_lets_everyone_read_certificates_and_public_keys() {
        for t in [ObjectType::CERTIFICATE, ObjectType::PUBLIC_KEY] {
            let o = object(t, Some("user:Fred"), Some(DEFAULT_OPERATION_POLICY));
            for &op in OBJECT_OPS {
                let read = [
                    Operation::LOCATE,
                    Operation::CHECK,
                    Operation::GET,
                    Operation::GET_ATTRIBUTES,
                    Operation::GET_ATTRIBUTE_LIST,
                    Operation::OBTAIN_LEASE,
                ]
                .contains(&op);
                let r = check_operation_policy(&o, Some("user:Barney"), Some(op));
                assert_eq!(r.is_ok(), read, "{t} {op:?}");
                assert!(check_operation_policy(&o, Some("user:Fred"), Some(op)).is_ok());
            }
        }
    }

    #[test]
    fn other_policies_and_unrecorded_creators_are_unaffected() {
        for (creator, policy) in [
            // vCenter's keys: no Operation Policy Name.
            (Some("user:Fred"), None),
            // Another policy name (names are case-sensitive).
            (Some("user:Fred"), Some("Default")),
            (Some("user:Fred"), Some("custom")),
            // Created without a credential.
            (None, Some(DEFAULT_OPERATION_POLICY)),
            (None, None),
        ] {
            let o = object(ObjectType::SYMMETRIC_KEY, creator, policy);
            for &op in OBJECT_OPS {
                assert!(
                    check_operation_policy(&o, Some("user:Barney"), Some(op)).is_ok(),
                    "{creator:?} {policy:?} {op:?}"
                );
            }
        }
    }

    #[test]
    fn device_principals_are_compared_whole() {
        let fred =
            principal(&[device(Some("serNum123456"), Some("devID2233"), "netID9000")]).unwrap();
        let other =
            principal(&[device(Some("serNum101010"), Some("devID4444"), "netID9")]).unwrap();
        let o = object(
            ObjectType::SYMMETRIC_KEY,
            fred.as_deref(),
            Some(DEFAULT_OPERATION_POLICY),
        );
        assert!(check_operation_policy(&o, fred.as_deref(), Some(Operation::GET)).is_ok());
        assert!(denied(check_operation_policy(
            &o,
            other.as_deref(),
            Some(Operation::GET)
        )));
        // A username equal to the device's text is still another principal.
        assert!(denied(check_operation_policy(
            &o,
            Some("user:serNum123456"),
            Some(Operation::GET)
        )));
        // The refusal does not name the creator.
        let e = check_operation_policy(&o, other.as_deref(), Some(Operation::GET)).unwrap_err();
        assert!(!e.to_string().contains("serNum123456"), "{e}");
    }
}
