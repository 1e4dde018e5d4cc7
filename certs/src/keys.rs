//! Key generation and loading.
//!
//! rcgen's `ring` backend cannot generate RSA keys, so RSA keys are generated with the pure
//! Rust `rsa` crate, encoded as PKCS#8 and handed to rcgen. ECDSA keys come from rcgen (ring).
//! Private keys only leave this module as PKCS#8 PEM inside [`Zeroizing`] buffers.

use std::fmt;
use std::path::Path;

use rcgen::KeyPair;
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::passphrase::CaPassphrase;

/// The key types kmipd generates.
///
/// RSA-2048 is the default for everything: it is what vCenter is known to accept for both the
/// KMS server certificate and an uploaded client certificate and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// RSA 2048 bits, signatures RSA PKCS#1 v1.5 with SHA-256.
    #[default]
    #[value(name = "rsa2048")]
    Rsa2048,
    /// RSA 3072 bits, signatures RSA PKCS#1 v1.5 with SHA-256.
    #[value(name = "rsa3072")]
    Rsa3072,
    /// ECDSA on P-256 with SHA-256.
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    #[value(name = "ecdsa-p384")]
    EcdsaP384,
}

impl KeyType {
    /// Whether this is an RSA key type.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072)
    }

    fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
        })
    }
}

/// A freshly generated or loaded private key, ready to sign with.
///
/// `Debug` never prints the key.
pub struct PrivateKey {
    pub(crate) key_pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.key_pair.algorithm())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl PrivateKey {
    /// Generates a key of the given type.
    ///
    /// RSA generation takes a few hundred milliseconds in an optimised build and several
    /// seconds in an unoptimised one (see the crate docs about `opt-level` for `rsa`).
    pub fn generate(key_type: KeyType) -> Result<Self> {
        let key_pair = match key_type.rsa_bits() {
            Some(bits) => generate_rsa(bits)?,
            None => {
                let alg = match key_type {
                    KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
                    _ => &rcgen::PKCS_ECDSA_P256_SHA256,
                };
                KeyPair::generate_for(alg)?
            }
        };
        Ok(Self { key_pair })
    }

    /// Loads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`): RSA, ECDSA P-256/P-384
    /// or Ed25519.
    pub fn from_pem(pem: &str) -> Result<Self> {
        Ok(Self {
            key_pair: KeyPair::from_pem(pem)?,
        })
    }

    /// Loads a PKCS#8 PEM private key from a file.
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        Self::from_pem_file_with(path, None)
    }

    /// Loads a PKCS#8 PEM private key from a file, decrypting it with `passphrase` when it
    /// is an encrypted PKCS#8 key (`-----BEGIN ENCRYPTED PRIVATE KEY-----`). An encrypted key
    /// without a passphrase is [`Error::PassphraseRequired`]; a wrong passphrase is
    /// [`Error::WrongPassphrase`]. A passphrase for an unencrypted key is not needed and
    /// ignored.
    pub fn from_pem_file_with(path: &Path, passphrase: Option<&CaPassphrase>) -> Result<Self> {
        let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?);
        let pem = if crate::passphrase::is_encrypted_pem(&pem) {
            crate::passphrase::decrypt_pem(path, &pem, passphrase)?
        } else {
            pem
        };
        Self::from_pem(&pem).map_err(|e| Error::Pem {
            path: path.to_owned(),
            detail: format!("not a usable PKCS#8 private key: {e}"),
        })
    }

    /// The key as encrypted PKCS#8 PEM (`-----BEGIN ENCRYPTED PRIVATE KEY-----`; PBES2 with
    /// scrypt and AES-256-CBC, which `openssl pkey -passin` reads).
    pub fn to_encrypted_pkcs8_pem(&self, passphrase: &CaPassphrase) -> Result<Zeroizing<String>> {
        let der = Zeroizing::new(self.key_pair.serialize_der());
        crate::passphrase::encrypt_pkcs8(&der, passphrase)
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key_pair.serialize_pem())
    }

    /// The DER SubjectPublicKeyInfo of the public half.
    pub fn public_key_spki(&self) -> Vec<u8> {
        use rcgen::PublicKeyData;
        self.key_pair.subject_public_key_info()
    }
}

fn generate_rsa(bits: usize) -> Result<KeyPair> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| Error::Rsa(e.to_string()))?;
    // SecretDocument zeroizes on drop; rcgen keeps its own copy for signing.
    let der = key.to_pkcs8_der().map_err(|e| Error::Rsa(e.to_string()))?;
    let pkcs8 = PrivatePkcs8KeyDer::from(der.as_bytes());
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(
        &pkcs8,
        &rcgen::PKCS_RSA_SHA256,
    )?)
}
