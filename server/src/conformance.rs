//! A runner for the OASIS KMIP XML test cases against any KMIP server.
//!
//! Each test-case file (format: `kmip::xml`, KMIP Profiles "XML
//! Encoding", the OASIS "KMIP Test Cases" documents) is a sequence of
//! request/response pairs. The runner opens one mutual-TLS connection per
//! file and, for every pair in order:
//!
//! 1. converts the request to TTLV, substituting placeholders: `$NOW±n` is
//!    the actual time of the request plus `n` seconds; every other
//!    placeholder (`$UNIQUE_IDENTIFIER_n`, `$ASYNCHRONOUS_CORRELATION_VALUE`,
//!    `$DATA_n`, `$IV_COUNTER_NONCE`, ...) takes the value a previous
//!    response bound to it (using one before it is bound fails the step);
//! 2. sends it and reads the response;
//! 3. compares the response with the expected one, node by node: same tags,
//!    same order, same types, same values, except
//!    - where the expected value is a placeholder: bound to the actual
//!      value on first sight, checked against the binding on every later
//!      sight (two different `$UNIQUE_IDENTIFIER_n` must differ); `$NOW±n`
//!      must lie between the time the request was sent and the time the
//!      response came back (±2 s, plus `n`);
//!    - where an Operation Pending answer carries a correlation-value
//!      placeholder: bound afresh, since it announces a new operation
//!      (`async-correlation-rebind`);
//!    - the response header's Time Stamp, never compared;
//!    - the named tolerances of [`RULES`], each documented there.
//!
//! The first difference ends the file with its step (1-based request
//! number) and a readable path such as
//! `ResponseMessage/BatchItem/ResponsePayload/Attribute[2]/AttributeValue`.
//! Files are meant for an empty server, in order: some build on an earlier
//! file's objects (TL-M-3 reads the key TL-M-2 wrote) and versions reuse
//! object names. A file that fails has the objects whose identifiers it
//! bound revoked and destroyed (best effort), since it stopped before its
//! own clean-up steps; [`run_file_with`] can do the same after a file that
//! passes.
//!
//! Nothing here depends on kmipd: any KMIP server reachable with mutual TLS
//! can be checked, PyKMIP's included.

use crate::client::{Client, ClientConfig};
use anyhow::Context;
use kmip::tables::Tag;
use kmip::ttlv::{ItemType, Ttlv, Value};
use kmip::xml::{self, Placeholder, Step, XmlContent, XmlNode};
use kmip::Limits;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A named tolerance of the comparison.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    /// Short name, as reported.
    pub name: &'static str,
    /// What is tolerated and why.
    pub doc: &'static str,
}

/// Every tolerance beyond placeholders and the response Time Stamp. Keep it
/// short: each entry hides a class of differences.
pub const RULES: &[Rule] = &[
    Rule {
        name: "attribute-name-spacing",
        doc: "Some corpus files carry text-extraction artifacts in Attribute Names \
              (\"Cryptographic   Length\"); no KMIP attribute name has two spaces in a \
              row, so runs of whitespace in Attribute Name values are collapsed to one \
              space, in requests and expected responses alike.",
    },
    Rule {
        name: "result-message",
        doc: "A Result Message is free text for humans (KMIP 1.x, 6.11) and optional: its \
              presence and text are not compared. Result Status and Result Reason are.",
    },
    Rule {
        name: "locate-order",
        doc: "The Unique Identifiers of a Locate response are a set: the specification \
              does not order them, so they are matched in any order (count and values must \
              agree).",
    },
    Rule {
        name: "attribute-list-order",
        doc: "The Attribute Names of a Get Attribute List response are a set: the \
              specification does not order them and the corpus files list them in each \
              recording server's own order, so they are matched in any order (count and \
              names must agree).",
    },
    Rule {
        name: "generated-key-material",
        doc: "Keys the server generates (Create, Create Key Pair, Re-key, Re-key Key Pair, \
              Derive Key) are random, and so are the parts Create Split Key makes (random \
              polynomial coefficients or XOR masks, even of a registered key: TC-SJ-2-12, \
              TC-SJ-4-12): in a response payload about such an object (its \
              Unique Identifier was returned by one of those operations in this file or an \
              earlier file of the same run: TL-M-3 reads the key TL-M-2 generated; or a \
              Locate returned it and the run had not seen it before, so it is the server's \
              own: TC-151's fresh member of the default group), Key Material and Digest \
              Value byte strings may differ from the expected ones; their length must agree.",
    },
    Rule {
        name: "generated-key-ciphertext",
        doc: "Data that Encrypt or Decrypt computes under a key the server generated (as \
              for `generated-key-material`) depends on that random key, yet some files \
              (v1.3 CS-BC-M-1/2/3-13) expect the recording server's literal bytes. In such a \
              response a literal Data byte string may differ, same length: an Encrypt's \
              expected ciphertext is then bound to the actual one (never to the request's \
              own Data echoed back), and a later request that \
              sends that literal sends the actual ciphertext instead, so the Decrypt that \
              follows must give back the exact plaintext. A Decrypt's plaintext may differ \
              only when its request sent ciphertext the server never made (the recording \
              server's). Ciphertext under a registered key is always compared exactly.",
    },
    Rule {
        name: "repeat",
        doc: "A `# [REPEAT] until ...` marker (TC-32, TC-92, TC-101) records that the \
              client sent a step again until the server's answer changed (a Poll until the \
              operation completed; a Get Attributes until a Deactivation Date passed): the \
              marked step, and the step after it when it sends the same request, are sent \
              again once a second while the response differs from the expected one, for up \
              to 200 s; then the last difference is reported. Nothing a differing response \
              bound is kept.",
    },
    Rule {
        name: "random-data",
        doc: "The Data of an RNG Retrieve response is random (CS-RNG-M-1): it may differ \
              from the expected bytes; its length must agree.",
    },
    Rule {
        name: "get-response-identifier",
        doc: "TC-SJ-2-12 and TC-SJ-4-12 record the response to their Get of \
              $UNIQUE_IDENTIFIER_4 (step 6) as naming $UNIQUE_IDENTIFIER_1, a recording slip: \
              the rest of that response is part 4, and their other Gets name the object \
              asked for. In the response to a Get of one batch item, an expected \
              $UNIQUE_IDENTIFIER_n already bound to another object matches when the server \
              returned exactly the Unique Identifier the request named.",
    },
    Rule {
        name: "query-capabilities",
        doc: "A Query response describes the server: the files list an example server's \
              Operations and Object Types (\"only the mandatory operations are listed in the \
              response example\", TL-M-1). The server's lists must include every expected \
              value, in any order, and may hold more; Vendor Identification, Server \
              Information and Application Namespaces are the server's own and not compared.",
    },
    Rule {
        name: "async-correlation-rebind",
        doc: "The files name every asynchronous operation's correlation value \
              $ASYNCHRONOUS_CORRELATION_VALUE (TC-32 starts three). Each Operation Pending \
              answer announces a new operation, so there the placeholder binds afresh to the \
              value the server sent; later Polls and Cancels must use and echo that value.",
    },
    Rule {
        name: "server-clock",
        doc: "Date-Times the server stamps from its own clock (Initial Date, Last Change \
              Date, Activation Date set by Activate, ...) are written in the files as the \
              time the case was recorded: a literal expected Date-Time within the file's \
              recorded clock (its response Time Stamps, ±5 s), or any expected Initial, \
              Last Change, Original Creation, Activation, Deactivation, Destroy, \
              Compromise or Archive Date (stamps of the operations that set them; some \
              files were recorded with a clock a year off their Time Stamps, and clients \
              that set these dates use $NOW placeholders), matches any actual \
              Date-Time within this run of the file (±5 s).",
    },
];

/// The first difference found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Readable path of the node.
    pub path: String,
    /// What the file expects.
    pub expected: String,
    /// What the server sent.
    pub got: String,
}

