//! Encrypt and Decrypt (KMIP 1.2+, 4.29 and 4.30): server-side symmetric
//! cryptography with a managed key.
//!
//! What kmipd does: AES (128/192/256) and Triple DES (two- or three-key) in
//! ECB or CBC mode, without padding or with PKCS5 padding (PKCS#7 padding to
//! the cipher's block size, as the OASIS files use it for AES), one request
//! at a time. The block ciphers and modes are RustCrypto's (`aes`, `des`,
//! `cbc`, `ecb`). Everything else is refused with a Result Reason, never
//! guessed: other algorithms or modes, other paddings, authenticated
//! encryption fields, and streaming (Correlation Value, Init/Final
//! Indicators other than one complete call) are Feature Not Supported.
//!
//! The Cryptographic Parameters are the request's, or else the first
//! Cryptographic Parameters attribute of the key (the whole structure: KMIP
//! does not merge the two). Without a Block Cipher Mode in either the
//! request is refused (Missing Data): a silent default would make the
//! ciphertext depend on a server setting the client cannot see.
//!
//! The rules on the key, in this order:
//! - it is a Symmetric Key with its Key Value (else Illegal Operation,
//!   Feature Not Supported for asymmetric keys, Key Value Not Present for
//!   a metadata-only key);
//! - Encrypt needs the key Active and before its Protect Stop Date; Decrypt
//!   needs it Active or Deactivated and at or after its Process Start Date
//!   (KMIP 1.x, 3.25-3.26 and the state descriptions of 3.22: a
//!   Deactivated key may still process, a Compromised one is refused
//!   here). A wrong state is Permission Denied in 1.x (Wrong Key Lifecycle
//!   State in 2.x); a date outside the window is Permission Denied
//!   (CS-BC-M-14);
//! - the Cryptographic Usage Mask has the Encrypt (Decrypt) bit (Permission
//!   Denied in 1.x, Incompatible Cryptographic Usage Mask in 2.x);
//! - Encrypt consumes the key's Usage Limits (KMIP 1.x, 3.21: they count
//!   the applying of protection only, so Decrypt does not): the data's
//!   length in bytes for the unit Byte, one per request for the unit
//!   Object. A request that needs more than is left is refused with
//!   Permission Denied and consumes nothing (CS-BC-M-7). The new count is
//!   durable before the ciphertext is returned, under the object's lock.
//!
//! IVs: CBC needs one. On Encrypt, Random IV true (request or key
//! parameters) makes kmipd draw one from the OS and return it as
//! IV/Counter/Nonce; a client IV together with Random IV true is refused
//! (Invalid Field). Without either, or on a Decrypt without one, the request
//! is refused with Invalid Message, as CS-BC-M-12/13 expect. An IV of the
//! wrong length is Invalid Field. ECB ignores a client IV.
//!
//! Key bytes are copied into `Zeroizing` buffers; the ciphers zeroize their
//! round keys on drop. Neither data nor keys are logged.

use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::model::{names, usage_limits, ManagedObject};
use aes::cipher;
use kmip::codec::{Bytes, Ctx, Field};
use kmip::messages::objects::{CryptographicParameters, KeyValue, Object};
use kmip::messages::payloads::{DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse};
use kmip::tables::{
    BlockCipherMode, CryptographicAlgorithm, CryptographicUsageMask, ObjectType, PaddingMethod,
    State, Tag, UsageLimitsUnit,
};
use kmip::{ProtocolVersion, Ttlv, Value};
use zeroize::Zeroizing;

/// Most Data bytes one Encrypt or Decrypt takes (the message size limit
/// bounds it too; this keeps the work per request small and explicit).
pub const MAX_DATA: usize = 1 << 20;

/// A supported block cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// AES-128, -192 or -256 by key length.
    Aes,
    /// Triple DES, EDE, with a 24-byte (three-key) or 16-byte (two-key) key.
    TripleDes,
}

impl Algorithm {
    /// Block size in bytes.
    pub fn block_size(self) -> usize {
        match self {
            Algorithm::Aes => 16,
            Algorithm::TripleDes => 8,
        }
    }

    fn from_kmip(a: CryptographicAlgorithm) -> OpResult<Self> {
        match a {
            CryptographicAlgorithm::AES => Ok(Algorithm::Aes),
            CryptographicAlgorithm::V_3DES => Ok(Algorithm::TripleDes),
            other => Err(OpError::FeatureNotSupported(format!(
                "kmipd encrypts with AES and 3DES keys, not {other}"
            ))),
        }
    }
}

/// A supported mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Electronic codebook.
    Ecb,
    /// Cipher block chaining (needs an IV).
    Cbc,
}

/// A supported padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// The data must be a whole number of blocks.
    None,
    /// PKCS5 (PKCS#7 to the block size).
    Pkcs5,
}

/// Encrypt or decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Apply protection.
    Encrypt,
    /// Process protected data.
    Decrypt,
}

/// `data` encrypted or decrypted under `key`. `iv` is required for CBC and
/// ignored for ECB. Errors: a key length the algorithm does not take
/// (Illegal Operation), an IV of the wrong length (Invalid Field), a missing
/// IV (Invalid Message), data that is not a whole number
/// of blocks where it must be (Invalid Field), bad padding on decryption
/// (Cryptographic Failure).
pub fn apply(
    direction: Direction,
    algorithm: Algorithm,
    mode: Mode,
    padding: Padding,
    key: &[u8],
    iv: Option<&[u8]>,
    data: &[u8],
) -> OpResult<Zeroizing<Vec<u8>>> {
    let bs = algorithm.block_size();
    let iv = match (mode, iv) {
        (Mode::Ecb, _) => &[][..],
        (Mode::Cbc, Some(iv)) if iv.len() == bs => iv,
        (Mode::Cbc, Some(iv)) => {
            return Err(OpError::InvalidField(format!(
                "the IV is {} bytes; this cipher needs {bs}",
                iv.len()
            )))
        }
        (Mode::Cbc, None) => {
            return Err(OpError::InvalidMessage("CBC needs an IV".into()));
        }
    };
    // The stored key does not fit its algorithm: not the request's fault
    // (as for a wrapping key in Get).
    let bad_key = || {
        OpError::IllegalOperation(format!(
            "a {}-byte key does not fit {algorithm:?}",
            key.len()
        ))
    };
    let s = Step {
        direction,
        mode,
        padding,
        key,
        iv,
        data,
    };
    match (algorithm, key.len()) {
        (Algorithm::Aes, 16) => s.run::<aes::Aes128>(),
        (Algorithm::Aes, 24) => s.run::<aes::Aes192>(),
        (Algorithm::Aes, 32) => s.run::<aes::Aes256>(),
        (Algorithm::TripleDes, 24) => s.run::<des::TdesEde3>(),
        (Algorithm::TripleDes, 16) => s.run::<des::TdesEde2>(),
        _ => Err(bad_key()),
    }
}

