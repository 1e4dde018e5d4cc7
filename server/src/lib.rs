//! kmipd: a KMIP server for VMware vCenter and ESXi over mutual TLS, with
//! keys wrapped by a master key in an HSM (or a software key file).
//!
//! The request path: [`listener`] accepts and handshakes, reads frames and
//! hands each message to [`ops::batch::handle`], which decodes it with the
//! `kmip` codec, authorises each batch item ([`access`]), runs the operation
//! against the [`catalog`] (storage trait, group commit) and the key
//! protector, and encodes the response in the request's version.
#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod conformance;
pub mod dev;
pub mod errors;
pub mod groups;
pub mod http;
pub mod jobs;
pub mod keycache;
pub mod listener;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod sharing;
pub mod state;
pub mod store;
pub mod tls;