/// The outcome of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    /// The file as found.
    pub path: PathBuf,
    /// Its name relative to the directory it was found in (for directories
    /// given on the command line) or as given.
    pub name: String,
    /// Whether every step matched.
    pub passed: bool,
    /// 1-based request number of the failure.
    pub step: Option<usize>,
    /// The first difference, when the failure is one.
    pub difference: Option<Difference>,
    /// Any other failure (parse, connection, placeholder use).
    pub error: Option<String>,
    /// Tolerances of [`RULES`] that were applied.
    pub rules_applied: Vec<&'static str>,
}

impl FileResult {
    /// The one-line report: `PASS path` or `FAIL path: step N: ...`.
    pub fn line(&self) -> String {
        if self.passed {
            return format!("PASS {}", self.name);
        }
        let mut s = format!("FAIL {}: ", self.name);
        if let Some(n) = self.step {
            s.push_str(&format!("step {n}: "));
        }
        if let Some(d) = &self.difference {
            s.push_str(&format!("{} expected {} got {}", d.path, d.expected, d.got));
        } else if let Some(e) = &self.error {
            s.push_str(e);
        }
        s
    }
}

/// Every `.xml` file under `paths` (directories recursively, sorted), with
/// its display name.
pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out)?;
            } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")) {
                let name = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                out.push((p, name));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, p, &mut out)?;
        } else if p.is_file() {
            out.push((p.clone(), p.display().to_string()));
        } else {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}

/// Expected failures: `relative/path.xml  reason` per line, `#` comments.
#[derive(Debug, Clone, Default)]
pub struct ExpectedFailures(pub Vec<(String, String)>);

impl ExpectedFailures {
    /// Parses the file text; every entry needs a reason.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut v = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (path, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let reason = reason.trim();
            anyhow::ensure!(
                !reason.is_empty(),
                "line {}: {path} has no reason (write `path  reason`)",
                i + 1
            );
            v.push((path.to_owned(), reason.to_owned()));
        }
        Ok(Self(v))
    }

    /// The reason a file is expected to fail, if it is listed. An entry
    /// matches a name equal to it or ending in `/entry`.
    pub fn reason(&self, name: &str) -> Option<&str> {
        let name = name.replace('\\', "/");
        self.0
            .iter()
            .find(|(p, _)| name == *p || name.ends_with(&format!("/{p}")))
            .map(|(_, r)| r.as_str())
    }
}

/// The verdict of a run against an expected-failures list.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Files that passed.
    pub passed: usize,
    /// Files that failed.
    pub failed: usize,
    /// Failures not on the list.
    pub unexpected_failures: Vec<String>,
    /// Listed files that pass now: remove them from the list.
    pub now_passing: Vec<String>,
}

impl Verdict {
    /// Judges `results` against `expected`.
    pub fn judge(results: &[FileResult], expected: &ExpectedFailures) -> Self {
        let mut v = Verdict::default();
        for r in results {
            let listed = expected.reason(&r.name).is_some();
            if r.passed {
                v.passed += 1;
                if listed {
                    v.now_passing.push(r.name.clone());
                }
            } else {
                v.failed += 1;
                if !listed {
                    v.unexpected_failures.push(r.name.clone());
                }
            }
        }
        v
    }

    /// Whether the run is acceptable.
    pub fn ok(&self) -> bool {
        self.unexpected_failures.is_empty() && self.now_passing.is_empty()
    }
}

/// Runs every file in order, one connection each.
pub async fn run_files(cfg: &ClientConfig, files: &[(PathBuf, String)]) -> Vec<FileResult> {
    let mut out = Vec::with_capacity(files.len());
    let mut session = Session::default();
    for (p, name) in files {
        out.push(run_file_in(&mut session, cfg, p, name, false).await);
    }
    out
}

/// Runs one test-case file (no clean-up: a later file may build on what
/// this one stored, as TL-M-3 reads the key TL-M-2 wrote).
pub async fn run_file(cfg: &ClientConfig, path: &Path, name: &str) -> FileResult {
    run_file_with(cfg, path, name, false).await
}

/// Runs one test-case file; with `cleanup`, then revokes and destroys the
/// objects whose identifiers it bound (errors ignored).
pub async fn run_file_with(
    cfg: &ClientConfig,
    path: &Path,
    name: &str,
    cleanup: bool,
) -> FileResult {
    run_file_in(&mut Session::default(), cfg, path, name, cleanup).await
}

/// What one run of several files shares: the objects the server generated
/// in earlier files (TL-M-3 reads the key TL-M-2 generated), for the
/// `generated-key-material` rule.
#[derive(Debug, Default)]
pub struct Session {
    generated: Vec<Value>,
    seen: Vec<Value>,
}

/// Runs one file within a session of several.
pub async fn run_file_in(
    session: &mut Session,
    cfg: &ClientConfig,
    path: &Path,
    name: &str,
    cleanup: bool,
) -> FileResult {
    let mut r = FileResult {
        path: path.to_owned(),
        name: name.to_owned(),
        passed: false,
        step: None,
        difference: None,
        error: None,
        rules_applied: Vec::new(),
    };
    let case = match std::fs::read_to_string(path)
        .context("read")
        .and_then(|t| xml::parse_test_case(&t).context("parse"))
    {
        Ok(c) => c,
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    let mut case = case;
    let mut respaced = false;
    for s in &mut case.steps {
        if let Step::Request(n) | Step::Response(n) = s {
            respaced |= respace_attribute_names(n);
        }
    }
    let mut run = FileRun::new(&case.steps);
    run.generated = std::mem::take(&mut session.generated);
    run.seen = std::mem::take(&mut session.seen);
    if respaced {
        run.applied("attribute-name-spacing");
    }
    let mut client = match tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(cfg)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            r.error = Some(format!("connect: {e:#}"));
            return r;
        }
        Err(_) => {
            r.error = Some("connect: timed out".into());
            return r;
        }
    };
    let outcome = run.steps(&mut client, &case.steps).await;
    // A file that fails stops before its own clean-up steps (every file
    // destroys what it made at its end); what it left would change what a
    // later file's Locate finds (TC-41 and TC-51 Locate "Key1", which a
    // failed TC-32 would leave behind). So the objects of a failed file are
    // always revoked and destroyed; a passing file's stay unless asked
    // (TL-M-3 reads the key TL-M-2 wrote).
    if cleanup || outcome.is_err() {
        run.cleanup(&mut client).await;
    }
    session.generated = std::mem::take(&mut run.generated);
    session.seen = std::mem::take(&mut run.seen);
    r.rules_applied = run.rules_applied.clone();
    match outcome {
        Ok(()) => r.passed = true,
        Err((step, Failure::Diff(d))) => {
            r.step = Some(step);
            r.difference = Some(d);
        }
        Err((step, Failure::Error(e))) => {
            r.step = Some(step);
            r.error = Some(e);
        }
    }
    r
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a `[REPEAT]` step is sent again while its response differs
/// (TC-92 waits two minutes for a Deactivation Date to pass).
const REPEAT_FOR: Duration = Duration::from_secs(200);
/// Slack, in seconds, for times measured around a request.
const NOW_SLACK: i64 = 2;
/// Slack, in seconds, of the `server-clock` rule.
const CLOCK_SLACK: i64 = 5;

