//! Validated names: roles and client names.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A kmipd role name (`admin`, `vcenter`, ...): 1 to 64 characters among `a-z A-Z 0-9 . _ -`.
///
/// What a role may do is the server's configuration; this crate only records which role a
/// certificate, pin or CA was given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Role(String);

impl Role {
    /// Validates a role name.
    pub fn new(role: &str) -> Result<Self, Error> {
        let ok = !role.is_empty()
            && role.len() <= 64
            && role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Role(role.to_owned()))
        } else {
            Err(Error::InvalidRole {
                role: role.to_owned(),
            })
        }
    }

    /// The role as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Role::new(s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client name given to `issue-client`: it becomes the certificate's CN and the stem of the
/// `.crt`/`.key` file names, so it is restricted to `a-z A-Z 0-9 . _ -`, 1 to 64 characters,
/// not starting with `.` and not one of the reserved stems `ca` and `server`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientName(String);

impl ClientName {
    /// Validates a client name.
    pub fn new(name: &str) -> Result<Self, Error> {
        let bad = |reason| {
            Err(Error::InvalidName {
                name: name.to_owned(),
                reason,
            })
        };
        if name.is_empty() || name.len() > 64 {
            return bad("must be 1 to 64 characters");
        }
        if name.starts_with('.') {
            return bad("must not start with '.'");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("use only a-z A-Z 0-9 . _ -");
        }
        if matches!(name, "ca" | "server") {
            return bad("'ca' and 'server' are the CA's and the server's own files");
        }
        Ok(ClientName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
