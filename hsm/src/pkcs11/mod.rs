//! The PKCS#11 backend: master keys generated and kept inside a token,
//! AES-256-GCM (`CKM_AES_GCM`) run by the token.
//!
//! Master key version N is the AES-256 secret key object labelled
//! `{key_label_prefix}{N}` with `CKA_ID` the big-endian u32 N. The current
//! version is the highest one present in the token, so every process sharing
//! the token agrees on it without any marker object. Keys are generated in
//! the token (`CKM_AES_KEY_GEN`) as token objects that are private,
//! sensitive, never extractable, not modifiable, and usable only for
//! encryption and decryption.
//!
//! The IV is 96 random bits drawn by us (not the token) and recorded in the
//! blob; the tag is 128 bits. Object handles are cached per version.

mod module;
mod pool;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cryptoki::context::{Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState};
use cryptoki::types::{RawAuthPin, Ulong};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

/// Serialises the creation and destruction of token objects (master key
/// versions) across every protector of the process.
static TOKEN_OBJECTS: Mutex<()> = Mutex::new(());

pub use module::module;

use crate::blob::{self, Algorithm, BackendKind, WrappedKey, IV_LEN, TAG_LEN};
use crate::config::Pkcs11Config;
use crate::error::{Error, Result};
use crate::protector::{Health, KeyProtector, MasterKeyInfo};
use pool::{Fail, Pool};

const TAG_BITS: Ulong = Ulong::new(8 * TAG_LEN as u64);
const KEY_BYTES: Ulong = Ulong::new(32);

/// What every worker shares: the module, how to log in, and the handle cache.
pub(crate) struct Shared {
    ctx: Pkcs11,
    token_label: String,
    pin: RawAuthPin,
    prefix: String,
    handles: RwLock<HashMap<u32, ObjectHandle>>,
    current: AtomicU32,
    /// Serialises key generation and destruction within this process.
    admin: Mutex<()>,
}

impl Shared {
    fn label(&self, version: u32) -> String {
        format!("{}{version}", self.prefix)
    }