enum Failure {
    Diff(Difference),
    Error(String),
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The state of one file's run.
struct FileRun {
    bindings: HashMap<String, Value>,
    /// Identifiers of objects the server generated (`generated-key-material`).
    generated: Vec<Value>,
    /// Every identifier a response carried so far in the session.
    seen: Vec<Value>,
    /// The Unique Identifier of the response payload being compared.
    payload_id: Option<Value>,
    /// `generated-key-ciphertext`: expected literal ciphertexts of Encrypt
    /// responses under generated keys, and the actual ones they stand for.
    ciphertexts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether the request being answered sent a ciphertext of
    /// `ciphertexts` in place of its literal.
    sent_own_ciphertext: bool,
    /// The file's recorded clock: min and max response Time Stamps.
    file_clock: Option<(i64, i64)>,
    run_start: i64,
    rules_applied: Vec<&'static str>,
    version: Option<Ttlv>,
    /// The Unique Identifier the current request's payload names
    /// (`get-response-identifier`).
    requested_id: Option<Value>,
    /// The Data a one-item request sent (`generated-key-ciphertext`: an
    /// Encrypt that echoes it is no ciphertext).
    requested_data: Option<Value>,
}

/// The window of one step: request sent, response received.
#[derive(Clone, Copy)]
struct Window {
    sent: i64,
    received: i64,
}

impl FileRun {
    fn new(steps: &[Step]) -> Self {
        let mut stamps = Vec::new();
        for s in steps {
            if let Step::Response(n) = s {
                if let Some(t) = literal_time_stamp(n) {
                    stamps.push(t);
                }
            }
        }
        let file_clock = match (stamps.iter().min(), stamps.iter().max()) {
            (Some(a), Some(b)) => Some((*a, *b)),
            _ => None,
        };
        Self {
            bindings: HashMap::new(),
            generated: Vec::new(),
            seen: Vec::new(),
            payload_id: None,
            ciphertexts: Vec::new(),
            sent_own_ciphertext: false,
            file_clock,
            run_start: now_secs(),
            rules_applied: Vec::new(),
            version: None,
            requested_id: None,
            requested_data: None,
        }
    }

