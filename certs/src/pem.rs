//! PEM loading for the server's rustls configuration, and certificate fingerprints.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// SHA-256 over the DER encoding of a certificate: the fingerprint used by pins and shown by
/// `kmipctl certs show` (the same value as `openssl x509 -noout -fingerprint -sha256`).
pub fn fingerprint_sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// The fingerprint as lowercase hex without separators.
pub fn fingerprint_hex(der: &[u8]) -> String {
    hex::encode(fingerprint_sha256(der))
}

fn pem_err(path: &Path, e: rustls_pki_types::pem::Error) -> Error {
    match e {
        rustls_pki_types::pem::Error::Io(source) => Error::io(path, source),
        other => Error::Pem {
            path: path.to_owned(),
            detail: format!("{other:?}"),
        },
    }
}

/// Loads every `CERTIFICATE` section of a PEM file, in order (leaf first for a chain file).
///
/// Errors if the file has none.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: path.to_owned(),
            detail: "no CERTIFICATE section found".into(),
        });
    }
    Ok(certs)
}

/// Loads the first certificate of a PEM file.
pub fn load_cert(path: &Path) -> Result<CertificateDer<'static>> {
    let mut certs = load_certs(path)?;
    // load_certs never returns an empty vector.
    Ok(certs.swap_remove(0))
}

/// Parses every `CERTIFICATE` section of PEM text.
pub fn parse_certs_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let path = Path::new("<memory>");
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: path.to_owned(),
            detail: "no CERTIFICATE section found".into(),
        });
    }
    Ok(certs)
}

/// Loads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
///
/// The key bytes are zeroized when the returned value is dropped (`PrivateKeyDer` does it).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => Error::Pem {
            path: path.to_owned(),
            detail: "no PRIVATE KEY section found".into(),
        },
        other => pem_err(path, other),
    })
}

/// Encodes DER as a PEM `CERTIFICATE`.
pub fn cert_to_pem(der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        // `chunks` never yields an empty slice, so index 0 exists.
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        for len in 0..10 {
            let der: Vec<u8> = (0..len as u8).collect();
            if der.is_empty() {
                continue;
            }
            let pem = cert_to_pem(&der);
            let back = parse_certs_pem(pem.as_bytes()).unwrap();
            assert_eq!(back[0].as_ref(), &der[..]);
        }
    }
}