    fn clear_handles(&self) {
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The handle of master key `version`, from the cache or the token.
    fn key_handle(&self, session: &Session, version: u32) -> Result<ObjectHandle, Fail> {
        // The cache holds plain handles, consistent even after a panic.
        if let Some(h) = self
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&version)
        {
            return Ok(*h);
        }
        let found = session.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(self.label(version).into_bytes()),
        ])?;
        match found.as_slice() {
            // Private objects are invisible without a login: if the login
            // was lost, say so, so that the worker logs in again and retries.
            [] if !logged_in(session)? => Err(Fail::Ck(CkError::Pkcs11(
                RvError::UserNotLoggedIn,
                Function::FindObjects,
            ))),
            [] => Err(Error::UnknownVersion { version }.into()),
            [h] => {
                self.handles
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(version, *h);
                Ok(*h)
            }
            _ => Err(Error::Config {
                reason: format!(
                    "{} keys are labelled {:?}",
                    found.len(),
                    self.label(version)
                ),
            }
            .into()),
        }
    }

    /// All master key versions in the token, refreshing the cache and the
    /// current version.
    fn list(&self, session: &Session) -> Result<BTreeMap<u32, ObjectHandle>, Fail> {
        if !logged_in(session)? {
            return Err(Fail::Ck(CkError::Pkcs11(
                RvError::UserNotLoggedIn,
                Function::FindObjects,
            )));
        }
        // Reading a label takes two C_GetAttributeValue calls; a key
        // generated or destroyed in between (by another thread or process)
        // can make cryptoki reject the answer. Such a race is retried.
        let mut attempts = 0;
        let versions = loop {
            attempts += 1;
            match self.try_list(session) {
                Err(Fail::Ck(e)) if attempts < 3 && !matches!(e, CkError::Pkcs11(..)) => {
                    tracing::debug!(error = %e, "master key listing raced a change; listing again");
                }
                other => break other?,
            }
        };
        let mut cache = self.handles.write().unwrap_or_else(|e| e.into_inner());
        cache.clear();
        cache.extend(versions.iter().map(|(v, h)| (*v, *h)));
        if let Some(&max) = versions.keys().next_back() {
            self.current.store(max, Ordering::Release);
        }
        Ok(versions)
    }

    fn try_list(&self, session: &Session) -> Result<BTreeMap<u32, ObjectHandle>, Fail> {
        let candidates = session.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
        ])?;
        let mut versions = BTreeMap::new();
        for handle in candidates {
            let attrs = match session.get_attributes(handle, &[AttributeType::Label]) {
                Ok(attrs) => attrs,
                // Destroyed between the search and now (a concurrent retire).
                Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(Attribute::Label(label)) = attrs.first() else {
                continue;
            };
            let Some(version) = parse_label(&self.prefix, label) else {
                continue;
            };
            if versions.insert(version, handle).is_some() {
                return Err(Error::Config {
                    reason: format!("several keys are labelled {:?}", self.label(version)),
                }
                .into());
            }
        }
        Ok(versions)
    }

    /// The newest master key version: the highest the token lists, or one
    /// this process made or used more recently. SoftHSM2 can list a token
    /// object that another session just created a moment late, so the
    /// token's listing alone would give a new version an existing number or
    /// let the current version be retired.
    fn latest(&self, session: &Session) -> Result<Option<u32>, Fail> {
        let listed = self.list(session)?.keys().next_back().copied();
        let cached = self
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .max()
            .copied();
        let current = Some(self.current.load(Ordering::Acquire)).filter(|v| *v > 0);
        Ok(listed.max(cached).max(current))
    }

    fn generate(&self, session: &Session) -> Result<u32, Fail> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let version = self
            .latest(session)?
            .map_or(Some(1), |v| v.checked_add(1))
            .ok_or(Error::InvalidInput {
                reason: "master key versions exhausted",
            })?;
        // Token objects are created one at a time in the whole process:
        // SoftHSM2 (and some HSMs) fail concurrent token-object creation from
        // several sessions with CKR_GENERAL_ERROR. A general error is retried
        // a few times, since another process may be writing the token store.
        let _token = TOKEN_OBJECTS.lock().unwrap_or_else(|e| e.into_inner());
        let template = key_template(&self.label(version), version);
        let mut attempt = 0;
        let handle = loop {
            match session.generate_key(&Mechanism::AesKeyGen, &template) {
                Err(CkError::Pkcs11(RvError::GeneralError, _)) if attempt < 3 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
                }
                r => break r?,
            }
        };
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(version, handle);
        self.current.store(version, Ordering::Release);
        Ok(version)
    }

    fn destroy(&self, session: &Session, version: u32) -> Result<(), Fail> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let _token = TOKEN_OBJECTS.lock().unwrap_or_else(|e| e.into_inner());
        if self.latest(session)? == Some(version) {
            return Err(Error::RetireCurrent { version }.into());
        }
        let known = self
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&version)
            .copied();
        let handle = match known {
            Some(h) => h,
            None => *self
                .list(session)?
                .get(&version)
                .ok_or(Error::UnknownVersion { version })?,
        };
        session.destroy_object(handle)?;
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&version);
        Ok(())
    }
}

fn logged_in(session: &Session) -> Result<bool, Fail> {
    Ok(matches!(
        session.get_session_info()?.session_state(),
        SessionState::RwUser | SessionState::RoUser
    ))
}

/// The attributes of a master key: an AES-256 token object that never leaves
/// the token and can do nothing but encrypt and decrypt.
fn key_template(label: &str, version: u32) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(KEY_BYTES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(version.to_be_bytes().to_vec()),
    ]
}