    async fn steps(&mut self, client: &mut Client, steps: &[Step]) -> Result<(), (usize, Failure)> {
        let mut step = 0;
        let mut pending: Option<(Ttlv, Window, &XmlNode, bool)> = None;
        // A `[REPEAT]` marker before the next request, and the request it
        // marked (the step after it repeats too when it sends the same).
        let mut marked = false;
        let mut repeated: Option<&XmlNode> = None;
        for s in steps {
            match s {
                Step::Time(_) => {}
                Step::Repeat(_) => marked = true,
                Step::Request(node) => {
                    step += 1;
                    let retry = marked || repeated == Some(node);
                    repeated = if marked || retry { Some(node) } else { None };
                    marked = false;
                    let (resp, w) = self.send(client, node).await.map_err(|e| (step, e))?;
                    pending = Some((resp, w, node, retry));
                }
                Step::Response(node) => {
                    let Some((mut actual, mut w, request, retry)) = pending.take() else {
                        return Err((step, Failure::Error("a response without a request".into())));
                    };
                    let deadline = std::time::Instant::now() + REPEAT_FOR;
                    loop {
                        let before = (
                            self.bindings.clone(),
                            self.generated.len(),
                            self.seen.len(),
                            self.ciphertexts.len(),
                        );
                        match self.check(node, &actual, w) {
                            Ok(()) => break,
                            Err(e) if !retry || std::time::Instant::now() >= deadline => {
                                return Err((step, e))
                            }
                            Err(_) => {
                                // Sent again as the recording client did;
                                // nothing the failed comparison bound stays.
                                self.bindings = before.0;
                                self.generated.truncate(before.1);
                                self.seen.truncate(before.2);
                                self.ciphertexts.truncate(before.3);
                                self.applied("repeat");
                                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                                (actual, w) =
                                    self.send(client, request).await.map_err(|e| (step, e))?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends one request (placeholders bound) and reads its response.
    async fn send(
        &mut self,
        client: &mut Client,
        node: &XmlNode,
    ) -> Result<(Ttlv, Window), Failure> {
        let limits = Limits {
            max_message_size: 64 << 20,
            ..Limits::default()
        };
        let sent = now_secs();
        let req = self.request(node, sent).map_err(Failure::Error)?;
        // Only a request of one batch item says unambiguously what its
        // response is about (get-response-identifier, generated-key-ciphertext).
        let single = req.children_with(Tag::BATCH_ITEM).count() == 1;
        let payload = req
            .child(Tag::BATCH_ITEM)
            .and_then(|i| i.child(Tag::REQUEST_PAYLOAD))
            .filter(|_| single);
        self.requested_id = payload
            .and_then(|p| p.child(Tag::UNIQUE_IDENTIFIER))
            .map(|u| u.value.clone());
        self.requested_data = payload
            .and_then(|p| p.child(Tag::DATA))
            .map(|d| d.value.clone());
        if self.version.is_none() {
            self.version = req
                .child(Tag::REQUEST_HEADER)
                .and_then(|h| h.child(Tag::PROTOCOL_VERSION))
                .cloned();
        }
        let bytes = req
            .to_bytes()
            .map_err(|e| Failure::Error(format!("encode request: {e}")))?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, client.roundtrip_bytes(&bytes))
            .await
            .map_err(|_| Failure::Error("no response within 30 s".into()))?
            .map_err(|e| Failure::Error(format!("connection: {e:#}")))?;
        let resp = Ttlv::from_bytes(&resp, &limits)
            .map_err(|e| Failure::Error(format!("undecodable response: {e}")))?;
        Ok((
            resp,
            Window {
                sent,
                received: now_secs(),
            },
        ))
    }

    /// The request with its placeholders bound.
    fn request(&mut self, node: &XmlNode, now: i64) -> Result<Ttlv, String> {
        let mut unbound = None;
        let bindings = &self.bindings;
        let t = node
            .to_ttlv_with(&mut |p: &Placeholder<'_>| {
                if p.name() == "$NOW" {
                    return time_value(p.item_type, now + p.offset());
                }
                match bindings.get(p.text) {
                    Some(v) => Some(v.clone()),
                    None => {
                        unbound.get_or_insert_with(|| p.text.to_owned());
                        None
                    }
                }
            })
            .map_err(|e| match &unbound {
                Some(u) => format!("request uses {u} before a response bound it"),
                None => format!("request: {e}"),
            })?;
        if let Some(u) = unbound {
            // A Text String placeholder parsed literally: still an error.
            return Err(format!("request uses {u} before a response bound it"));
        }
        let mut t = t;
        self.sent_own_ciphertext = substitute_ciphertexts(&mut t, &self.ciphertexts);
        if self.sent_own_ciphertext {
            self.applied("generated-key-ciphertext");
        }
        Ok(t)
    }

    fn check(&mut self, node: &XmlNode, actual: &Ttlv, w: Window) -> Result<(), Failure> {
        // `async-correlation-rebind`: a pending answer starts a new operation.
        for name in pending_correlations(node) {
            if self.bindings.remove(&name).is_some() {
                self.applied("async-correlation-rebind");
            }
        }
        // The expected tree with every value parsed; placeholders take their
        // binding or a dummy (the comparison looks at the XmlNode for them).
        let bindings = &self.bindings;
        let expected = node
            .to_ttlv_with(&mut |p: &Placeholder<'_>| {
                if p.name() == "$NOW" {
                    return time_value(p.item_type, 0);
                }
                bindings
                    .get(p.text)
                    .filter(|v| v.item_type() == p.item_type)
                    .cloned()
                    .or_else(|| dummy(p.item_type))
            })
            .map_err(|e| Failure::Error(format!("expected response: {e}")))?;
        let mut path = vec![name_of(node.tag)];
        self.compare(node, &expected, actual, node.tag, w, &mut path, None)
            .map_err(Failure::Diff)
    }

    fn applied(&mut self, rule: &'static str) {
        if !self.rules_applied.contains(&rule) {
            self.rules_applied.push(rule);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn compare(
        &mut self,
        node: &XmlNode,
        exp: &Ttlv,
        act: &Ttlv,
        table_tag: Tag,
        w: Window,
        path: &mut Vec<String>,
        operation: Option<u32>,
    ) -> Result<(), Difference> {
        if exp.tag != act.tag {
            return Err(diff(path, name_of(exp.tag), name_of(act.tag)));
        }
        match (&node.content, &exp.value, &act.value) {
            (XmlContent::Structure(nodes), Value::Structure(ec), Value::Structure(ac)) => {
                self.compare_children(exp.tag, nodes, ec, ac, w, path, operation)
            }
            (XmlContent::Leaf { text, item_type }, _, _) => {
                if act.item_type() != *item_type {
                    return Err(diff(
                        path,
                        format!("a {}", item_type.name()),
                        format!("a {} {}", act.item_type().name(), show(act, table_tag)),
                    ));
                }
                if xml::is_placeholder(text) {
                    if operation == Some(GET)
                        && exp.tag == Tag::UNIQUE_IDENTIFIER
                        && text.starts_with("$UNIQUE_IDENTIFIER")
                        && self.bindings.get(text).is_some_and(|b| *b != act.value)
                        && self.requested_id.as_ref() == Some(&act.value)
                    {
                        self.applied("get-response-identifier");
                        return Ok(());
                    }
                    return self.placeholder(text, act, table_tag, w, path);
                }
                if exp.value == act.value {
                    return Ok(());
                }
                if exp.tag == Tag::DATA && operation == Some(RNG_RETRIEVE) {
                    if let (Value::ByteString(e), Value::ByteString(a)) = (&exp.value, &act.value) {
                        if e.len() == a.len() {
                            self.applied("random-data");
                            return Ok(());
                        }
                    }
                }
                if exp.tag == Tag::KEY_MATERIAL || exp.tag == Tag::DIGEST_VALUE {
                    if let (Value::ByteString(e), Value::ByteString(a)) = (&exp.value, &act.value) {
                        let generated = self
                            .payload_id
                            .as_ref()
                            .is_some_and(|id| self.generated.contains(id));
                        if e.len() == a.len() && generated {
                            self.applied("generated-key-material");
                            return Ok(());
                        }
                    }
                }
                if exp.tag == Tag::DATA && [Some(ENCRYPT), Some(DECRYPT)].contains(&operation) {
                    if let (Value::ByteString(e), Value::ByteString(a)) = (&exp.value, &act.value) {
                        let generated = self
                            .payload_id
                            .as_ref()
                            .is_some_and(|id| self.generated.contains(id));
                        let encrypt = operation == Some(ENCRYPT);
                        let echoed = self.requested_data.as_ref() == Some(&act.value);
                        if generated
                            && e.len() == a.len()
                            && (encrypt && !echoed || !encrypt && !self.sent_own_ciphertext)
                        {
                            if encrypt {
                                self.ciphertexts.push((e.clone(), a.clone()));
                            }
                            self.applied("generated-key-ciphertext");
                            return Ok(());
                        }
                    }
                }
                if let (Value::DateTime(e), Value::DateTime(a)) = (&exp.value, &act.value) {
                    // Dates the server stamps as a side effect of operations
                    // (Create, Activate, Revoke, Destroy, Archive); clients
                    // that set them use $NOW placeholders, bound separately.
                    let stamped = [
                        Tag::INITIAL_DATE,
                        Tag::LAST_CHANGE_DATE,
                        Tag::ORIGINAL_CREATION_DATE,
                        Tag::ACTIVATION_DATE,
                        Tag::DEACTIVATION_DATE,
                        Tag::DESTROY_DATE,
                        Tag::COMPROMISE_DATE,
                        Tag::ARCHIVE_DATE,
                    ]
                    .contains(&table_tag);
                    let recorded = self
                        .file_clock
                        .is_some_and(|(lo, hi)| (lo - CLOCK_SLACK..=hi + CLOCK_SLACK).contains(e));
                    if (stamped || recorded)
                        && (self.run_start - CLOCK_SLACK..=w.received + CLOCK_SLACK).contains(a)
                    {
                        self.applied("server-clock");
                        return Ok(());
                    }
                }
                Err(diff(path, show(exp, table_tag), show(act, table_tag)))
            }
            (XmlContent::Structure(_), _, _) => Err(diff(
                path,
                "a Structure".into(),
                format!("a {} {}", act.item_type().name(), show(act, table_tag)),
            )),
        }
    }

    fn placeholder(
        &mut self,
        text: &str,
        act: &Ttlv,
        table_tag: Tag,
        w: Window,
        path: &mut [String],
    ) -> Result<(), Difference> {
        let (name, offset) = {
            let p = Placeholder {
                text,
                item_type: act.item_type(),
                path: &[],
            };
            (p.name().to_owned(), p.offset())
        };
        if name == "$NOW" {
            let a = match act.value {
                Value::DateTime(s) => s,
                Value::DateTimeExtended(us) => us.div_euclid(1_000_000),
                _ => {
                    return Err(diff(
                        path,
                        format!("{text} (a Date-Time)"),
                        show(act, table_tag),
                    ))
                }
            };
            let (lo, hi) = (w.sent + offset - NOW_SLACK, w.received + offset + NOW_SLACK);
            if (lo..=hi).contains(&a) {
                return Ok(());
            }
            return Err(diff(
                path,
                format!("{text} (between {} and {})", fmt_time(lo), fmt_time(hi)),
                show(act, table_tag),
            ));
        }
        match self.bindings.get(text) {
            Some(v) if *v == act.value => Ok(()),
            Some(v) => Err(diff(
                path,
                format!(
                    "{text} = {}",
                    show(&Ttlv::new(act.tag, v.clone()), table_tag)
                ),
                show(act, table_tag),
            )),
            None => {
                if name.starts_with("$UNIQUE_IDENTIFIER") {
                    if let Some((other, _)) = self
                        .bindings
                        .iter()
                        .find(|(k, v)| k.starts_with("$UNIQUE_IDENTIFIER") && **v == act.value)
                    {
                        return Err(diff(
                            path,
                            format!("{text} (a new identifier)"),
                            format!("{} (already {other})", show(act, table_tag)),
                        ));
                    }
                }
                self.bindings.insert(text.to_owned(), act.value.clone());
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn compare_children(
        &mut self,
        parent: Tag,
        nodes: &[XmlNode],
        ec: &[Ttlv],
        ac: &[Ttlv],
        w: Window,
        path: &mut Vec<String>,
        operation: Option<u32>,
    ) -> Result<(), Difference> {
        // Indices of what is compared position by position.
        let mut e_idx: Vec<usize> = (0..ec.len()).collect();
        let mut a_idx: Vec<usize> = (0..ac.len()).collect();
        // The response Time Stamp is never compared.
        if parent == Tag::RESPONSE_HEADER {
            e_idx.retain(|&i| ec[i].tag != Tag::TIME_STAMP);
            a_idx.retain(|&i| ac[i].tag != Tag::TIME_STAMP);
        }
        let operation = if parent == Tag::BATCH_ITEM {
            ac.iter()
                .find(|c| c.tag == Tag::OPERATION)
                .and_then(|c| c.as_enum().ok())
        } else {
            operation
        };
        if parent == Tag::RESPONSE_PAYLOAD {
            self.payload_id = ac
                .iter()
                .find(|c| c.tag == Tag::UNIQUE_IDENTIFIER)
                .map(|c| c.value.clone());
        }
        if parent == Tag::BATCH_ITEM {
            // An object a Locate returns that the run has not seen is the
            // server's own (TC-151: a fresh member of its default group):
            // its key material is the server's, like a generated key's.
            for p in ac.iter().filter(|c| c.tag == Tag::RESPONSE_PAYLOAD) {
                for c in p.children().unwrap_or_default() {
                    if c.tag != Tag::UNIQUE_IDENTIFIER || self.seen.contains(&c.value) {
                        continue;
                    }
                    if operation == Some(LOCATE) {
                        self.generated.push(c.value.clone());
                    }
                    self.seen.push(c.value.clone());
                }
            }
        }
        if parent == Tag::BATCH_ITEM && operation.is_some_and(|o| GENERATING.contains(&o)) {
            for p in ac.iter().filter(|c| c.tag == Tag::RESPONSE_PAYLOAD) {
                for c in p.children().unwrap_or_default() {
                    if [
                        Tag::UNIQUE_IDENTIFIER,
                        Tag::PRIVATE_KEY_UNIQUE_IDENTIFIER,
                        Tag::PUBLIC_KEY_UNIQUE_IDENTIFIER,
                    ]
                    .contains(&c.tag)
                    {
                        self.generated.push(c.value.clone());
                    }
                }
            }
        }
        if parent == Tag::BATCH_ITEM {
            let (e, a) = (e_idx.len(), a_idx.len());
            e_idx.retain(|&i| ec[i].tag != Tag::RESULT_MESSAGE);
            a_idx.retain(|&i| ac[i].tag != Tag::RESULT_MESSAGE);
            if e != e_idx.len() || a != a_idx.len() {
                self.applied("result-message");
            }
        }
        if parent == Tag::RESPONSE_PAYLOAD && operation == Some(QUERY) {
            self.query_lists(ec, ac, &mut e_idx, &mut a_idx, path)?;
        }
        if parent == Tag::RESPONSE_PAYLOAD && operation == Some(LOCATE) {
            self.locate_ids(nodes, ec, ac, &mut e_idx, &mut a_idx, path)?;
        }
        if parent == Tag::RESPONSE_PAYLOAD && operation == Some(GET_ATTRIBUTE_LIST) {
            self.attribute_names(ec, ac, &mut e_idx, &mut a_idx, path)?;
        }
        // The enumeration table of an Attribute Value follows its Attribute Name.
        let attr_tag = ec
            .iter()
            .find(|c| c.tag == Tag::ATTRIBUTE_NAME)
            .and_then(|c| c.as_text().ok())
            .and_then(Tag::from_name);
        for k in 0..e_idx.len().max(a_idx.len()) {
            match (e_idx.get(k), a_idx.get(k)) {
                (Some(&i), Some(&j)) => {
                    path.push(step_name(ec, i));
                    let table = match attr_tag {
                        Some(t) if ec[i].tag == Tag::ATTRIBUTE_VALUE => t,
                        _ => ec[i].tag,
                    };
                    self.compare(&nodes[i], &ec[i], &ac[j], table, w, path, operation)?;
                    path.pop();
                }
                (Some(&i), None) => {
                    path.push(step_name(ec, i));
                    return Err(diff(path, describe(&ec[i]), "nothing".into()));
                }
                (None, Some(&j)) => {
                    path.push(step_name(ac, j));
                    return Err(diff(path, "nothing".into(), describe(&ac[j])));
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// `attribute-list-order`: matches the Attribute Names of a Get
    /// Attribute List response as a multiset.
    fn attribute_names(
        &mut self,
        ec: &[Ttlv],
        ac: &[Ttlv],
        e_idx: &mut Vec<usize>,
        a_idx: &mut Vec<usize>,
        path: &mut Vec<String>,
    ) -> Result<(), Difference> {
        let is_name = |t: &Ttlv| t.tag == Tag::ATTRIBUTE_NAME;
        let names = |c: &[Ttlv], idx: &[usize]| -> Vec<String> {
            idx.iter()
                .filter(|&&i| is_name(&c[i]))
                .filter_map(|&i| c[i].as_text().ok().map(str::to_owned))
                .collect()
        };
        let (exp, got) = (names(ec, e_idx), names(ac, a_idx));
        let (mut se, mut sg) = (exp.clone(), got.clone());
        se.sort();
        sg.sort();
        if se != sg {
            let missing: Vec<&String> = se.iter().filter(|n| !sg.contains(n)).collect();
            let extra: Vec<&String> = sg.iter().filter(|n| !se.contains(n)).collect();
            path.push("AttributeName".into());
            return Err(diff(
                path,
                format!(
                    "{} names{}",
                    se.len(),
                    if missing.is_empty() {
                        String::new()
                    } else {
                        format!(", including {missing:?}")
                    }
                ),
                format!(
                    "{} names{}",
                    sg.len(),
                    if extra.is_empty() {
                        String::new()
                    } else {
                        format!(", including {extra:?}")
                    }
                ),
            ));
        }
        if exp != got {
            self.applied("attribute-list-order");
        }
        e_idx.retain(|&i| !is_name(&ec[i]));
        a_idx.retain(|&j| !is_name(&ac[j]));
        Ok(())
    }

    /// `query-capabilities`: the server's Operations and Object Types must
    /// include the expected ones; descriptive fields are not compared.
    fn query_lists(
        &mut self,
        ec: &[Ttlv],
        ac: &[Ttlv],
        e_idx: &mut Vec<usize>,
        a_idx: &mut Vec<usize>,
        path: &mut Vec<String>,
    ) -> Result<(), Difference> {
        const LISTS: &[Tag] = &[Tag::OPERATION, Tag::OBJECT_TYPE];
        const OWN: &[Tag] = &[
            Tag::VENDOR_IDENTIFICATION,
            Tag::SERVER_INFORMATION,
            Tag::APPLICATION_NAMESPACE,
        ];
        for &i in e_idx.iter() {
            if LISTS.contains(&ec[i].tag) && !a_idx.iter().any(|&j| ac[j] == ec[i]) {
                path.push(name_of(ec[i].tag));
                return Err(diff(
                    path,
                    format!("{} among the server's", show(&ec[i], ec[i].tag)),
                    "a list without it".into(),
                ));
            }
        }
        let skip = |t: &Ttlv| LISTS.contains(&t.tag) || OWN.contains(&t.tag);
        let before = (e_idx.len(), a_idx.len());
        e_idx.retain(|&i| !skip(&ec[i]));
        a_idx.retain(|&j| !skip(&ac[j]));
        if before != (e_idx.len(), a_idx.len()) {
            self.applied("query-capabilities");
        }
        Ok(())
    }

    /// `locate-order`: matches the Unique Identifiers of a Locate response
    /// as a set and removes them from positional comparison.
    fn locate_ids(
        &mut self,
        nodes: &[XmlNode],
        ec: &[Ttlv],
        ac: &[Ttlv],
        e_idx: &mut Vec<usize>,
        a_idx: &mut Vec<usize>,
        path: &mut Vec<String>,
    ) -> Result<(), Difference> {
        let is_id = |t: &Ttlv| t.tag == Tag::UNIQUE_IDENTIFIER;
        let exp: Vec<usize> = e_idx.iter().copied().filter(|&i| is_id(&ec[i])).collect();
        let mut left: Vec<usize> = a_idx.iter().copied().filter(|&j| is_id(&ac[j])).collect();
        if exp.len() < 2 && left.len() < 2 {
            return Ok(()); // nothing to reorder: compare positionally
        }
        let mut unbound = Vec::new();
        for &i in &exp {
            let want = match &nodes[i].content {
                XmlContent::Leaf { text, .. } if xml::is_placeholder(text) => {
                    match self.bindings.get(text) {
                        Some(v) => Some(v.clone()),
                        None => {
                            unbound.push((i, text.clone()));
                            continue;
                        }
                    }
                }
                _ => Some(ec[i].value.clone()),
            };
            match left
                .iter()
                .position(|&j| Some(&ac[j].value) == want.as_ref())
            {
                Some(p) => {
                    left.remove(p);
                }
                None => {
                    path.push("UniqueIdentifier".into());
                    let d = diff(
                        path,
                        format!("{} among the identifiers", show(&ec[i], ec[i].tag)),
                        format!("{} identifiers without it", left.len()),
                    );
                    return Err(d);
                }
            }
        }
        if unbound.len() != left.len() {
            path.push("UniqueIdentifier".into());
            return Err(diff(
                path,
                format!("{} identifiers", exp.len()),
                format!("{}", exp.len() - unbound.len() + left.len()),
            ));
        }
        for ((_, text), j) in unbound.into_iter().zip(left) {
            self.bindings.insert(text, ac[j].value.clone());
        }
        let want: Vec<Option<Value>> = exp
            .iter()
            .map(|&i| match &nodes[i].content {
                XmlContent::Leaf { text, .. } if xml::is_placeholder(text) => {
                    self.bindings.get(text).cloned()
                }
                _ => Some(ec[i].value.clone()),
            })
            .collect();
        let got: Vec<Option<Value>> = a_idx
            .iter()
            .filter(|&&j| is_id(&ac[j]))
            .map(|&j| Some(ac[j].value.clone()))
            .collect();
        if want != got {
            self.applied("locate-order");
        }
        e_idx.retain(|&i| !is_id(&ec[i]));
        a_idx.retain(|&j| !is_id(&ac[j]));
        Ok(())
    }

    /// Revokes and destroys the objects whose identifiers the file bound.
    async fn cleanup(&mut self, client: &mut Client) {
        let Some(version) = self.version.clone() else {
            return;
        };
        let mut ids: Vec<(String, String)> = self
            .bindings
            .iter()
            .filter(|(k, _)| k.starts_with("$UNIQUE_IDENTIFIER"))
            .filter_map(|(k, v)| match v {
                Value::TextString(s) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect();
        ids.sort();
        for (_, id) in ids {
            for item in [revoke_item(&id), destroy_item(&id)] {
                let msg = Ttlv::structure(
                    Tag::REQUEST_MESSAGE,
                    vec![
                        Ttlv::structure(
                            Tag::REQUEST_HEADER,
                            vec![version.clone(), Ttlv::int(Tag::BATCH_COUNT, 1)],
                        ),
                        item,
                    ],
                );
                let Ok(bytes) = msg.to_bytes() else { return };
                match tokio::time::timeout(REQUEST_TIMEOUT, client.roundtrip_bytes(&bytes)).await {
                    Ok(Ok(_)) => {}
                    _ => return,
                }
            }
        }
    }
}

const LOCATE: u32 = 0x08;
const RNG_RETRIEVE: u32 = 0x25;
const ENCRYPT: u32 = 0x1F;
const DECRYPT: u32 = 0x20;
const QUERY: u32 = 0x18;
const GET_ATTRIBUTE_LIST: u32 = 0x0C;
const GET: u32 = 0x0A;

/// The correlation-value placeholders of the Operation Pending batch items
/// of an expected response.
fn pending_correlations(resp: &XmlNode) -> Vec<String> {
    let XmlContent::Structure(items) = &resp.content else {
        return Vec::new();
    };
    let leaf = |item: &XmlNode, tag: Tag| -> Option<String> {
        let XmlContent::Structure(c) = &item.content else {
            return None;
        };
        c.iter()
            .find(|n| n.tag == tag)
            .and_then(|n| match &n.content {
                XmlContent::Leaf { text, .. } => Some(text.clone()),
                XmlContent::Structure(_) => None,
            })
    };
    items
        .iter()
        .filter(|i| i.tag == Tag::BATCH_ITEM)
        .filter(|i| leaf(i, Tag::RESULT_STATUS).as_deref() == Some("OperationPending"))
        .filter_map(|i| leaf(i, Tag::ASYNCHRONOUS_CORRELATION_VALUE))
        .filter(|t| xml::is_placeholder(t))
        .collect()
}

fn revoke_item(id: &str) -> Ttlv {
    Ttlv::structure(
        Tag::BATCH_ITEM,
        vec![
            Ttlv::enumeration(Tag::OPERATION, 0x13u32),
            Ttlv::structure(
                Tag::REQUEST_PAYLOAD,
                vec![
                    Ttlv::text(Tag::UNIQUE_IDENTIFIER, id),
                    Ttlv::structure(
                        Tag::REVOCATION_REASON,
                        // Cessation of Operation.
                        vec![Ttlv::enumeration(Tag::REVOCATION_REASON_CODE, 0x05u32)],
                    ),
                ],
            ),
        ],
    )
}

fn destroy_item(id: &str) -> Ttlv {
    Ttlv::structure(
        Tag::BATCH_ITEM,
        vec![
            Ttlv::enumeration(Tag::OPERATION, 0x14u32),
            Ttlv::structure(
                Tag::REQUEST_PAYLOAD,
                vec![Ttlv::text(Tag::UNIQUE_IDENTIFIER, id)],
            ),
        ],
    )
}

/// `attribute-name-spacing`: collapses whitespace runs in Attribute Name
/// values; whether anything changed.
/// `generated-key-ciphertext`: replaces every Data byte string of a request
/// that is an expected literal ciphertext of `map` with the actual one;
/// whether any was replaced.
fn substitute_ciphertexts(t: &mut Ttlv, map: &[(Vec<u8>, Vec<u8>)]) -> bool {
    match &mut t.value {
        Value::ByteString(b) if t.tag == Tag::DATA => {
            match map.iter().rev().find(|(literal, _)| literal == b) {
                Some((_, actual)) => {
                    *b = actual.clone();
                    true
                }
                None => false,
            }
        }
        Value::Structure(children) => children
            .iter_mut()
            .fold(false, |any, c| substitute_ciphertexts(c, map) | any),
        _ => false,
    }
}

fn respace_attribute_names(n: &mut XmlNode) -> bool {
    match &mut n.content {
        XmlContent::Structure(c) => c
            .iter_mut()
            .fold(false, |acc, c| respace_attribute_names(c) | acc),
        XmlContent::Leaf {
            item_type: ItemType::TextString,
            text,
        } if n.tag == Tag::ATTRIBUTE_NAME && text.contains("  ") => {
            *text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            true
        }
        XmlContent::Leaf { .. } => false,
    }
}

fn literal_time_stamp(resp: &XmlNode) -> Option<i64> {
    let XmlContent::Structure(c) = &resp.content else {
        return None;
    };
    let header = c.iter().find(|n| n.tag == Tag::RESPONSE_HEADER)?;
    let XmlContent::Structure(h) = &header.content else {
        return None;
    };
    let ts = h.iter().find(|n| n.tag == Tag::TIME_STAMP)?;
    match ts.to_ttlv().ok()?.value {
        Value::DateTime(t) => Some(t),
        _ => None,
    }
}

fn time_value(t: ItemType, secs: i64) -> Option<Value> {
    match t {
        ItemType::DateTime => Some(Value::DateTime(secs)),
        ItemType::DateTimeExtended => Some(Value::DateTimeExtended(secs * 1_000_000)),
        _ => None,
    }
}

fn dummy(t: ItemType) -> Option<Value> {
    Some(match t {
        ItemType::TextString => Value::TextString(String::new()),
        ItemType::ByteString => Value::ByteString(Vec::new()),
        ItemType::Integer => Value::Integer(0),
        ItemType::LongInteger => Value::LongInteger(0),
        ItemType::Enumeration => Value::Enumeration(0),
        ItemType::Boolean => Value::Boolean(false),
        ItemType::DateTime => Value::DateTime(0),
        ItemType::DateTimeExtended => Value::DateTimeExtended(0),
        ItemType::Interval => Value::Interval(0),
        ItemType::BigInteger => Value::BigInteger(kmip::ttlv::BigInt::from_be_bytes(&[0])),
        ItemType::Structure => return None,
    })
}

/// Operations whose new objects hold key material the server generated.
const GENERATING: &[u32] = &[0x01, 0x02, 0x04, 0x05, 0x1D, 0x28];

fn name_of(tag: Tag) -> String {
    xml::element_name(tag).unwrap_or_else(|| format!("0x{:06X}", tag.0))
}

/// The path element of child `i`: its name, with `[n]` (1-based) when the
/// tag occurs more than once among the siblings.
fn step_name(siblings: &[Ttlv], i: usize) -> String {
    let tag = siblings[i].tag;
    let same = siblings.iter().filter(|c| c.tag == tag).count();
    if same > 1 {
        let n = siblings[..i].iter().filter(|c| c.tag == tag).count() + 1;
        format!("{}[{n}]", name_of(tag))
    } else {
        name_of(tag)
    }
}

fn diff(path: &[String], expected: String, got: String) -> Difference {
    Difference {
        path: path.join("/"),
        expected,
        got,
    }
}

/// A short description of an item: a leaf's value, a structure's name.
fn describe(t: &Ttlv) -> String {
    match &t.value {
        Value::Structure(c) => format!("{} ({} items)", name_of(t.tag), c.len()),
        _ => format!("{} {}", name_of(t.tag), show(t, t.tag)),
    }
}

/// A leaf's value as the XML encoding writes it (enumerations by name from
/// `table_tag`'s table), quoted.
fn show(t: &Ttlv, table_tag: Tag) -> String {
    if let Value::Structure(c) = &t.value {
        return format!("a Structure of {} items", c.len());
    }
    let x = xml::to_xml(&Ttlv::new(table_tag, t.value.clone()));
    let v = x
        .find("value=\"")
        .and_then(|i| x[i + 7..].rfind('"').map(|j| &x[i + 7..i + 7 + j]))
        .unwrap_or("?");
    format!("\"{v}\"")
}

fn fmt_time(secs: i64) -> String {
    xml::to_xml(&Ttlv::date_time(Tag::TIME_STAMP, secs))
        .split('"')
        .nth(3)
        .unwrap_or("?")
        .to_owned()
}

/// The JSON report of a run.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// Per file.
    pub files: &'a [FileResult],
    /// Totals and the judgement.
    pub verdict: &'a Verdict,
    /// The rules in force.
    pub rules: &'static [Rule],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_failures_parse_and_match() {
        let e = ExpectedFailures::parse("# c\n\nv1.0/A.xml  asymmetric keys\nB.xml x\n").unwrap();
        assert_eq!(e.reason("v1.0/A.xml"), Some("asymmetric keys"));
        assert_eq!(e.reason("/x/v1.0/A.xml"), Some("asymmetric keys"));
        assert_eq!(e.reason("v1.1/A.xml"), None);
        assert_eq!(e.reason("v1.1/B.xml"), Some("x"));
        assert!(ExpectedFailures::parse("A.xml\n").is_err());
    }

    #[test]
    fn verdict_flags_both_directions() {
        let mk = |name: &str, passed| FileResult {
            path: name.into(),
            name: name.into(),
            passed,
            step: None,
            difference: None,
            error: None,
            rules_applied: vec![],
        };
        let e = ExpectedFailures::parse("a.xml r\nb.xml r\n").unwrap();
        let v = Verdict::judge(
            &[mk("a.xml", true), mk("b.xml", false), mk("c.xml", false)],
            &e,
        );
        assert_eq!((v.passed, v.failed), (1, 2));
        assert_eq!(v.now_passing, vec!["a.xml"]);
        assert_eq!(v.unexpected_failures, vec!["c.xml"]);
        assert!(!v.ok());
    }

    fn leaf(tag: Tag, t: ItemType, text: &str) -> XmlNode {
        XmlNode {
            tag,
            content: XmlContent::Leaf {
                item_type: t,
                text: text.into(),
            },
        }
    }

    #[test]
    fn placeholders_bind_then_check() {
        let mut run = FileRun::new(&[]);
        let w = Window {
            sent: 100,
            received: 101,
        };
        let n = leaf(
            Tag::UNIQUE_IDENTIFIER,
            ItemType::TextString,
            "$UNIQUE_IDENTIFIER_0",
        );
        let a = Ttlv::text(Tag::UNIQUE_IDENTIFIER, "abc");
        let b = Ttlv::text(Tag::UNIQUE_IDENTIFIER, "def");
        let mut p = Vec::new();
        run.compare(&n, &a, &a, n.tag, w, &mut p, None).unwrap();
        run.compare(&n, &a, &a, n.tag, w, &mut p, None).unwrap();
        assert!(run.compare(&n, &a, &b, n.tag, w, &mut p, None).is_err());
        // A second identifier must be new.
        let n1 = leaf(
            Tag::UNIQUE_IDENTIFIER,
            ItemType::TextString,
            "$UNIQUE_IDENTIFIER_1",
        );
        assert!(run.compare(&n1, &a, &a, n.tag, w, &mut p, None).is_err());
        // $NOW within the window, with its offset.
        let t = leaf(Tag::ACTIVATION_DATE, ItemType::DateTime, "$NOW-3600");
        let ok = Ttlv::date_time(Tag::ACTIVATION_DATE, 100 - 3600);
        let late = Ttlv::date_time(Tag::ACTIVATION_DATE, 200);
        run.compare(&t, &ok, &ok, t.tag, w, &mut p, None).unwrap();
        assert!(run.compare(&t, &ok, &late, t.tag, w, &mut p, None).is_err());
    }

    #[test]
    fn get_response_may_name_the_requested_object_over_a_misrecorded_id() {
        let mut run = FileRun::new(&[]);
        let w = Window {
            sent: 100,
            received: 101,
        };
        run.bindings.insert(
            "$UNIQUE_IDENTIFIER_1".into(),
            Value::TextString("p1".into()),
        );
        run.bindings.insert(
            "$UNIQUE_IDENTIFIER_4".into(),
            Value::TextString("p4".into()),
        );
        let n = leaf(
            Tag::UNIQUE_IDENTIFIER,
            ItemType::TextString,
            "$UNIQUE_IDENTIFIER_1",
        );
        let exp = Ttlv::text(Tag::UNIQUE_IDENTIFIER, "p1");
        let p4 = Ttlv::text(Tag::UNIQUE_IDENTIFIER, "p4");
        let other = Ttlv::text(Tag::UNIQUE_IDENTIFIER, "zz");
        let mut p = Vec::new();
        // Not a Get, or no request naming p4: a mismatch.
        run.requested_id = Some(p4.value.clone());
        assert!(run.compare(&n, &exp, &p4, n.tag, w, &mut p, None).is_err());
        run.requested_id = None;
        assert!(run
            .compare(&n, &exp, &p4, n.tag, w, &mut p, Some(GET))
            .is_err());
        // A Get of p4 answered with p4: the file's slip is tolerated...
        run.requested_id = Some(p4.value.clone());
        run.compare(&n, &exp, &p4, n.tag, w, &mut p, Some(GET))
            .unwrap();
        assert_eq!(run.rules_applied, ["get-response-identifier"]);
        // ... a Get of p4 answered with another object is not.
        assert!(run
            .compare(&n, &exp, &other, n.tag, w, &mut p, Some(GET))
            .is_err());
        // The binding is untouched.
        assert_eq!(run.bindings["$UNIQUE_IDENTIFIER_1"], exp.value);
    }

    #[test]
    fn locate_ids_match_in_any_order() {
        let xml = r#"<ResponseMessage><BatchItem>
          <Operation type="Enumeration" value="Locate"/>
          <ResultStatus type="Enumeration" value="Success"/>
          <ResultMessage type="TextString" value="fine"/>
          <ResponsePayload>
            <UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/>
            <UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_1"/>
          </ResponsePayload></BatchItem></ResponseMessage>"#;
        let node = xml::parse_node(xml).unwrap();
        let mut run = FileRun::new(&[]);
        run.bindings
            .insert("$UNIQUE_IDENTIFIER_1".into(), Value::TextString("b".into()));
        let actual = xml::from_xml(
            r#"<ResponseMessage><BatchItem>
          <Operation type="Enumeration" value="Locate"/>
          <ResultStatus type="Enumeration" value="Success"/>
          <ResponsePayload>
            <UniqueIdentifier type="TextString" value="b"/>
            <UniqueIdentifier type="TextString" value="a"/>
          </ResponsePayload></BatchItem></ResponseMessage>"#,
        )
        .unwrap();
        let w = Window {
            sent: 0,
            received: 0,
        };
        run.check(&node, &actual, w).ok().unwrap();
        assert_eq!(
            run.bindings.get("$UNIQUE_IDENTIFIER_0"),
            Some(&Value::TextString("a".into()))
        );
        assert!(run.rules_applied.contains(&"locate-order"));
        assert!(run.rules_applied.contains(&"result-message"));
    }

    #[test]
    fn pending_answers_rebind_the_correlation_value() {
        let pending = r#"<ResponseMessage><BatchItem>
          <Operation type="Enumeration" value="Locate"/>
          <ResultStatus type="Enumeration" value="OperationPending"/>
          <AsynchronousCorrelationValue type="ByteString" value="$ASYNCHRONOUS_CORRELATION_VALUE"/>
          </BatchItem></ResponseMessage>"#;
        let node = xml::parse_node(pending).unwrap();
        let w = Window {
            sent: 0,
            received: 0,
        };
        let mut run = FileRun::new(&[]);
        let first =
            xml::from_xml(&pending.replace("$ASYNCHRONOUS_CORRELATION_VALUE", "01020304")).unwrap();
        let second =
            xml::from_xml(&pending.replace("$ASYNCHRONOUS_CORRELATION_VALUE", "0a0b0c0d")).unwrap();
        run.check(&node, &first, w).ok().unwrap();
        assert!(!run.rules_applied.contains(&"async-correlation-rebind"));
        // A second pending operation has its own value.
        run.check(&node, &second, w).ok().unwrap();
        assert_eq!(
            run.bindings.get("$ASYNCHRONOUS_CORRELATION_VALUE"),
            Some(&Value::ByteString(vec![0x0a, 0x0b, 0x0c, 0x0d]))
        );
        assert!(run.rules_applied.contains(&"async-correlation-rebind"));
        // Elsewhere (a Cancel's echo) the binding is checked as usual.
        let cancel = r#"<ResponseMessage><BatchItem>
          <Operation type="Enumeration" value="Cancel"/>
          <ResultStatus type="Enumeration" value="Success"/>
          <ResponsePayload>
          <AsynchronousCorrelationValue type="ByteString" value="$ASYNCHRONOUS_CORRELATION_VALUE"/>
          <CancellationResult type="Enumeration" value="Canceled"/>
          </ResponsePayload></BatchItem></ResponseMessage>"#;
        let node = xml::parse_node(cancel).unwrap();
        let stale =
            xml::from_xml(&cancel.replace("$ASYNCHRONOUS_CORRELATION_VALUE", "01020304")).unwrap();
        assert!(run.check(&node, &stale, w).is_err());
    }

    #[test]
    fn differences_have_readable_paths() {
        let xml = r#"<ResponseMessage><BatchItem>
          <Operation type="Enumeration" value="Get"/>
          <ResultStatus type="Enumeration" value="Success"/>
          <ResponsePayload>
            <Attribute><AttributeName type="TextString" value="State"/>
              <AttributeValue type="Enumeration" value="Active"/></Attribute>
            <Attribute><AttributeName type="TextString" value="State"/>
              <AttributeValue type="Enumeration" value="Active"/></Attribute>
          </ResponsePayload></BatchItem></ResponseMessage>"#;
        let node = xml::parse_node(xml).unwrap();
        let actual = xml::from_xml(&xml.replacen(
            "Active\"/></Attribute>\n          </",
            "Deactivated\"/></Attribute>\n          </",
            1,
        ))
        .unwrap();
        let mut run = FileRun::new(&[]);
        let w = Window {
            sent: 0,
            received: 0,
        };
        match run.check(&node, &actual, w) {
            Err(Failure::Diff(d)) => {
                assert_eq!(
                    d.path,
                    "ResponseMessage/BatchItem/ResponsePayload/Attribute[2]/AttributeValue"
                );
                assert_eq!(d.expected, "\"Active\"");
                assert_eq!(d.got, "\"Deactivated\"");
            }
            _ => panic!("expected a difference"),
        }
    }

    #[test]
    fn ciphertext_under_a_generated_key_binds_its_literal() {
        let w = Window {
            sent: 0,
            received: 0,
        };
        let resp = |op: &str, data: &str| {
            format!(
                r#"<ResponseMessage><BatchItem>
          <Operation type="Enumeration" value="{op}"/>
          <ResultStatus type="Enumeration" value="Success"/>
          <ResponsePayload>
            <UniqueIdentifier type="TextString" value="k"/>
            <Data type="ByteString" value="{data}"/>
          </ResponsePayload></BatchItem></ResponseMessage>"#
            )
        };
        let mut run = FileRun::new(&[]);
        // A registered key: ciphertext is compared exactly.
        let node = xml::parse_node(&resp("Encrypt", "fd912d10")).unwrap();
        let ours = xml::from_xml(&resp("Encrypt", "24ee5e59")).unwrap();
        assert!(run.check(&node, &ours, w).is_err());
        // A generated key: the literal binds to the server's ciphertext...
        run.generated.push(Value::TextString("k".into()));
        run.check(&node, &ours, w).ok().unwrap();
        assert!(run.rules_applied.contains(&"generated-key-ciphertext"));
        // ... of the same length only.
        let longer = xml::from_xml(&resp("Encrypt", "24ee5e5900")).unwrap();
        assert!(run.check(&node, &longer, w).is_err());
        // An Encrypt that echoes the request's Data is no ciphertext.
        run.requested_data = Some(Value::ByteString(vec![1, 2, 3, 4]));
        let echo = xml::from_xml(&resp("Encrypt", "01020304")).unwrap();
        assert!(run.check(&node, &echo, w).is_err());
        run.requested_data = None;
        // A later request that sends the literal sends the server's bytes.
        let req = xml::parse_node(
            r#"<RequestMessage><BatchItem>
          <Operation type="Enumeration" value="Decrypt"/>
          <RequestPayload>
            <UniqueIdentifier type="TextString" value="k"/>
            <Data type="ByteString" value="fd912d10"/>
          </RequestPayload></BatchItem></RequestMessage>"#,
        )
        .unwrap();
        let sent = run.request(&req, 0).unwrap();
        let data = sent
            .child(Tag::BATCH_ITEM)
            .and_then(|b| b.child(Tag::REQUEST_PAYLOAD))
            .and_then(|p| p.child(Tag::DATA))
            .unwrap();
        assert_eq!(data.value, Value::ByteString(vec![0x24, 0xee, 0x5e, 0x59]));
        // Its plaintext must then be exact ...
        let node = xml::parse_node(&resp("Decrypt", "01020304")).unwrap();
        let wrong = xml::from_xml(&resp("Decrypt", "0a0b0c0d")).unwrap();
        assert!(run.check(&node, &wrong, w).is_err());
        let right = xml::from_xml(&resp("Decrypt", "01020304")).unwrap();
        run.check(&node, &right, w).ok().unwrap();
        // ... while the recording server's own ciphertext, sent as is,
        // decrypts to anything under this server's key.
        let other = xml::parse_node(&req_text("99999999")).unwrap();
        run.request(&other, 0).unwrap();
        run.check(&node, &wrong, w).ok().unwrap();
    }

    fn req_text(data: &str) -> String {
        format!(
            r#"<RequestMessage><BatchItem>
          <Operation type="Enumeration" value="Decrypt"/>
          <RequestPayload>
            <UniqueIdentifier type="TextString" value="k"/>
            <Data type="ByteString" value="{data}"/>
          </RequestPayload></BatchItem></RequestMessage>"#
        )
    }
}
