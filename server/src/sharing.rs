//! Secret sharing for Split Keys (KMIP 1.2+, Split Key Method): XOR and
//! polynomial (Shamir) sharing over GF(2^8). Pure functions on bytes; the
//! operations that store the parts as managed objects are in
//! [`crate::ops::split`].
//!
//! **XOR**: N parts, all needed. Parts 1..N-1 are random, part N is the
//! secret XOR all of them.
//!
//! **Polynomial Sharing GF(2^8)**: the secret is shared byte by byte. For
//! each byte `s`, a polynomial `f` of degree `threshold - 1` with `f(0) = s`
//! and uniformly random other coefficients; the part with Key Part
//! Identifier `i` (1..=N) holds `f(i)` for every byte, so a part is as long
//! as the secret. Any `threshold` parts determine `f` and so `f(0)`
//! (Lagrange interpolation at 0); fewer reveal nothing about it.
//!
//! The field is GF(2)[x]/(x^8 + x^4 + x^3 + x^2 + 1), reduction constant
//! 0x11D, the polynomial KMIP names for this method; elements are bytes, bit
//! i the coefficient of x^i, addition is XOR, and Key Part Identifier `i`
//! is the field element with the bits of `i`. This is *not* the AES field
//! (0x11B): the OASIS vectors of TC-SJ-2-12 and TC-SJ-3-12 (key
//! 0102…0F10, parts 1..4) only interpolate correctly under 0x11D, and the
//! tests below check them.
//!
//! Arithmetic on secret bytes is branch-free and table-free (no log/exp
//! lookups indexed by secret data); the Key Part Identifiers are public.
//! Every buffer holding the secret, a part or a coefficient is
//! [`Zeroizing`].

use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// The most parts a split may have: the non-zero elements of GF(2^8).
pub const MAX_PARTS: usize = 255;

/// Why a split or join cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharingError {
    /// Parts or threshold out of range.
    #[error("{0}")]
    Parameters(String),
    /// The parts do not fit together (lengths, identifiers).
    #[error("{0}")]
    Parts(String),
}

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x^2 + 1, without
/// branches or table lookups on the operands.
pub fn gf_mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut r) = (a, b, 0u8);
    for _ in 0..8 {
        // r ^= a when the low bit of b is set.
        r ^= a & 0u8.wrapping_sub(b & 1);
        // a *= x, reducing x^8 to x^4 + x^3 + x^2 + 1 when it overflows.
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1D & carry);
        b >>= 1;
    }
    r
}

/// The multiplicative inverse (a^254; 0 maps to 0).
pub fn gf_inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: square and multiply; the exponent is public.
    let mut r = 1u8;
    for bit in (0..8).rev() {
        r = gf_mul(r, r);
        if (254u8 >> bit) & 1 == 1 {
            r = gf_mul(r, a);
        }
    }
    r
}

/// `f(x)` for the polynomial with coefficients `coeffs` (constant first),
/// by Horner's rule.
fn eval(coeffs: &[u8], x: u8) -> u8 {
    coeffs.iter().rev().fold(0u8, |acc, &c| gf_mul(acc, x) ^ c)
}

fn check_counts(len: usize, parts: usize, threshold: usize) -> Result<(), SharingError> {
    if len == 0 {
        return Err(SharingError::Parameters(
            "an empty key cannot be split".into(),
        ));
    }
    if !(1..=MAX_PARTS).contains(&parts) {
        return Err(SharingError::Parameters(format!(
            "Split Key Parts is {parts}; it must be 1 to {MAX_PARTS}"
        )));
    }
    if !(1..=parts).contains(&threshold) {
        return Err(SharingError::Parameters(format!(
            "Split Key Threshold is {threshold}; it must be 1 to Split Key Parts ({parts})"
        )));
    }
    Ok(())
}

/// XOR split into `parts` parts, all of which are needed to join.
pub fn split_xor<R: RngCore + CryptoRng>(
    secret: &[u8],
    parts: usize,
    rng: &mut R,
) -> Result<Vec<Zeroizing<Vec<u8>>>, SharingError> {
    check_counts(secret.len(), parts, parts)?;
    let mut last = Zeroizing::new(secret.to_vec());
    let mut out = Vec::with_capacity(parts);
    for _ in 1..parts {
        let mut p = Zeroizing::new(vec![0u8; secret.len()]);
        rng.fill_bytes(&mut p);
        last.iter_mut().zip(p.iter()).for_each(|(l, r)| *l ^= r);
        out.push(p);
    }
    out.push(last);
    Ok(out)
}