/// `kmipd-master-v12` with prefix `kmipd-master-v` is version 12; leading
/// zeros, signs and version 0 are not versions.
fn parse_label(prefix: &str, label: &[u8]) -> Option<u32> {
    let digits = label.strip_prefix(prefix.as_bytes())?;
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Master keys in a PKCS#11 token. See the module documentation.
pub struct Pkcs11Protector {
    shared: Arc<Shared>,
    pool: Pool,
    config: Pkcs11Config,
}

impl fmt::Debug for Pkcs11Protector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Protector")
            .field("module", &self.config.module)
            .field("token_label", &self.config.token_label)
            .field("key_label_prefix", &self.config.key_label_prefix)
            .field("current_version", &self.current_version())
            .finish_non_exhaustive()
    }
}

impl Pkcs11Protector {
    /// Loads the module, finds the token by label, logs in, and checks that
    /// it supports AES-GCM and holds a master key (generating version 1 if
    /// `create_if_missing` is set and it holds none).
    pub fn open(config: &Pkcs11Config) -> Result<Self> {
        config.validate()?;
        let pin = config.read_pin()?;
        let ctx = module(&config.module)?;
        let shared = Arc::new(Shared {
            ctx,
            token_label: config.token_label.clone(),
            pin: RawAuthPin::from(Box::new(pin.to_vec())),
            prefix: config.key_label_prefix.clone(),
            handles: RwLock::default(),
            current: AtomicU32::new(0),
            admin: Mutex::new(()),
        });
        let pool = Pool::new(
            Arc::clone(&shared),
            config.session_count(),
            Duration::from_millis(config.timeout_ms),
        );
        let protector = Pkcs11Protector {
            shared,
            pool,
            config: config.clone(),
        };
        let versions = protector.pool.call(|w| {
            w.run(|shared, session| {
                let slot = session.get_session_info()?.slot_id();
                let mechanisms = shared.ctx.get_mechanism_list(slot)?;
                if !mechanisms.contains(&MechanismType::AES_GCM) {
                    return Err(Error::Config {
                        reason: format!(
                            "token {:?} does not support CKM_AES_GCM",
                            shared.token_label
                        ),
                    }
                    .into());
                }
                Ok(shared.list(session)?.len())
            })
        })?;
        if versions == 0 {
            if !config.create_if_missing {
                return Err(Error::Config {
                    reason: format!(
                        "token {:?} holds no master key labelled {}N; generate one (create_if_missing = true)",
                        config.token_label, config.key_label_prefix
                    ),
                });
            }
            let v = protector.new_version()?;
            tracing::info!(token = %config.token_label, version = v, "generated the first master key in the token");
        }
        Ok(protector)
    }

    /// The label of master key `version`.
    pub fn key_label(&self, version: u32) -> String {
        self.shared.label(version)
    }

    /// The configuration this protector was opened with.
    pub fn config(&self) -> &Pkcs11Config {
        &self.config
    }
}

impl KeyProtector for Pkcs11Protector {
    fn protect(&self, identity: &[u8], plaintext: &[u8]) -> Result<WrappedKey> {
        blob::check_plaintext(plaintext)?;
        let version = self.current_version();
        let aad = blob::associated_data(Algorithm::Aes256Gcm, version, identity)?;
        let expected_len = plaintext.len() + TAG_LEN;
        let (iv, ciphertext) = self.pool.call(move |w| {
            w.run(|shared, session| {
                let key = shared.key_handle(session, version)?;
                let mut iv = [0u8; IV_LEN];
                OsRng.fill_bytes(&mut iv);
                let ciphertext = {
                    let params = GcmParams::new(&mut iv, &aad, TAG_BITS)?;
                    session.encrypt(&Mechanism::AesGcm(params), key, plaintext)?
                };
                Ok((iv, ciphertext))
            })
        })?;
        if ciphertext.len() != expected_len {
            return Err(Error::Module {
                reason: format!(
                    "C_Encrypt returned {} bytes for AES-GCM, expected {expected_len}",
                    ciphertext.len()
                ),
            });
        }
        Ok(WrappedKey::new(
            BackendKind::Pkcs11,
            version,
            Algorithm::Aes256Gcm,
            iv,
            ciphertext,
        ))
    }