/// One cipher call's inputs.
struct Step<'a> {
    direction: Direction,
    mode: Mode,
    padding: Padding,
    key: &'a [u8],
    iv: &'a [u8],
    data: &'a [u8],
}

impl Step<'_> {
    fn run<C>(&self) -> OpResult<Zeroizing<Vec<u8>>>
    where
        C: cipher::BlockCipher
            + cipher::BlockEncryptMut
            + cipher::BlockDecryptMut
            + cipher::KeyInit,
    {
        use cipher::{KeyInit, KeyIvInit};
        // Lengths were checked by the caller; a failure here is a bug.
        let internal = |_| OpError::Internal("cipher initialisation failed".into());
        match (self.direction, self.mode) {
            (Direction::Encrypt, Mode::Ecb) => encrypt_blocks(
                ecb::Encryptor::<C>::new_from_slice(self.key).map_err(internal)?,
                self,
            ),
            (Direction::Encrypt, Mode::Cbc) => encrypt_blocks(
                cbc::Encryptor::<C>::new_from_slices(self.key, self.iv).map_err(internal)?,
                self,
            ),
            (Direction::Decrypt, Mode::Ecb) => decrypt_blocks(
                ecb::Decryptor::<C>::new_from_slice(self.key).map_err(internal)?,
                self,
            ),
            (Direction::Decrypt, Mode::Cbc) => decrypt_blocks(
                cbc::Decryptor::<C>::new_from_slices(self.key, self.iv).map_err(internal)?,
                self,
            ),
        }
    }
}

fn encrypt_blocks<M: cipher::BlockEncryptMut>(m: M, s: &Step<'_>) -> OpResult<Zeroizing<Vec<u8>>> {
    use cipher::block_padding::{NoPadding, Pkcs7};
    let bs = M::block_size();
    let n = s.data.len();
    if s.padding == Padding::None && n % bs != 0 {
        return Err(OpError::InvalidField(format!(
            "without padding the data must be a multiple of {bs} bytes; it is {n}"
        )));
    }
    let mut buf = Zeroizing::new(vec![0u8; n + bs]);
    buf[..n].copy_from_slice(s.data);
    let len = match s.padding {
        Padding::None => m.encrypt_padded_mut::<NoPadding>(&mut buf, n),
        Padding::Pkcs5 => m.encrypt_padded_mut::<Pkcs7>(&mut buf, n),
    }
    .map_err(|_| OpError::Internal("padding failed".into()))?
    .len();
    buf.truncate(len);
    Ok(buf)
}

fn decrypt_blocks<M: cipher::BlockDecryptMut>(m: M, s: &Step<'_>) -> OpResult<Zeroizing<Vec<u8>>> {
    use cipher::block_padding::{NoPadding, Pkcs7};
    let bs = M::block_size();
    let n = s.data.len();
    if n % bs != 0 {
        return Err(OpError::InvalidField(format!(
            "the data to decrypt must be a multiple of {bs} bytes; it is {n}"
        )));
    }
    if s.padding == Padding::Pkcs5 && n == 0 {
        return Err(OpError::Cryptographic("padded data cannot be empty".into()));
    }
    let mut buf = Zeroizing::new(s.data.to_vec());
    let len = match s.padding {
        Padding::None => m
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| OpError::Internal("unpadding failed".into()))?
            .len(),
        Padding::Pkcs5 => m
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map_err(|_| OpError::Cryptographic("bad padding".into()))?
            .len(),
    };
    buf.truncate(len);
    Ok(buf)
}

/// The parameters a request resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resolved {
    mode: Mode,
    padding: Padding,
    random_iv: bool,
}

/// The request's Cryptographic Parameters, or the key's first Cryptographic
/// Parameters attribute, checked against what kmipd implements.
fn resolve(
    requested: Option<&CryptographicParameters>,
    o: &ManagedObject,
    algorithm: Algorithm,
    key_algorithm: CryptographicAlgorithm,
) -> OpResult<Resolved> {
    let stored;
    let p = match requested {
        Some(p) => p,
        None => {
            let a = o.first(names::CRYPTOGRAPHIC_PARAMETERS).ok_or_else(|| {
                OpError::MissingData(
                    "no Cryptographic Parameters in the request or on the key".into(),
                )
            })?;
            let t = Ttlv::new(Tag::CRYPTOGRAPHIC_PARAMETERS, a.value.clone());
            stored = CryptographicParameters::decode(&t, Ctx::new(ProtocolVersion::V1_4)).map_err(
                |e| OpError::Internal(format!("stored Cryptographic Parameters of {}: {e}", o.id)),
            )?;
            &stored
        }
    };
    if let Some(a) = p.cryptographic_algorithm {
        if a != key_algorithm {
            return Err(OpError::InvalidField(format!(
                "the Cryptographic Parameters name {a}; the key is {key_algorithm}"
            )));
        }
    }
    let mode = match p.block_cipher_mode {
        Some(BlockCipherMode::ECB) => Mode::Ecb,
        Some(BlockCipherMode::CBC) => Mode::Cbc,
        Some(other) => {
            return Err(OpError::FeatureNotSupported(format!(
                "kmipd encrypts in ECB and CBC mode, not {other}"
            )))
        }
        None => {
            return Err(OpError::MissingData(
                "no Block Cipher Mode in the request or on the key".into(),
            ))
        }
    };
    let padding = match p.padding_method {
        None | Some(PaddingMethod::NONE) => Padding::None,
        Some(PaddingMethod::PKCS5) => Padding::Pkcs5,
        Some(other) => {
            return Err(OpError::FeatureNotSupported(format!(
                "kmipd pads with PKCS5 only, not {other}"
            )))
        }
    };
    if let Some(bits) = p.iv_length {
        if mode == Mode::Cbc && i64::from(bits) != 8 * algorithm.block_size() as i64 {
            return Err(OpError::InvalidField(format!(
                "IV Length {bits} bits does not fit this cipher's {}-bit block",
                8 * algorithm.block_size()
            )));
        }
    }
    Ok(Resolved {
        mode,
        padding,
        random_iv: p.random_iv == Some(true),
    })
}

