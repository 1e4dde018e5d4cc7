//! The HSM-less backend: master keys in a local key file, AES-256-GCM through
//! the `aes-gcm` crate.
//!
//! It exists so that development and CI exercise exactly the code paths and
//! blob format of the PKCS#11 backend; it offers none of an HSM's protection
//! of the master key (the key file is as secret as the keys it protects).
//!
//! The key file is text, mode 0600, rewritten atomically on every change:
//!
//! ```text
//! # kmipd master keys. Secret: keep mode 0600 and back it up.
//! kmipd-master-keys 1
//! current 2
//! key 1 <64 hex digits>
//! key 2 <64 hex digits>
//! ```
//!
//! One process owns a key file: two servers rotating the same file would
//! overwrite each other's versions.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::blob::{self, Algorithm, BackendKind, WrappedKey, IV_LEN};
use crate::error::{Error, Result};
use crate::fsutil::{self, Replace};
use crate::protector::{Health, KeyProtector, MasterKeyInfo};

const HEADER: &str = "kmipd-master-keys 1";
const KEY_LEN: usize = 32;

/// One master key version: the raw key (kept to rewrite the file) and its
/// expanded cipher. Both are wiped on drop.
struct MasterKey {
    raw: Zeroizing<[u8; KEY_LEN]>,
    cipher: Aes256Gcm,
}

impl MasterKey {
    fn new(raw: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let cipher = Aes256Gcm::new(raw.as_ref().into());
        MasterKey { raw, cipher }
    }

    fn generate() -> Self {
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(raw.as_mut());
        MasterKey::new(raw)
    }
}

#[derive(Default)]
struct KeySet {
    current: u32,
    keys: BTreeMap<u32, MasterKey>,
}

/// Master keys in a local file. See the module documentation.
pub struct SoftwareProtector {
    path: PathBuf,
    state: RwLock<KeySet>,
    /// Serialises changes of the key file.
    writer: Mutex<()>,
}

impl fmt::Debug for SoftwareProtector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareProtector")
            .field("path", &self.path)
            .field("current_version", &self.current_version())
            .finish_non_exhaustive()
    }
}

impl SoftwareProtector {
    /// Creates a new key file at `path` (mode 0600, refused if it exists)
    /// holding a freshly generated master key version 1.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut set = KeySet {
            current: 1,
            keys: BTreeMap::new(),
        };
        set.keys.insert(1, MasterKey::generate());
        fsutil::write_secret_file(&path, serialize(&set).as_bytes(), Replace::No)?;
        tracing::info!(path = %path.display(), "created software master key file with version 1");
        Ok(SoftwareProtector {
            path,
            state: RwLock::new(set),
            writer: Mutex::new(()),
        })
    }

    /// Opens an existing key file, refusing it unless only its owner can read
    /// it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let contents = fsutil::read_secret_file(&path)?;
        let set = parse(&path, &contents)?;
        Ok(SoftwareProtector {
            path,
            state: RwLock::new(set),
            writer: Mutex::new(()),
        })
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        // A panic while holding the lock cannot leave the key set half
        // changed (it is swapped in whole), so a poisoned lock is still sound.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` to a copy of the key set, writes it to the file, and
    /// only then makes it visible: the file never lags behind memory.
    fn update(&self, change: impl FnOnce(&KeySet) -> Result<KeySet>) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let next = change(&self.read())?;
        fsutil::write_secret_file(&self.path, serialize(&next).as_bytes(), Replace::Yes)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }
}

