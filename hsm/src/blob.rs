//! The wrapped-key format: what a store keeps for each protected key.
//!
//! A [`WrappedKey`] is self-describing so that a store can be audited and
//! rotated without asking the HSM: it records the backend that made it, the
//! master key version and the algorithm. Its byte encoding (all integers
//! big-endian):
//!
//! ```text
//! offset size  field
//!      0    2  magic "KW"
//!      2    1  format version (1)
//!      3    1  backend id (1 = software, 2 = pkcs11)
//!      4    4  master key version (u32, >= 1)
//!      8    1  algorithm id (1 = AES-256-GCM, 96-bit IV, 128-bit tag)
//!      9   12  IV
//!     21    4  length of ciphertext+tag (u32)
//!     25    n  ciphertext followed by the 16-byte tag
//! ```
//!
//! Parsing is strict: every length is checked against the bytes present and
//! against the limits before anything is allocated, and trailing bytes are
//! refused.
//!
//! The associated data authenticated with the ciphertext is
//! [`associated_data`]: the format version, algorithm, master key version
//! and the caller's object identity. The backend id is deliberately not part
//! of it: it names *where* the master key lives, not what the ciphertext
//! means, and is checked in clear by [`crate::KeyProtector::unprotect`].

use std::fmt;

use crate::error::{Error, Result};

/// Magic bytes at the start of every encoded wrapped key.
pub const MAGIC: [u8; 2] = *b"KW";
/// The only format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the AES-GCM IV, in bytes.
pub const IV_LEN: usize = 12;
/// Length of the AES-GCM tag, in bytes.
pub const TAG_LEN: usize = 16;
/// Largest plaintext accepted by `protect` (keys are small; this bounds what a
/// hostile blob can make us allocate).
pub const MAX_PLAINTEXT_LEN: usize = 64 * 1024;
/// Largest identity accepted by `protect` and `unprotect`.
pub const MAX_IDENTITY_LEN: usize = 4096;

const HEADER_LEN: usize = 2 + 1 + 1 + 4 + 1 + IV_LEN + 4;

/// The kind of backend holding a master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// Master keys in a local key file.
    Software,
    /// Master keys inside a PKCS#11 token.
    Pkcs11,
}

impl BackendKind {
    /// The id written in the blob.
    pub fn id(self) -> u8 {
        match self {
            BackendKind::Software => 1,
            BackendKind::Pkcs11 => 2,
        }
    }

    /// The kind with this blob id, if any.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(BackendKind::Software),
            2 => Some(BackendKind::Pkcs11),
            _ => None,
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Software => "software",
            BackendKind::Pkcs11 => "pkcs11",
        })
    }
}

/// The wrapping algorithm, independent of the backend that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// AES-256-GCM with a 96-bit random IV, a 128-bit tag and associated data.
    Aes256Gcm,
}

impl Algorithm {
    /// The id written in the blob.
    pub fn id(self) -> u8 {
        match self {
            Algorithm::Aes256Gcm => 1,
        }
    }

    /// The algorithm with this blob id, if any.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Algorithm::Aes256Gcm),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Aes256Gcm => "AES-256-GCM",
        })
    }
}

/// A key protected under a master key version. Holds no secret in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    backend: BackendKind,
    master_version: u32,
    algorithm: Algorithm,
    iv: [u8; IV_LEN],
    /// Ciphertext followed by the tag; at least `TAG_LEN + 1` bytes.
    ciphertext: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("backend", &self.backend)
            .field("master_version", &self.master_version)
            .field("algorithm", &self.algorithm)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl WrappedKey {
    /// Assembles a wrapped key from a backend's output. `ciphertext` is the
    /// ciphertext followed by the tag.
    pub(crate) fn new(
        backend: BackendKind,
        master_version: u32,
        algorithm: Algorithm,
        iv: [u8; IV_LEN],
        ciphertext: Vec<u8>,
    ) -> Self {
        WrappedKey {
            backend,
            master_version,
            algorithm,
            iv,
            ciphertext,
        }
    }

    /// The backend that produced this blob.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// The master key version this blob is protected under.
    pub fn master_version(&self) -> u32 {
        self.master_version
    }

    /// The wrapping algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The IV.
    pub fn iv(&self) -> &[u8; IV_LEN] {
        &self.iv
    }

    /// Ciphertext followed by the tag.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// Length of the protected plaintext.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len().saturating_sub(TAG_LEN)
    }

    /// The associated data this blob was sealed with, for `identity`.
    pub fn associated_data(&self, identity: &[u8]) -> Result<Vec<u8>> {
        associated_data(self.algorithm, self.master_version, identity)
    }

    /// Encodes the blob (see the module documentation for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.ciphertext.len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(self.backend.id());
        out.extend_from_slice(&self.master_version.to_be_bytes());
        out.push(self.algorithm.id());
        out.extend_from_slice(&self.iv);
        // Cannot truncate: `new` is only called with ciphertexts of at most
        // MAX_PLAINTEXT_LEN + TAG_LEN bytes and `from_bytes` checks the same.
        out.extend_from_slice(&(self.ciphertext.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Decodes a blob, checking every field. Never panics on hostile input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let magic = r.take::<2>()?;
        if magic != MAGIC {
            return Err(malformed("bad magic"));
        }
        let [format] = r.take::<1>()?;
        if format != FORMAT_VERSION {
            return Err(malformed("unsupported format version"));
        }
        let [backend] = r.take::<1>()?;
        let backend = BackendKind::from_id(backend).ok_or(malformed("unknown backend id"))?;
        let master_version = u32::from_be_bytes(r.take::<4>()?);
        if master_version == 0 {
            return Err(malformed("master key version 0"));
        }
        let [algorithm] = r.take::<1>()?;
        let algorithm = Algorithm::from_id(algorithm).ok_or(malformed("unknown algorithm id"))?;
        let iv = r.take::<IV_LEN>()?;
        let ct_len = u32::from_be_bytes(r.take::<4>()?) as usize;
        if ct_len <= TAG_LEN {
            return Err(malformed("ciphertext shorter than the tag"));
        }
        if ct_len > MAX_PLAINTEXT_LEN + TAG_LEN {
            return Err(malformed("ciphertext longer than the limit"));
        }
        if r.0.len() != ct_len {
            return Err(malformed(if r.0.len() < ct_len {
                "truncated ciphertext"
            } else {
                "trailing bytes after the ciphertext"
            }));
        }
        Ok(WrappedKey {
            backend,
            master_version,
            algorithm,
            iv,
            ciphertext: r.0.to_vec(),
        })
    }
}