/// The request fields every call checks before touching the key.
struct Call<'a> {
    direction: Direction,
    id: String,
    parameters: Option<&'a CryptographicParameters>,
    data: Option<&'a Bytes>,
    iv: Option<&'a Bytes>,
}

/// Refuses streaming and authenticated encryption fields.
fn refuse_streaming(
    correlation: Option<&Bytes>,
    init: Option<bool>,
    last: Option<bool>,
    aead: bool,
) -> OpResult<()> {
    // One complete call is no indicator, or Init and Final both true.
    let streaming =
        correlation.is_some() || last == Some(false) || (init == Some(true) && last != Some(true));
    if streaming {
        return Err(OpError::FeatureNotSupported(
            "kmipd does not stream Encrypt or Decrypt (Correlation Value, Init and Final \
             Indicators): send the whole data in one request"
                .into(),
        ));
    }
    if aead {
        return Err(OpError::FeatureNotSupported(
            "kmipd does not implement authenticated encryption".into(),
        ));
    }
    Ok(())
}

/// The checks on the key's type, state, dates and usage mask.
fn check_key(ctx: &OpCtx<'_>, o: &ManagedObject, direction: Direction) -> OpResult<()> {
    let id = &o.id;
    match o.object_type {
        ObjectType::SYMMETRIC_KEY => {}
        ObjectType::PUBLIC_KEY | ObjectType::PRIVATE_KEY => {
            return Err(OpError::FeatureNotSupported(
                "kmipd encrypts with symmetric keys only".into(),
            ))
        }
        other => {
            return Err(OpError::IllegalOperation(format!(
                "object {id} is a {other}, not a key"
            )))
        }
    }
    if o.is_destroyed() {
        return Err(OpError::Destroyed(format!("object {id} is destroyed")));
    }
    let state = o.stored_state();
    let (allowed, mask_bit, what) = match direction {
        Direction::Encrypt => (
            state == State::ACTIVE,
            CryptographicUsageMask::ENCRYPT,
            "Encrypt",
        ),
        Direction::Decrypt => (
            state == State::ACTIVE || state == State::DEACTIVATED,
            CryptographicUsageMask::DECRYPT,
            "Decrypt",
        ),
    };
    if !allowed {
        return Err(OpError::WrongState(format!(
            "object {id} is {state}: it cannot be used to {}",
            what.to_lowercase()
        )));
    }
    match direction {
        Direction::Encrypt => {
            if o.date(names::PROTECT_STOP_DATE)
                .is_some_and(|d| d <= ctx.now)
            {
                return Err(OpError::PermissionDenied(format!(
                    "object {id} is past its Protect Stop Date"
                )));
            }
        }
        Direction::Decrypt => {
            if o.date(names::PROCESS_START_DATE)
                .is_some_and(|d| d > ctx.now)
            {
                return Err(OpError::PermissionDenied(format!(
                    "object {id} is before its Process Start Date"
                )));
            }
        }
    }
    let mask = o
        .first(names::CRYPTOGRAPHIC_USAGE_MASK)
        .and_then(|a| a.integer())
        .unwrap_or(0) as u32;
    if mask & mask_bit.0 == 0 {
        return Err(OpError::IncompatibleUsageMask(format!(
            "the Cryptographic Usage Mask of object {id} does not allow {what}"
        )));
    }
    Ok(())
}

/// The key's algorithm and bytes (a copy in a zeroizing buffer).
fn key_of(
    o: &ManagedObject,
    object: &Object,
) -> OpResult<(CryptographicAlgorithm, Zeroizing<Vec<u8>>)> {
    let kb = object
        .key_block()
        .ok_or_else(|| OpError::Internal(format!("key {} has no Key Block", o.id)))?;
    let algorithm = kb
        .cryptographic_algorithm
        .or_else(|| {
            o.first(names::CRYPTOGRAPHIC_ALGORITHM)
                .and_then(|a| a.enumeration())
                .map(CryptographicAlgorithm)
        })
        .ok_or_else(|| {
            OpError::IllegalOperation(format!("key {} has no Cryptographic Algorithm", o.id))
        })?;
    let material = match &kb.key_value {
        None => {
            return Err(OpError::KeyValueNotPresent(format!(
                "object {} was registered without its Key Value",
                o.id
            )))
        }
        Some(KeyValue::Wrapped(_)) => {
            return Err(OpError::IllegalOperation(format!(
                "the Key Value of object {} is wrapped",
                o.id
            )))
        }
        Some(KeyValue::Plain { key_material, .. }) => key_material,
    };
    let bytes = match &material.value {
        Value::ByteString(b) => b.as_slice(),
        // Transparent Symmetric Key: the Key inside.
        Value::Structure(_) => material
            .child(Tag::KEY)
            .and_then(|k| k.as_bytes().ok())
            .ok_or_else(|| OpError::IllegalOperation(format!("key {} has no Key", o.id)))?,
        _ => {
            return Err(OpError::IllegalOperation(format!(
                "key {} has no raw key material",
                o.id
            )))
        }
    };
    Ok((algorithm, Zeroizing::new(bytes.to_vec())))
}

