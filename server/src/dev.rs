//! `kmipd --dev`: a data directory with generated certificates, a software
//! master key and the sled store, served on 127.0.0.1:5696.

use crate::config::Config;
use anyhow::Context;
use std::path::Path;

/// Prepares `data_dir` (certificates made on first start, reused later) and
/// returns the embedded dev configuration.
pub fn prepare(data_dir: &Path, ecdsa: bool) -> anyhow::Result<(Config, kmipd_certs::DevPkiPaths)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = &data_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", data_dir.display()))?;
    let mut opts = kmipd_certs::DevPkiOptions::default();
    if ecdsa {
        opts.key_type = kmipd_certs::KeyType::EcdsaP256;
        opts.ca_key_type = kmipd_certs::KeyType::EcdsaP256;
    }
    let paths = kmipd_certs::ensure_dev_pki(&data_dir.join("certs"), &opts).with_context(|| {
        format!(
            "preparing certificates in {}",
            data_dir.join("certs").display()
        )
    })?;
    Ok((Config::dev(data_dir), paths))
}