/// XOR join: the XOR of every part (all of equal length).
pub fn join_xor(parts: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, SharingError> {
    let len = same_length(parts.iter().copied())?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    for p in parts {
        out.iter_mut().zip(p.iter()).for_each(|(o, b)| *o ^= b);
    }
    Ok(out)
}

/// Polynomial sharing over GF(2^8): `parts` parts, any `threshold` of which
/// rebuild the secret. Part `i` of the result (0-based) has Key Part
/// Identifier `i + 1`.
pub fn split_gf256<R: RngCore + CryptoRng>(
    secret: &[u8],
    parts: usize,
    threshold: usize,
    rng: &mut R,
) -> Result<Vec<Zeroizing<Vec<u8>>>, SharingError> {
    check_counts(secret.len(), parts, threshold)?;
    let degree = threshold - 1;
    // The random coefficients of every byte's polynomial, byte-major.
    let mut random = Zeroizing::new(vec![0u8; secret.len() * degree]);
    rng.fill_bytes(&mut random);
    let mut coeffs = Zeroizing::new(vec![0u8; threshold]);
    let mut out: Vec<Zeroizing<Vec<u8>>> = (0..parts)
        .map(|_| Zeroizing::new(vec![0u8; secret.len()]))
        .collect();
    for (b, &s) in secret.iter().enumerate() {
        coeffs[0] = s;
        coeffs[1..].copy_from_slice(&random[b * degree..(b + 1) * degree]);
        for (i, part) in out.iter_mut().enumerate() {
            // i < MAX_PARTS = 255, so the identifier fits a byte and is not 0.
            part[b] = eval(&coeffs, (i + 1) as u8);
        }
    }
    Ok(out)
}

/// Polynomial join over GF(2^8): `f(0)` from the points `(identifier,
/// part)`. The caller checks there are at least the threshold; given fewer,
/// the result is a wrong key, not an error. Identifiers must be non-zero
/// and distinct, the parts of one length.
pub fn join_gf256(shares: &[(u8, &[u8])]) -> Result<Zeroizing<Vec<u8>>, SharingError> {
    let len = same_length(shares.iter().map(|(_, p)| *p))?;
    for (k, (x, _)) in shares.iter().enumerate() {
        if *x == 0 {
            return Err(SharingError::Parts(
                "Key Part Identifier 0 is not a part".into(),
            ));
        }
        if shares[..k].iter().any(|(y, _)| y == x) {
            return Err(SharingError::Parts(format!(
                "Key Part Identifier {x} is given twice"
            )));
        }
    }
    // Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i); in
    // characteristic 2 subtraction is XOR. Identifiers are public.
    let basis: Vec<u8> = shares
        .iter()
        .enumerate()
        .map(|(i, (xi, _))| {
            shares
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .fold(1u8, |acc, (_, (xj, _))| {
                    gf_mul(acc, gf_mul(*xj, gf_inv(xj ^ xi)))
                })
        })
        .collect();
    let mut out = Zeroizing::new(vec![0u8; len]);
    for ((_, part), l) in shares.iter().zip(basis) {
        out.iter_mut()
            .zip(part.iter())
            .for_each(|(o, y)| *o ^= gf_mul(l, *y));
    }
    Ok(out)
}

fn same_length<'a>(mut parts: impl Iterator<Item = &'a [u8]>) -> Result<usize, SharingError> {
    let len = parts
        .next()
        .ok_or_else(|| SharingError::Parts("no parts to join".into()))?
        .len();
    if len == 0 {
        return Err(SharingError::Parts("a part has no key material".into()));
    }
    if parts.any(|p| p.len() != len) {
        return Err(SharingError::Parts(
            "the parts differ in length: they are not of one split".into(),
        ));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert_eq, proptest};
    use rand::rngs::OsRng;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// TC-SJ-2-12 / TC-SJ-3-12: the key and its four parts (2 of 4).
    fn oasis_vectors() -> (Vec<u8>, Vec<(u8, Vec<u8>)>) {
        (
            h("0102030405060708090A0B0C0D0E0F10"),
            vec![
                (1, h("66C46A7754F94DE420C7B1A7FFF5EC56")),
                (2, h("CF93D1E2A7E593CD5B8D6247F4E5D49C")),
                (3, h("A855B891F61AD9217240D8EC061E37DA")),
                (4, h("803DBAD55CDD329FAD19D99AE2C5A415")),
            ],
        )
    }

    #[test]
    fn field_is_gf256_under_0x11d() {
        // x^8 reduces to x^4 + x^3 + x^2 + 1.
        assert_eq!(gf_mul(0x80, 0x02), 0x1D);
        // 2 generates the multiplicative group (0x11D is primitive): its
        // powers run through all 255 non-zero elements before returning to 1.
        let mut seen = [false; 256];
        let mut p = 1u8;
        for _ in 0..255 {
            assert!(!seen[p as usize], "power repeats early");
            seen[p as usize] = true;
            p = gf_mul(p, 2);
        }
        assert_eq!(p, 1);
        for a in 0..=255u8 {
            assert_eq!(gf_mul(a, 1), a);
            assert_eq!(gf_mul(a, 0), 0);
            if a != 0 {
                assert_eq!(gf_mul(a, gf_inv(a)), 1, "inverse of {a:#x}");
            }
            for b in 0..=255u8 {
                assert_eq!(gf_mul(a, b), gf_mul(b, a));
            }
        }
        assert_eq!(gf_inv(0), 0);
        // Distributivity on a sample.
        for (a, b, c) in [(0x57, 0x83, 0x1F), (0xFF, 0x80, 0x7F), (0x02, 0xCA, 0x35)] {
            assert_eq!(gf_mul(a, b ^ c), gf_mul(a, b) ^ gf_mul(a, c));
            assert_eq!(gf_mul(gf_mul(a, b), c), gf_mul(a, gf_mul(b, c)));
        }
    }

    #[test]
    fn oasis_parts_lie_on_one_line_through_the_key() {
        // A 2-of-4 split is a line f(x) = k + a*x: a = part1 - k, and every
        // other part must be f(i) under this field's arithmetic.
        let (key, parts) = oasis_vectors();
        for b in 0..key.len() {
            let slope = key[b] ^ parts[0].1[b];
            for (x, p) in &parts {
                assert_eq!(eval(&[key[b], slope], *x), p[b], "byte {b} of part {x}");
            }
        }
    }

    #[test]
    fn oasis_parts_join_to_the_key_in_every_pair() {
        let (key, parts) = oasis_vectors();
        for i in 0..parts.len() {
            for j in 0..parts.len() {
                if i == j {
                    continue;
                }
                let pair = [
                    (parts[i].0, parts[i].1.as_slice()),
                    (parts[j].0, parts[j].1.as_slice()),
                ];
                assert_eq!(*join_gf256(&pair).unwrap(), key, "parts {i},{j}");
            }
        }
        // All four together interpolate the same line.
        let all: Vec<_> = parts.iter().map(|(x, p)| (*x, p.as_slice())).collect();
        assert_eq!(*join_gf256(&all).unwrap(), key);
        // One part alone is not the key.
        assert_ne!(*join_gf256(&all[1..2]).unwrap(), key);
    }

    #[test]
    fn oasis_xor_parts_join_to_the_key() {
        // TC-SJ-4-12's four XOR parts of key 0102..0F10.
        let parts = [
            h("d4b92c299199298e30dee13b967e6dda"),
            h("35ea4f615686230c7b11538693674e89"),
            h("3478ddd2e1f89f2005011d26d9fff37c"),
            h("d429bd9e23e192aa47c4a497d1e8df3f"),
        ];
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        assert_eq!(
            *join_xor(&refs).unwrap(),
            h("0102030405060708090a0b0c0d0e0f10")
        );
        assert_ne!(
            *join_xor(&refs[..3]).unwrap(),
            h("0102030405060708090a0b0c0d0e0f10")
        );
    }

    /// Every subset of `0..n` as a bit mask.
    fn subsets(n: usize) -> impl Iterator<Item = Vec<usize>> {
        (1u32..(1 << n)).map(move |m| (0..n).filter(|i| m & (1 << i) != 0).collect())
    }

    #[test]
    fn every_threshold_subset_joins_and_smaller_ones_do_not() {
        for (n, k) in [(1, 1), (2, 2), (3, 2), (4, 2), (5, 3), (6, 4), (7, 7)] {
            let mut secret = vec![0u8; 32];
            OsRng.fill_bytes(&mut secret);
            let parts = split_gf256(&secret, n, k, &mut OsRng).unwrap();
            assert_eq!(parts.len(), n);
            assert!(parts.iter().all(|p| p.len() == secret.len()));
            for s in subsets(n) {
                let shares: Vec<(u8, &[u8])> = s
                    .iter()
                    .map(|&i| ((i + 1) as u8, parts[i].as_slice()))
                    .collect();
                let joined = join_gf256(&shares).unwrap();
                if s.len() >= k {
                    assert_eq!(*joined, secret, "{k} of {n}: subset {s:?}");
                } else {
                    // Wrong with probability 1 - 2^-256.
                    assert_ne!(*joined, secret, "{k} of {n}: subset {s:?} is too small");
                }
            }
        }
    }

    #[test]
    fn parts_are_not_the_secret_and_differ_between_splits() {
        let secret = [0x42u8; 32];
        let a = split_gf256(&secret, 3, 2, &mut OsRng).unwrap();
        let b = split_gf256(&secret, 3, 2, &mut OsRng).unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert_ne!(p.as_slice(), &secret[..]);
            assert_ne!(p, q, "fresh randomness per split");
        }
        let x = split_xor(&secret, 3, &mut OsRng).unwrap();
        assert!(x.iter().all(|p| p.as_slice() != &secret[..]));
    }

    #[test]
    fn xor_needs_every_part() {
        let secret = b"sixteen byte key".to_vec();
        for n in 1..=6 {
            let parts = split_xor(&secret, n, &mut OsRng).unwrap();
            let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
            assert_eq!(*join_xor(&refs).unwrap(), secret);
            if n > 1 {
                for skip in 0..n {
                    let fewer: Vec<&[u8]> = refs
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != skip)
                        .map(|(_, p)| *p)
                        .collect();
                    assert_ne!(*join_xor(&fewer).unwrap(), secret);
                }
            }
        }
    }

    #[test]
    fn bad_parameters_and_parts_are_refused() {
        let s = [1u8; 16];
        assert!(split_gf256(&s, 0, 0, &mut OsRng).is_err());
        assert!(split_gf256(&s, 3, 0, &mut OsRng).is_err());
        assert!(split_gf256(&s, 3, 4, &mut OsRng).is_err());
        assert!(split_gf256(&s, MAX_PARTS + 1, 2, &mut OsRng).is_err());
        assert!(split_gf256(&[], 3, 2, &mut OsRng).is_err());
        assert!(split_xor(&s, 0, &mut OsRng).is_err());
        let max = split_gf256(&s, MAX_PARTS, 2, &mut OsRng).unwrap();
        let last = [(255u8, max[254].as_slice()), (1, max[0].as_slice())];
        assert_eq!(*join_gf256(&last).unwrap(), s);
        let a = [1u8; 16];
        let short = [1u8; 15];
        assert!(join_gf256(&[]).is_err());
        assert!(join_gf256(&[(0, &a[..]), (1, &a[..])]).is_err());
        assert!(join_gf256(&[(2, &a[..]), (2, &a[..])]).is_err());
        assert!(join_gf256(&[(1, &a[..]), (2, &short[..])]).is_err());
        assert!(join_xor(&[&a[..], &short[..]]).is_err());
        assert!(join_xor(&[]).is_err());
    }

    proptest! {
        #[test]
        fn random_threshold_subsets_join(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            n in 1usize..12,
            k_seed in any::<usize>(),
            order in any::<u64>(),
        ) {
            let k = 1 + k_seed % n;
            let parts = split_gf256(&secret, n, k, &mut OsRng).unwrap();
            // A pseudo-random choice of k distinct parts, in a scrambled order.
            let mut idx: Vec<usize> = (0..n).collect();
            let mut o = order;
            for i in (1..n).rev() {
                idx.swap(i, (o % (i as u64 + 1)) as usize);
                o /= i as u64 + 1;
            }
            let shares: Vec<(u8, &[u8])> = idx[..k]
                .iter()
                .map(|&i| ((i + 1) as u8, parts[i].as_slice()))
                .collect();
            let joined = join_gf256(&shares).unwrap();
            prop_assert_eq!(joined.as_slice(), secret.as_slice());
        }
    }
}