/// The shared body of Encrypt and Decrypt: the output and the IV kmipd drew.
async fn run(ctx: &OpCtx<'_>, c: Call<'_>) -> OpResult<(Vec<u8>, Option<Vec<u8>>)> {
    let data = c
        .data
        .ok_or_else(|| OpError::MissingData("the request has no Data".into()))?;
    if data.0.len() > MAX_DATA {
        return Err(OpError::InvalidField(format!(
            "Data is {} bytes; kmipd takes at most {MAX_DATA} per request",
            data.0.len()
        )));
    }
    let mut o = ctx.load_online(&c.id)?;
    // Usage Limits are read, checked and written under the object's lock.
    let accounted = c.direction == Direction::Encrypt && o.first(names::USAGE_LIMITS).is_some();
    let _guard = if accounted {
        let g = ctx.server.lock(&c.id).await;
        o = ctx.load_online(&c.id)?;
        Some(g)
    } else {
        None
    };
    check_key(ctx, &o, c.direction)?;
    let consume = match (
        c.direction,
        o.first(names::USAGE_LIMITS)
            .and_then(|a| usage_limits::parts(&a.value)),
    ) {
        (Direction::Encrypt, Some((total, count, unit))) => {
            let left = count.unwrap_or(total);
            let want = if unit == UsageLimitsUnit::BYTE.0 {
                data.0.len() as i64
            } else {
                1
            };
            if want > left {
                return Err(OpError::PermissionDenied(format!(
                    "object {} has {left} of its Usage Limits left; this request needs {want}",
                    o.id
                )));
            }
            Some((total, left - want, unit))
        }
        _ => None,
    };
    let object = ctx.content(&o).await?;
    let (key_algorithm, key) = key_of(&o, &object)?;
    drop(object);
    let algorithm = Algorithm::from_kmip(key_algorithm)?;
    let r = resolve(c.parameters, &o, algorithm, key_algorithm)?;
    let mut drawn = None;
    let iv: Option<Vec<u8>> = match (c.direction, r.mode, r.random_iv, c.iv) {
        (_, Mode::Ecb, _, _) => None,
        (Direction::Encrypt, Mode::Cbc, true, Some(_)) => {
            return Err(OpError::InvalidField(
                "an IV/Counter/Nonce was given with Random IV true".into(),
            ))
        }
        (Direction::Encrypt, Mode::Cbc, true, None) => {
            use rand::RngCore;
            let mut v = vec![0u8; algorithm.block_size()];
            rand::rngs::OsRng.fill_bytes(&mut v);
            drawn = Some(v.clone());
            Some(v)
        }
        (_, Mode::Cbc, _, Some(iv)) => Some(iv.0.clone()),
        (_, Mode::Cbc, _, None) => {
            return Err(OpError::InvalidMessage(
                "missing IV/Counter/Nonce: CBC needs one (or Random IV on Encrypt)".into(),
            ))
        }
    };
    let mut out = super::batch::blocking_section(|| {
        apply(
            c.direction,
            algorithm,
            r.mode,
            r.padding,
            &key,
            iv.as_deref(),
            &data.0,
        )
    })?;
    if let Some((total, left, unit)) = consume {
        let old = o.clone();
        o.set(names::USAGE_LIMITS, usage_limits::value(total, left, unit));
        ctx.save(Some(&old), &mut o).await?;
    }
    Ok((std::mem::take(&mut *out), drawn))
}

/// Encrypt.
pub async fn encrypt(ctx: &OpCtx<'_>, p: &EncryptRequest) -> OpResult<EncryptResponse> {
    refuse_streaming(
        p.correlation_value.as_ref(),
        p.init_indicator,
        p.final_indicator,
        p.authenticated_encryption_additional_data.is_some(),
    )?;
    let id = ctx.target(&p.unique_identifier)?;
    let (data, iv) = run(
        ctx,
        Call {
            direction: Direction::Encrypt,
            id: id.clone(),
            parameters: p.cryptographic_parameters.as_ref(),
            data: p.data.as_ref(),
            iv: p.iv_counter_nonce.as_ref(),
        },
    )
    .await?;
    Ok(EncryptResponse {
        unique_identifier: id,
        data: Some(Bytes(data)),
        iv_counter_nonce: iv.map(Bytes),
        ..Default::default()
    })
}

