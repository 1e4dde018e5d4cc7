//! Shared test support: the generic suite and the SoftHSM2 test token.

pub mod softhsm;
pub mod suite;
