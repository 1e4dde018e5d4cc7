//! Protect/unprotect benchmark (filled in by a later commit).

fn main() {}