/// The canonical associated data for a wrapped key: it binds the ciphertext to
/// the format, the algorithm, the master key version and the object identity,
/// so a blob copied onto another object, or relabelled with another version,
/// fails to open.
///
/// ```text
/// "KW" | format version u8 | algorithm id u8 | master version u32 | identity length u32 | identity
/// ```
pub fn associated_data(
    algorithm: Algorithm,
    master_version: u32,
    identity: &[u8],
) -> Result<Vec<u8>> {
    check_identity(identity)?;
    let mut aad = Vec::with_capacity(2 + 1 + 1 + 4 + 4 + identity.len());
    aad.extend_from_slice(&MAGIC);
    aad.push(FORMAT_VERSION);
    aad.push(algorithm.id());
    aad.extend_from_slice(&master_version.to_be_bytes());
    // Cannot truncate: check_identity bounds the length by MAX_IDENTITY_LEN.
    aad.extend_from_slice(&(identity.len() as u32).to_be_bytes());
    aad.extend_from_slice(identity);
    Ok(aad)
}

/// Checks the identity length limit.
pub(crate) fn check_identity(identity: &[u8]) -> Result<()> {
    if identity.len() > MAX_IDENTITY_LEN {
        return Err(Error::InvalidInput {
            reason: "identity longer than MAX_IDENTITY_LEN",
        });
    }
    Ok(())
}

/// Checks what `protect` accepts as plaintext: 1 to `MAX_PLAINTEXT_LEN` bytes.
pub(crate) fn check_plaintext(plaintext: &[u8]) -> Result<()> {
    if plaintext.is_empty() {
        return Err(Error::InvalidInput {
            reason: "empty key material",
        });
    }
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(Error::InvalidInput {
            reason: "key material longer than MAX_PLAINTEXT_LEN",
        });
    }
    Ok(())
}

fn malformed(reason: &'static str) -> Error {
    Error::Malformed { reason }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(malformed("truncated header"))?;
        self.0 = rest;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WrappedKey {
        WrappedKey::new(
            BackendKind::Pkcs11,
            7,
            Algorithm::Aes256Gcm,
            [9; IV_LEN],
            vec![0xab; 32 + TAG_LEN],
        )
    }

    #[test]
    fn round_trip_and_layout() {
        let w = sample();
        let bytes = w.to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN + 48);
        assert_eq!(&bytes[..4], b"KW\x01\x02");
        assert_eq!(&bytes[4..8], &7u32.to_be_bytes());
        assert_eq!(bytes[8], 1);
        assert_eq!(&bytes[21..25], &48u32.to_be_bytes());
        assert_eq!(WrappedKey::from_bytes(&bytes).unwrap(), w);
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = sample().to_bytes();
        for n in 0..bytes.len() {
            assert!(matches!(
                WrappedKey::from_bytes(&bytes[..n]),
                Err(Error::Malformed { .. })
            ));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            WrappedKey::from_bytes(&longer),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn hostile_length_does_not_allocate() {
        let mut bytes = sample().to_bytes();
        bytes[21..25].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            WrappedKey::from_bytes(&bytes),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn aad_binds_version_and_identity() {
        let a = associated_data(Algorithm::Aes256Gcm, 1, b"id").unwrap();
        assert_ne!(a, associated_data(Algorithm::Aes256Gcm, 2, b"id").unwrap());
        assert_ne!(a, associated_data(Algorithm::Aes256Gcm, 1, b"id2").unwrap());
        // The length prefix keeps (identity) unambiguous.
        assert_eq!(&a[8..12], &2u32.to_be_bytes());
        assert!(associated_data(Algorithm::Aes256Gcm, 1, &[0; MAX_IDENTITY_LEN + 1]).is_err());
    }

    #[test]
    fn debug_shows_no_bytes() {
        let s = format!("{:?}", sample());
        assert!(!s.contains("171"), "{s}");
        assert!(s.contains("ciphertext_len: 48"));
    }
}