    fn unprotect(&self, identity: &[u8], wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        if wrapped.backend() != BackendKind::Pkcs11 {
            return Err(Error::WrongBackend {
                expected: BackendKind::Pkcs11,
                found: wrapped.backend(),
            });
        }
        let version = wrapped.master_version();
        let aad = wrapped.associated_data(identity)?;
        let iv = *wrapped.iv();
        let ciphertext = wrapped.ciphertext();
        let expected_len = wrapped.plaintext_len();
        let plaintext = self.pool.call(move |w| {
            w.run(|shared, session| {
                let key = shared.key_handle(session, version)?;
                let mut iv = iv;
                let params = GcmParams::new(&mut iv, &aad, TAG_BITS)?;
                match session.decrypt(&Mechanism::AesGcm(params), key, ciphertext) {
                    Ok(p) => Ok(Zeroizing::new(p)),
                    // A wrong tag: SoftHSM2 says CKR_GENERAL_ERROR, others
                    // CKR_ENCRYPTED_DATA_INVALID.
                    Err(CkError::Pkcs11(
                        RvError::GeneralError
                        | RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange,
                        _,
                    )) => Err(Error::IntegrityFailure.into()),
                    Err(e) => Err(e.into()),
                }
            })
        })?;
        if plaintext.len() != expected_len {
            return Err(Error::Module {
                reason: "C_Decrypt returned an unexpected length for AES-GCM".into(),
            });
        }
        Ok(plaintext)
    }

    fn current_version(&self) -> u32 {
        self.shared.current.load(Ordering::Acquire)
    }

    fn new_version(&self) -> Result<u32> {
        let version = self
            .pool
            .call(|w| w.run(|shared, session| shared.generate(session)))?;
        tracing::info!(token = %self.config.token_label, version, "new master key version in the token");
        Ok(version)
    }

    fn versions(&self) -> Result<Vec<MasterKeyInfo>> {
        let versions = self.pool.call(|w| {
            w.run(|shared, session| Ok(shared.list(session)?.into_keys().collect::<Vec<_>>()))
        })?;
        let current = versions.last().copied();
        Ok(versions
            .into_iter()
            .map(|version| MasterKeyInfo {
                version,
                current: Some(version) == current,
                label: self.shared.label(version),
            })
            .collect())
    }

    fn retire_version(&self, version: u32) -> Result<()> {
        self.pool
            .call(move |w| w.run(|shared, session| shared.destroy(session, version)))?;
        tracing::info!(token = %self.config.token_label, version, "retired master key version");
        Ok(())
    }

    fn health(&self) -> Health {
        let version = self.current_version();
        let probe = self.pool.call(move |w| {
            w.run(|shared, session| {
                session.get_session_info()?;
                shared.key_handle(session, version)?;
                Ok(())
            })
        });
        let busy = self.pool.busy();
        match probe {
            Ok(()) if busy >= self.pool.workers() => Health::Degraded {
                reason: format!("all {busy} PKCS#11 sessions are busy"),
            },
            Ok(()) => Health::Ok,
            Err(e) => Health::Unavailable {
                reason: e.to_string(),
            },
        }
    }

    fn backend(&self) -> BackendKind {
        BackendKind::Pkcs11
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let p = "kmipd-master-v";
        assert_eq!(parse_label(p, b"kmipd-master-v1"), Some(1));
        assert_eq!(parse_label(p, b"kmipd-master-v4294967295"), Some(u32::MAX));
        for bad in [
            &b"kmipd-master-v"[..],
            b"kmipd-master-v0",
            b"kmipd-master-v01",
            b"kmipd-master-v+1",
            b"kmipd-master-v1x",
            b"kmipd-master-v4294967296",
            b"other-v1",
        ] {
            assert_eq!(
                parse_label(p, bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn template_is_locked_down() {
        let t = key_template("l", 3);
        for a in [
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Token(true),
            Attribute::Wrap(false),
            Attribute::Derive(false),
            Attribute::Id(vec![0, 0, 0, 3]),
        ] {
            assert!(t.contains(&a), "{a:?}");
        }
    }
}
