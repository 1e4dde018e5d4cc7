//! End-to-end test support for kmipd.
#![forbid(unsafe_code)]