impl KeyProtector for SoftwareProtector {
    fn protect(&self, identity: &[u8], plaintext: &[u8]) -> Result<WrappedKey> {
        blob::check_plaintext(plaintext)?;
        let state = self.read();
        let version = state.current;
        let key = state
            .keys
            .get(&version)
            .ok_or(Error::UnknownVersion { version })?;
        let aad = blob::associated_data(Algorithm::Aes256Gcm, version, identity)?;
        let mut iv = [0u8; IV_LEN];
        OsRng.fill_bytes(&mut iv);
        let ciphertext = key
            .cipher
            .encrypt(
                Nonce::from_slice(&iv),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // aes-gcm fails only for inputs beyond 2^36 bytes, far above
            // MAX_PLAINTEXT_LEN.
            .map_err(|_| Error::InvalidInput {
                reason: "plaintext too long for AES-GCM",
            })?;
        Ok(WrappedKey::new(
            BackendKind::Software,
            version,
            Algorithm::Aes256Gcm,
            iv,
            ciphertext,
        ))
    }

    fn unprotect(&self, identity: &[u8], wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        if wrapped.backend() != BackendKind::Software {
            return Err(Error::WrongBackend {
                expected: BackendKind::Software,
                found: wrapped.backend(),
            });
        }
        let version = wrapped.master_version();
        let aad = wrapped.associated_data(identity)?;
        let state = self.read();
        let key = state
            .keys
            .get(&version)
            .ok_or(Error::UnknownVersion { version })?;
        key.cipher
            .decrypt(
                Nonce::from_slice(wrapped.iv()),
                Payload {
                    msg: wrapped.ciphertext(),
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::IntegrityFailure)
    }

    fn current_version(&self) -> u32 {
        self.read().current
    }

    fn new_version(&self) -> Result<u32> {
        let mut created = 0;
        self.update(|old| {
            let version = old
                .keys
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0)
                .checked_add(1)
                .ok_or(Error::InvalidInput {
                    reason: "master key versions exhausted",
                })?;
            let mut next = copy(old);
            next.keys.insert(version, MasterKey::generate());
            next.current = version;
            created = version;
            Ok(next)
        })?;
        tracing::info!(path = %self.path.display(), version = created, "new software master key version");
        Ok(created)
    }

    fn versions(&self) -> Result<Vec<MasterKeyInfo>> {
        let state = self.read();
        Ok(state
            .keys
            .keys()
            .map(|&version| MasterKeyInfo {
                version,
                current: version == state.current,
                label: format!("{}#v{version}", self.path.display()),
            })
            .collect())
    }

    fn retire_version(&self, version: u32) -> Result<()> {
        self.update(|old| {
            if version == old.current {
                return Err(Error::RetireCurrent { version });
            }
            if !old.keys.contains_key(&version) {
                return Err(Error::UnknownVersion { version });
            }
            let mut next = copy(old);
            next.keys.remove(&version);
            Ok(next)
        })?;
        tracing::info!(path = %self.path.display(), version, "retired software master key version");
        Ok(())
    }

    fn health(&self) -> Health {
        // The keys are in memory, so requests are served; a file that has
        // gone or loosened its mode must still be reported.
        match fsutil::read_secret_file(&self.path) {
            Ok(_) => Health::Ok,
            Err(e) => Health::Degraded {
                reason: e.to_string(),
            },
        }
    }

    fn backend(&self) -> BackendKind {
        BackendKind::Software
    }
}

fn copy(set: &KeySet) -> KeySet {
    KeySet {
        current: set.current,
        keys: set
            .keys
            .iter()
            .map(|(&v, k)| (v, MasterKey::new(k.raw.clone())))
            .collect(),
    }
}

fn serialize(set: &KeySet) -> Zeroizing<String> {
    // Sized up front so the string never reallocates and leaves key copies.
    let mut out = Zeroizing::new(String::with_capacity(
        128 + set.keys.len() * (16 + 2 * KEY_LEN),
    ));
    out.push_str("# kmipd master keys. Secret: keep mode 0600 and back it up.\n");
    out.push_str(HEADER);
    out.push('\n');
    out.push_str(&format!("current {}\n", set.current));
    for (version, key) in &set.keys {
        let mut hex = Zeroizing::new([0u8; 2 * KEY_LEN]);
        // Cannot fail: the output buffer is exactly twice the input length.
        let _ = hex::encode_to_slice(key.raw.as_ref(), hex.as_mut());
        out.push_str(&format!("key {version} "));
        // Hex digits are ASCII, hence valid UTF-8.
        out.push_str(std::str::from_utf8(hex.as_ref()).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn parse(path: &Path, contents: &[u8]) -> Result<KeySet> {
    let err = |line: usize, reason: &'static str| Error::KeyFile {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let text = std::str::from_utf8(contents).map_err(|_| err(0, "not UTF-8 text"))?;
    let mut seen_header = false;
    let mut current = None;
    let mut keys = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let n = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !seen_header {
            if line != HEADER {
                return Err(err(n, "expected the header `kmipd-master-keys 1`"));
            }
            seen_header = true;
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("current"), Some(v), None, None) => {
                if current.is_some() {
                    return Err(err(n, "`current` given twice"));
                }
                current = Some(parse_version(v).ok_or(err(n, "bad version number"))?);
            }
            (Some("key"), Some(v), Some(hex_key), None) => {
                let version = parse_version(v).ok_or(err(n, "bad version number"))?;
                let mut raw = Zeroizing::new([0u8; KEY_LEN]);
                hex::decode_to_slice(hex_key, raw.as_mut())
                    .map_err(|_| err(n, "key is not 64 hex digits"))?;
                if keys.insert(version, MasterKey::new(raw)).is_some() {
                    return Err(err(n, "version given twice"));
                }
            }
            _ => return Err(err(n, "expected `current N` or `key N HEX`")),
        }
    }
    if !seen_header {
        return Err(err(0, "missing header `kmipd-master-keys 1`"));
    }
    let current = current.ok_or(err(0, "missing `current` line"))?;
    if !keys.contains_key(&current) {
        return Err(err(0, "the current version has no key"));
    }
    Ok(KeySet { current, keys })
}

fn parse_version(s: &str) -> Option<u32> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&v| v >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_serialize() {
        let mut set = KeySet {
            current: 3,
            ..KeySet::default()
        };
        set.keys.insert(1, MasterKey::new(Zeroizing::new([1; 32])));
        set.keys.insert(3, MasterKey::new(Zeroizing::new([3; 32])));
        let text = serialize(&set);
        let back = parse(Path::new("k"), text.as_bytes()).unwrap();
        assert_eq!(back.current, 3);
        assert_eq!(back.keys.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(*back.keys[&3].raw, [3; 32]);
    }

    #[test]
    fn parse_refuses_bad_files() {
        let key = "00".repeat(32);
        let cases = [
            "".to_string(),
            "kmipd-master-keys 2\ncurrent 1\n".to_string(),
            format!("kmipd-master-keys 1\nkey 1 {key}\n"),
            format!("kmipd-master-keys 1\ncurrent 2\nkey 1 {key}\n"),
            format!("kmipd-master-keys 1\ncurrent 1\nkey 1 {key}\nkey 1 {key}\n"),
            format!(
                "kmipd-master-keys 1\ncurrent 1\nkey 1 {}\n",
                "00".repeat(31)
            ),
            format!("kmipd-master-keys 1\ncurrent 0\nkey 0 {key}\n"),
            format!("kmipd-master-keys 1\ncurrent +1\nkey +1 {key}\n"),
            format!("kmipd-master-keys 1\ncurrent 1\nkey 1 {key} extra\n"),
        ];
        for case in cases {
            assert!(
                matches!(
                    parse(Path::new("k"), case.as_bytes()),
                    Err(Error::KeyFile { .. })
                ),
                "{case}"
            );
        }
    }
}
