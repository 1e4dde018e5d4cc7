//! Files that hold secrets: owner-only permissions and atomic replacement.
//!
//! A master-key file or PIN file readable by group or others is refused
//! rather than fixed: a loose mode means the secret may already have leaked,
//! which an operator must hear about.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Largest secret file we read (a key file with thousands of versions fits).
const MAX_SECRET_FILE_LEN: u64 = 1024 * 1024;

/// Reads a secret file after checking, on the opened descriptor, that only
/// its owner can read or write it.
pub(crate) fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Config {
            reason: format!("{} is not a regular file", path.display()),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() > MAX_SECRET_FILE_LEN {
        return Err(Error::Config {
            reason: format!(
                "{} is larger than {MAX_SECRET_FILE_LEN} bytes",
                path.display()
            ),
        });
    }
    // Sized up front so that reading does not reallocate and leave copies of
    // the secret behind in freed memory.
    let mut buf = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(MAX_SECRET_FILE_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

/// How `write_secret_file` treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Fail if the file exists.
    No,
    /// Replace it atomically.
    Yes,
}

/// Writes `contents` to `path` with mode 0600 so that a crash leaves either
/// the old file or the new one: write a temporary file in the same directory,
/// fsync it, link or rename it into place, fsync the directory.
pub(crate) fn write_secret_file(path: &Path, contents: &[u8], replace: Replace) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::Config {
        reason: format!("{} has no file name", path.display()),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        file.write_all(contents).map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        match replace {
            // A hard link fails if the target exists, which makes creation
            // race-free against a concurrent creator.
            Replace::No => {
                fs::hard_link(&tmp, path).map_err(|e| Error::io(path, e))?;
                fs::remove_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
            }
            Replace::Yes => fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?,
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&dir, e))
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist at this point.
        let _ = fs::remove_file(&tmp);
    }
    result
}