/// Decrypt.
pub async fn decrypt(ctx: &OpCtx<'_>, p: &DecryptRequest) -> OpResult<DecryptResponse> {
    refuse_streaming(
        p.correlation_value.as_ref(),
        p.init_indicator,
        p.final_indicator,
        p.authenticated_encryption_additional_data.is_some()
            || p.authenticated_encryption_tag.is_some(),
    )?;
    let id = ctx.target(&p.unique_identifier)?;
    let (data, _) = run(
        ctx,
        Call {
            direction: Direction::Decrypt,
            id: id.clone(),
            parameters: p.cryptographic_parameters.as_ref(),
            data: p.data.as_ref(),
            iv: p.iv_counter_nonce.as_ref(),
        },
    )
    .await?;
    Ok(DecryptResponse {
        unique_identifier: id,
        data: Some(Bytes(data)),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::create::register;
    use crate::ops::test_support::TestServer;
    use kmip::messages::attributes::Attribute;
    use kmip::tables::{CryptographicUsageMask as M, ResultReason};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // NIST SP 800-38A, Appendix F: the four-block plaintext of every example.
    const NIST_PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                              30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
    const NIST_IV: &str = "000102030405060708090a0b0c0d0e0f";

    fn kat(alg: Algorithm, mode: Mode, key: &str, iv: Option<&str>, plain: &str, cipher: &str) {
        let (key, iv, plain, cipher) = (h(key), iv.map(h), h(plain), h(cipher));
        let e = apply(
            Direction::Encrypt,
            alg,
            mode,
            Padding::None,
            &key,
            iv.as_deref(),
            &plain,
        )
        .unwrap();
        assert_eq!(hex::encode(&*e), hex::encode(&cipher));
        let d = apply(
            Direction::Decrypt,
            alg,
            mode,
            Padding::None,
            &key,
            iv.as_deref(),
            &cipher,
        )
        .unwrap();
        assert_eq!(*d, plain);
    }

    #[test]
    fn nist_sp800_38a_aes_vectors() {
        // F.1.1 ECB-AES128.
        kat(
            Algorithm::Aes,
            Mode::Ecb,
            "2b7e151628aed2a6abf7158809cf4f3c",
            None,
            NIST_PLAIN,
            "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf\
             43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4",
        );
        // F.1.3 ECB-AES192.
        kat(
            Algorithm::Aes,
            Mode::Ecb,
            "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            None,
            NIST_PLAIN,
            "bd334f1d6e45f25ff712a214571fa5cc974104846d0ad3ad7734ecb3ecee4eef\
             ef7afd2270e2e60adce0ba2face6444e9a4b41ba738d6c72fb16691603c18e0e",
        );
        // F.2.1 CBC-AES128.
        kat(
            Algorithm::Aes,
            Mode::Cbc,
            "2b7e151628aed2a6abf7158809cf4f3c",
            Some(NIST_IV),
            NIST_PLAIN,
            "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
             73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
        );
        // F.2.5 CBC-AES256.
        kat(
            Algorithm::Aes,
            Mode::Cbc,
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            Some(NIST_IV),
            NIST_PLAIN,
            "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
             39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
        );
    }

    #[test]
    fn triple_des_vectors() {
        // CS-BC-M-4-12-3DES-13 (three-key, ECB); openssl agrees.
        kat(
            Algorithm::TripleDes,
            Mode::Ecb,
            "010101010101010101010101010101010101010101010101",
            None,
            "010203040506070809101112131415161718192021222324",
            "cead373db80eabf87477d921e6d5a5d116c10e3814ebe004",
        );
        // Three-key CBC with PKCS5 padding (openssl enc -des-ede3-cbc).
        let key = h("0123456789abcdeffedcba987654321089abcdef01234567");
        let iv = h("0001020304050607");
        let plain = b"kmipd 3des cbc!";
        let e = apply(
            Direction::Encrypt,
            Algorithm::TripleDes,
            Mode::Cbc,
            Padding::Pkcs5,
            &key,
            Some(&iv),
            plain,
        )
        .unwrap();
        assert_eq!(hex::encode(&*e), "552af85800393004af477943daec7ab8");
        // Two-key 3DES is three-key with K3 = K1.
        let k2 = h("0123456789abcdeffedcba9876543210");
        let k3 = [&k2[..], &k2[..8]].concat();
        let a = |k: &[u8]| {
            apply(
                Direction::Encrypt,
                Algorithm::TripleDes,
                Mode::Ecb,
                Padding::None,
                k,
                None,
                &[7u8; 16],
            )
            .unwrap()
        };
        assert_eq!(*a(&k2), *a(&k3));
    }

    #[test]
    fn pkcs5_padding_edges() {
        let key = h("0123456789abcdef0123456789abcdef");
        let enc = |data: &[u8]| {
            apply(
                Direction::Encrypt,
                Algorithm::Aes,
                Mode::Ecb,
                Padding::Pkcs5,
                &key,
                None,
                data,
            )
            .unwrap()
        };
        let dec = |data: &[u8]| {
            apply(
                Direction::Decrypt,
                Algorithm::Aes,
                Mode::Ecb,
                Padding::Pkcs5,
                &key,
                None,
                data,
            )
        };
        // Empty data is one block of padding (openssl enc -aes-128-ecb).
        let e = enc(&[]);
        assert_eq!(
            hex::encode(&*e),
            hex::encode(
                apply(
                    Direction::Encrypt,
                    Algorithm::Aes,
                    Mode::Ecb,
                    Padding::None,
                    &key,
                    None,
                    &[16u8; 16]
                )
                .unwrap()
                .as_slice()
            )
        );
        assert_eq!(dec(&e).unwrap().len(), 0);
        // 15, 16 and 17 bytes: one, two and two blocks.
        for (n, blocks) in [(15, 1), (16, 2), (17, 2)] {
            let data = vec![0xa5u8; n];
            let e = enc(&data);
            assert_eq!(e.len(), 16 * blocks, "{n} bytes");
            assert_eq!(*dec(&e).unwrap(), data);
        }
        // CS-BC-M-8-12: a full block gains a full block of padding.
        assert_eq!(
            hex::encode(&*enc(&h("01020304050607080910111213141516"))),
            "d9bcce11b0b437b90239552df3a360c90efb6bfed93b4d1ea2123ba4db075ff6"
        );
        // Bad padding: the last block decrypts to a zero pad byte, or to
        // inconsistent pad bytes.
        let zero_pad = apply(
            Direction::Encrypt,
            Algorithm::Aes,
            Mode::Ecb,
            Padding::None,
            &key,
            None,
            &[0u8; 16],
        )
        .unwrap();
        assert!(matches!(dec(&zero_pad), Err(OpError::Cryptographic(_))));
        let mut block = [3u8; 16];
        block[14] = 2;
        let mixed = apply(
            Direction::Encrypt,
            Algorithm::Aes,
            Mode::Ecb,
            Padding::None,
            &key,
            None,
            &block,
        )
        .unwrap();
        assert!(matches!(dec(&mixed), Err(OpError::Cryptographic(_))));
        // Not whole blocks, or nothing at all, to unpad.
        assert!(matches!(dec(&[0u8; 17]), Err(OpError::InvalidField(_))));
        assert!(matches!(dec(&[]), Err(OpError::Cryptographic(_))));
    }

    #[test]
    fn bad_lengths_are_refused() {
        let key = [0u8; 16];
        let go = |alg, mode, padding, key: &[u8], iv: Option<&[u8]>, data: &[u8]| {
            apply(Direction::Encrypt, alg, mode, padding, key, iv, data)
        };
        assert!(matches!(
            go(
                Algorithm::Aes,
                Mode::Ecb,
                Padding::None,
                &key,
                None,
                &[0; 15]
            ),
            Err(OpError::InvalidField(_))
        ));
        assert!(matches!(
            go(
                Algorithm::Aes,
                Mode::Ecb,
                Padding::None,
                &[0; 20],
                None,
                &[0; 16]
            ),
            Err(OpError::IllegalOperation(_))
        ));
        assert!(matches!(
            go(
                Algorithm::TripleDes,
                Mode::Ecb,
                Padding::None,
                &[0; 8],
                None,
                &[0; 16]
            ),
            Err(OpError::IllegalOperation(_))
        ));
        assert!(matches!(
            go(
                Algorithm::Aes,
                Mode::Cbc,
                Padding::None,
                &key,
                Some(&[0; 8]),
                &[0; 16]
            ),
            Err(OpError::InvalidField(_))
        ));
        assert!(matches!(
            go(
                Algorithm::Aes,
                Mode::Cbc,
                Padding::None,
                &key,
                None,
                &[0; 16]
            ),
            Err(OpError::InvalidMessage(_))
        ));
    }

    /// The OASIS files' key: AES-128 0123456789abcdef0123456789abcdef.
    const KEY: &str = "0123456789abcdef0123456789abcdef";

    async fn reg(t: &TestServer, extra: Vec<Attribute>, mask: u32, active: bool) -> String {
        reg_key(t, extra, mask, active, CryptographicAlgorithm::AES, &h(KEY)).await
    }

    async fn reg_key(
        t: &TestServer,
        extra: Vec<Attribute>,
        mask: u32,
        active: bool,
        alg: CryptographicAlgorithm,
        key: &[u8],
    ) -> String {
        let ctx = t.ctx(ProtocolVersion::V1_2);
        let p = TestServer::register_request(alg, key, mask, active.then_some(ctx.now), extra);
        register(&ctx, &p).await.unwrap().unique_identifier
    }

    fn params(mode: BlockCipherMode, padding: Option<PaddingMethod>) -> CryptographicParameters {
        CryptographicParameters {
            block_cipher_mode: Some(mode),
            padding_method: padding,
            ..Default::default()
        }
    }

    fn enc_req(id: &str, p: Option<CryptographicParameters>, data: &[u8]) -> EncryptRequest {
        EncryptRequest {
            unique_identifier: Some(id.into()),
            cryptographic_parameters: p,
            data: Some(Bytes(data.to_vec())),
            ..Default::default()
        }
    }

    fn dec_req(id: &str, p: Option<CryptographicParameters>, data: &[u8]) -> DecryptRequest {
        DecryptRequest {
            unique_identifier: Some(id.into()),
            cryptographic_parameters: p,
            data: Some(Bytes(data.to_vec())),
            ..Default::default()
        }
    }

    const ED: u32 = M::ENCRYPT.0 | M::DECRYPT.0;

    #[tokio::test]
    async fn known_key_round_trip_matches_the_oasis_files() {
        let t = TestServer::new();
        let ctx = t.ctx(ProtocolVersion::V1_2);
        let id = reg(&t, Vec::new(), ED, true).await;
        let plain = h("01020304050607080910111213141516");
        let ecb = || Some(params(BlockCipherMode::ECB, None));
        let r = encrypt(&ctx, &enc_req(&id, ecb(), &plain)).await.unwrap();
        assert_eq!(r.unique_identifier, id);
        assert_eq!(
            hex::encode(&r.data.as_ref().unwrap().0),
            "d9bcce11b0b437b90239552df3a360c9"
        );
        assert_eq!(r.iv_counter_nonce, None);
        let d = decrypt(&ctx, &dec_req(&id, ecb(), &r.data.unwrap().0))
            .await
            .unwrap();
        assert_eq!(d.data.unwrap().0, plain);

        // CS-BC-M-11: CBC, PKCS5, the client's IV; a wrong IV garbles the
        // first block only.
        let plain = h("010203040506070809101112131415160102030405060708091011121314151601");
        let cbc = || Some(params(BlockCipherMode::CBC, Some(PaddingMethod::PKCS5)));
        let mut e = enc_req(&id, cbc(), &plain);
        e.iv_counter_nonce = Some(Bytes(h("ff020304050607080910111213141516")));
        let r = encrypt(&ctx, &e).await.unwrap();
        assert_eq!(
            hex::encode(&r.data.as_ref().unwrap().0),
            "e768203ba72b6e157daaad34b1e791d8e88457dc147942f01bfaff7b28a3cdde\
             2203d4d5a4c7928ba9e9cc78b66a6546"
        );
        let mut d = dec_req(&id, cbc(), &r.data.unwrap().0);
        d.iv_counter_nonce = Some(Bytes(vec![0; 16]));
        let d = decrypt(&ctx, &d).await.unwrap();
        assert_eq!(
            hex::encode(d.data.unwrap().0),
            "fe0000000000000000000000000000000102030405060708091011121314151601"
        );
    }

    #[tokio::test]
    async fn key_parameters_and_random_iv() {
        let t = TestServer::new();
        let ctx = t.ctx(ProtocolVersion::V1_2);
        let mut kp = params(BlockCipherMode::CBC, Some(PaddingMethod::PKCS5));
        kp.random_iv = Some(true);
        let attr = Attribute::new(
            names::CRYPTOGRAPHIC_PARAMETERS,
            kp.encode(Tag::CRYPTOGRAPHIC_PARAMETERS, ctx.ctx()).value,
        );
        let id = reg(&t, vec![attr], ED, true).await;
        let plain = b"seventeen bytes!!".to_vec();
        let a = encrypt(&ctx, &enc_req(&id, None, &plain)).await.unwrap();
        let b = encrypt(&ctx, &enc_req(&id, None, &plain)).await.unwrap();
        let iv = a.iv_counter_nonce.clone().expect("the IV kmipd drew");
        assert_eq!(iv.0.len(), 16);
        assert_ne!(Some(iv.clone()), b.iv_counter_nonce, "a fresh IV each time");
        assert_ne!(a.data, b.data);
        assert_eq!(a.data.as_ref().unwrap().0.len(), 32);
        // Decrypt needs the IV (CS-BC-M-13: Invalid Message).
        let e = decrypt(&ctx, &dec_req(&id, None, &a.data.as_ref().unwrap().0))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::InvalidMessage(_)), "{e:?}");
        let mut d = dec_req(&id, None, &a.data.unwrap().0);
        d.iv_counter_nonce = Some(iv.clone());
        assert_eq!(decrypt(&ctx, &d).await.unwrap().data.unwrap().0, plain);
        // A client IV with Random IV true is contradictory.
        let mut e = enc_req(&id, None, &plain);
        e.iv_counter_nonce = Some(iv);
        assert!(matches!(
            encrypt(&ctx, &e).await.unwrap_err(),
            OpError::InvalidField(_)
        ));
        // A key without Cryptographic Parameters and a request without them.
        let bare = reg(&t, Vec::new(), ED, true).await;
        assert!(matches!(
            encrypt(&ctx, &enc_req(&bare, None, &[0; 16]))
                .await
                .unwrap_err(),
            OpError::MissingData(_)
        ));
    }

    #[tokio::test]
    async fn state_mask_and_dates_are_enforced() {
        let t = TestServer::new();
        let ctx = t.ctx(ProtocolVersion::V1_2);
        let ecb = || Some(params(BlockCipherMode::ECB, None));
        let block = [1u8; 16];

        // Pre-Active: neither (Permission Denied in 1.x, Wrong Key
        // Lifecycle State in 2.x).
        let pre = reg(&t, Vec::new(), ED, false).await;
        let e = encrypt(&ctx, &enc_req(&pre, ecb(), &block))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::WrongState(_)), "{e:?}");
        assert_eq!(
            e.reason(ProtocolVersion::V1_2),
            ResultReason::PERMISSION_DENIED
        );
        assert_eq!(
            e.reason(ProtocolVersion::V2_0),
            ResultReason::WRONG_KEY_LIFECYCLE_STATE
        );
        let e = decrypt(&ctx, &dec_req(&pre, ecb(), &block))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::WrongState(_)), "{e:?}");

        // Usage mask: Encrypt only.
        let enc_only = reg(&t, Vec::new(), M::ENCRYPT.0, true).await;
        encrypt(&ctx, &enc_req(&enc_only, ecb(), &block))
            .await
            .unwrap();
        let e = decrypt(&ctx, &dec_req(&enc_only, ecb(), &block))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::IncompatibleUsageMask(_)), "{e:?}");
        assert_eq!(
            e.reason(ProtocolVersion::V1_3),
            ResultReason::PERMISSION_DENIED
        );
        assert_eq!(
            e.reason(ProtocolVersion::V2_1),
            ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
        );
        let dec_only = reg(&t, Vec::new(), M::DECRYPT.0, true).await;
        let e = encrypt(&ctx, &enc_req(&dec_only, ecb(), &block))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::IncompatibleUsageMask(_)), "{e:?}");

        // CS-BC-M-14: Protect Stop passed (no Encrypt), Process Start ahead
        // (no Decrypt); each alone leaves the other operation allowed.
        let stop = reg(
            &t,
            vec![Attribute::new(
                names::PROTECT_STOP_DATE,
                Value::DateTime(ctx.now - 10),
            )],
            ED,
            true,
        )
        .await;
        let e = encrypt(&ctx, &enc_req(&stop, ecb(), &block))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::PermissionDenied(_)), "{e:?}");
        decrypt(&ctx, &dec_req(&stop, ecb(), &block)).await.unwrap();
        let start = reg(
            &t,
            vec![Attribute::new(
                names::PROCESS_START_DATE,
                Value::DateTime(ctx.now + 10),
            )],
            ED,
            true,
        )
        .await;
        let e = decrypt(&ctx, &dec_req(&start, ecb(), &block))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::PermissionDenied(_)), "{e:?}");
        encrypt(&ctx, &enc_req(&start, ecb(), &block))
            .await
            .unwrap();

        // Deactivated: Decrypt still processes, Encrypt no longer protects.
        let old = reg(
            &t,
            vec![Attribute::new(
                names::DEACTIVATION_DATE,
                Value::DateTime(ctx.now - 1),
            )],
            ED,
            true,
        )
        .await;
        let e = encrypt(&ctx, &enc_req(&old, ecb(), &block))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::WrongState(_)), "{e:?}");
        decrypt(&ctx, &dec_req(&old, ecb(), &block)).await.unwrap();

        // Destroyed, and unknown.
        let gone = reg(&t, Vec::new(), ED, false).await;
        crate::ops::lifecycle::destroy(
            &ctx,
            &kmip::messages::payloads::IdRequest {
                unique_identifier: Some(gone.clone()),
            },
        )
        .await
        .unwrap();
        let e = encrypt(&ctx, &enc_req(&gone, ecb(), &block))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::Destroyed(_)), "{e:?}");
        let e = encrypt(&ctx, &enc_req("nope", ecb(), &block))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::NotFound(_)), "{e:?}");
    }

    #[tokio::test]
    async fn usage_limits_are_consumed_durably() {
        let t = TestServer::new();
        let ctx = t.ctx(ProtocolVersion::V1_2);
        let ecb = || Some(params(BlockCipherMode::ECB, Some(PaddingMethod::PKCS5)));
        let limits = |total: i64, unit: UsageLimitsUnit| {
            Attribute::new(
                names::USAGE_LIMITS,
                Value::Structure(vec![
                    Ttlv::long(Tag::USAGE_LIMITS_TOTAL, total),
                    Ttlv::enumeration(Tag::USAGE_LIMITS_UNIT, unit.0),
                ]),
            )
        };
        let left = |id: &str| {
            let o = t.server.catalog.get(id).unwrap().unwrap();
            usage_limits::parts(&o.first(names::USAGE_LIMITS).unwrap().value)
                .unwrap()
                .1
        };
        // Bytes: 40 allow 20 + 20 bytes of plaintext, then nothing.
        let id = reg(&t, vec![limits(40, UsageLimitsUnit::BYTE)], ED, true).await;
        let r = encrypt(&ctx, &enc_req(&id, ecb(), &[9; 20])).await.unwrap();
        assert_eq!(left(&id), Some(20));
        // Decrypt does not count.
        decrypt(&ctx, &dec_req(&id, ecb(), &r.data.unwrap().0))
            .await
            .unwrap();
        assert_eq!(left(&id), Some(20));
        let e = encrypt(&ctx, &enc_req(&id, ecb(), &[9; 21]))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::PermissionDenied(_)), "{e:?}");
        assert_eq!(left(&id), Some(20), "a refused request consumes nothing");
        encrypt(&ctx, &enc_req(&id, ecb(), &[9; 20])).await.unwrap();
        assert_eq!(left(&id), Some(0));
        let e = encrypt(&ctx, &enc_req(&id, ecb(), &[9; 1]))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::PermissionDenied(_)), "{e:?}");

        // Objects: one request each, whatever its size.
        let id = reg(&t, vec![limits(2, UsageLimitsUnit::OBJECT)], ED, true).await;
        encrypt(&ctx, &enc_req(&id, ecb(), &[9; 100]))
            .await
            .unwrap();
        encrypt(&ctx, &enc_req(&id, ecb(), &[9; 1])).await.unwrap();
        assert_eq!(left(&id), Some(0));
        let e = encrypt(&ctx, &enc_req(&id, ecb(), &[9; 1]))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::PermissionDenied(_)), "{e:?}");
    }

    #[tokio::test]
    async fn unsupported_requests_are_refused() {
        let t = TestServer::new();
        let ctx = t.ctx(ProtocolVersion::V1_3);
        let id = reg(&t, Vec::new(), ED, true).await;
        let block = [1u8; 16];
        let ecb = || Some(params(BlockCipherMode::ECB, None));
        let fails = |r: OpResult<EncryptResponse>| r.unwrap_err();

        // Modes, paddings, algorithms kmipd does not implement.
        let e = fails(
            encrypt(
                &ctx,
                &enc_req(&id, Some(params(BlockCipherMode::GCM, None)), &block),
            )
            .await,
        );
        assert!(matches!(e, OpError::FeatureNotSupported(_)), "{e:?}");
        let e = fails(
            encrypt(
                &ctx,
                &enc_req(
                    &id,
                    Some(params(BlockCipherMode::ECB, Some(PaddingMethod::OAEP))),
                    &block,
                ),
            )
            .await,
        );
        assert!(matches!(e, OpError::FeatureNotSupported(_)), "{e:?}");
        let mut p = params(BlockCipherMode::ECB, None);
        p.cryptographic_algorithm = Some(CryptographicAlgorithm::V_3DES);
        let e = fails(encrypt(&ctx, &enc_req(&id, Some(p), &block)).await);
        assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
        let hmac = reg_key(
            &t,
            Vec::new(),
            ED,
            true,
            CryptographicAlgorithm::HMAC_SHA256,
            &[5; 32],
        )
        .await;
        let e = fails(encrypt(&ctx, &enc_req(&hmac, ecb(), &block)).await);
        assert!(matches!(e, OpError::FeatureNotSupported(_)), "{e:?}");

        // Streaming and authenticated encryption.
        let mut s = enc_req(&id, ecb(), &block);
        s.init_indicator = Some(true);
        let e = fails(encrypt(&ctx, &s).await);
        assert!(matches!(e, OpError::FeatureNotSupported(_)), "{e:?}");
        let mut s = enc_req(&id, ecb(), &block);
        s.correlation_value = Some(Bytes(vec![1]));
        s.final_indicator = Some(true);
        let e = fails(encrypt(&ctx, &s).await);
        assert!(matches!(e, OpError::FeatureNotSupported(_)), "{e:?}");
        let mut s = enc_req(&id, ecb(), &block);
        s.init_indicator = Some(true);
        s.final_indicator = Some(true);
        encrypt(&ctx, &s).await.expect("one complete call");
        let mut a = dec_req(&id, ecb(), &block);
        a.authenticated_encryption_tag = Some(Bytes(vec![0; 16]));
        let e = decrypt(&ctx, &a).await.unwrap_err();
        assert!(matches!(e, OpError::FeatureNotSupported(_)), "{e:?}");

        // Data: missing, too large, not whole blocks without padding.
        let mut m = enc_req(&id, ecb(), &block);
        m.data = None;
        assert!(matches!(
            fails(encrypt(&ctx, &m).await),
            OpError::MissingData(_)
        ));
        let big = vec![0u8; MAX_DATA + 16];
        assert!(matches!(
            fails(encrypt(&ctx, &enc_req(&id, ecb(), &big)).await),
            OpError::InvalidField(_)
        ));
        assert!(matches!(
            fails(encrypt(&ctx, &enc_req(&id, ecb(), &[0; 15])).await),
            OpError::InvalidField(_)
        ));
        // A bad IV length, and bad padding on Decrypt.
        let mut c = enc_req(&id, Some(params(BlockCipherMode::CBC, None)), &block);
        c.iv_counter_nonce = Some(Bytes(vec![0; 12]));
        assert!(matches!(
            fails(encrypt(&ctx, &c).await),
            OpError::InvalidField(_)
        ));
        let e = decrypt(
            &ctx,
            &dec_req(
                &id,
                Some(params(BlockCipherMode::ECB, Some(PaddingMethod::PKCS5))),
                &[0; 16],
            ),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OpError::Cryptographic(_)), "{e:?}");
        assert_eq!(
            e.reason(ProtocolVersion::V1_3),
            ResultReason::CRYPTOGRAPHIC_FAILURE
        );
    }

    #[tokio::test]
    async fn triple_des_key_through_the_operation() {
        let t = TestServer::new();
        let ctx = t.ctx(ProtocolVersion::V1_3);
        let id = reg_key(
            &t,
            Vec::new(),
            ED,
            true,
            CryptographicAlgorithm::V_3DES,
            &[1; 24],
        )
        .await;
        let r = encrypt(
            &ctx,
            &enc_req(
                &id,
                Some(params(BlockCipherMode::ECB, None)),
                &h("010203040506070809101112131415161718192021222324"),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            hex::encode(r.data.unwrap().0),
            "cead373db80eabf87477d921e6d5a5d116c10e3814ebe004"
        );
        // CBC with Random IV: an 8-byte IV.
        let mut p = params(BlockCipherMode::CBC, Some(PaddingMethod::PKCS5));
        p.random_iv = Some(true);
        let r = encrypt(&ctx, &enc_req(&id, Some(p), b"abc")).await.unwrap();
        assert_eq!(r.iv_counter_nonce.unwrap().0.len(), 8);
        assert_eq!(r.data.unwrap().0.len(), 8);
    }

    /// Server-side cryptography is for administrators: vCenter and ESXi
    /// fetch keys and never ask kmipd to encrypt, so their roles (and the
    /// auditor's) may not.
    #[test]
    fn only_admins_may_encrypt_or_decrypt() {
        use crate::config::Role;
        use kmip::tables::Operation;
        let t = TestServer::new();
        for op in [Operation::ENCRYPT, Operation::DECRYPT] {
            assert!(t.server.policy.may_run(&t.caller, op).is_ok());
            for role in [Role::Vcenter, Role::Host, Role::Auditor] {
                let mut c = t.caller.clone();
                c.role = role;
                let e = t.server.policy.may_run(&c, op).unwrap_err();
                assert!(matches!(e, OpError::PermissionDenied(_)), "{role:?}: {e:?}");
            }
        }
    }
}
