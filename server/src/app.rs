//! Starting kmipd from a validated [`Config`]: key protector, store, TLS,
//! the KMIP listener, the metrics listener and certificate reloads. Used by
//! the `kmipd` binary and, in-process, by the end-to-end tests.

use crate::access::AccessPolicy;
use crate::audit::Audit;
use crate::catalog::Catalog;
use crate::config::{Config, StoreConfig};
use crate::keycache::KeyCache;
use crate::listener::{serve, ListenerOptions};
use crate::state::{Clock, Server, SystemClock};
use crate::store::{Backend, MemoryBackend, SledBackend};
use crate::tls::Reloadable;
use anyhow::Context;
use kmip::Limits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The KMIP address actually bound.
    pub addr: SocketAddr,
    /// The metrics address, when configured.
    pub metrics_addr: Option<SocketAddr>,
    /// Shared state.
    pub server: Arc<Server>,
    /// TLS, for reloads.
    pub tls: Arc<Reloadable>,
    shutdown: watch::Sender<bool>,
    listener: tokio::task::JoinHandle<()>,
    /// The job runner, the policy scheduler, the asynchronous-operation
    /// worker, the metrics listener and the certificate watcher.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// How long shutdown waits for the last holders of the server state.
    close_deadline: Duration,
    /// The sled directory, whose lock shutdown waits to see released.
    sled_dir: Option<PathBuf>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, waits for every task
    /// holding the server state, then closes the store: on return its files
    /// are released (sled's lock), so a new server can open the same data
    /// directory at once.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.listener.await;
        // The job runner stops at its next batch boundary; the job resumes
        // at the next start.
        for b in self.background {
            let _ = b.await;
        }
        // Connection tasks and HTTP requests end within a moment of the
        // signal (their request deadline bounds it); then ours is the last
        // reference and dropping it drops the catalog.
        let deadline = tokio::time::Instant::now() + self.close_deadline;
        while Arc::strong_count(&self.server) > 1 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("server state still in use after shutdown; the store stays open");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let backend = Arc::downgrade(self.server.catalog.backend());
        drop(self.server);
        // The group-commit flusher thread holds the backend until it sees
        // it is alone (within 200 ms); the store is closed when it exits.
        // sled's own I/O threads may hold its file a moment longer.
        while backend.strong_count() > 0 || !self.sled_dir.as_deref().is_none_or(sled_unlocked) {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("the store was not closed in time");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Objects sampled per master key version by [`check_master_keys`].
const MASTER_KEY_SAMPLES: usize = 3;

/// Checks that the key protector opens the store's keys: for every master
/// key version the store's objects are wrapped under, up to three objects
/// are unwrapped, and one that opens is enough (a single damaged record does
/// not stop kmipd). A version the protector lacks, or a master key that opens
/// none of them (the same version number from another key: another HSM key
/// label or token, another `master.key`), is an error naming the version.
pub fn check_master_keys(
    catalog: &Catalog,
    protector: &dyn kmipd_hsm::KeyProtector,
) -> anyhow::Result<()> {
    use crate::catalog::field;
    use std::collections::BTreeMap;
    let prefix = format!("{}\0", field::MASTER_VERSION).into_bytes();
    let mut samples: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    catalog
        .backend()
        .scan(crate::store::Table::Index, &prefix, &mut |k, _| {
            // `mv \0 <version> \0 <id>`
            let rest = String::from_utf8_lossy(&k[prefix.len()..]);
            if let Some((v, id)) = rest.split_once('\0') {
                if let Ok(v) = v.parse::<u32>() {
                    let ids = samples.entry(v).or_default();
                    if ids.len() < MASTER_KEY_SAMPLES {
                        ids.push(id.to_owned());
                    }
                }
            }
            true
        })
        .context("reading the store's master key versions")?;
    for (version, ids) in samples {
        let mut last = None;
        for id in ids {
            let Some(m) = catalog.get(&id)?.and_then(|o| o.material) else {
                continue;
            };
            match kmipd_hsm::WrappedKey::from_bytes(&m.wrapped)
                .and_then(|w| protector.unprotect(id.as_bytes(), &w))
            {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        match last {
            None => {}
            Some(kmipd_hsm::Error::UnknownVersion { .. }) => anyhow::bail!(
                "the store holds keys wrapped under master key version {version}, which the \
                 {} key protector does not have: configure the master key the store was \
                 written with (see docs/hsm.md)",
                protector.backend()
            ),
            Some(kmipd_hsm::Error::IntegrityFailure) => anyhow::bail!(
                "master key version {version} of the {} key protector does not open the \
                 store's keys: it is another master key than the one the store was written \
                 with (another HSM token or key label, or another master.key); refusing to \
                 start rather than fail every Get (see docs/hsm.md)",
                protector.backend()
            ),
            Some(e @ kmipd_hsm::Error::WrongBackend { .. }) => {
                anyhow::bail!("the store's keys cannot be opened: {e} (see docs/hsm.md)")
            }
            // The HSM failing a call is not proof of a wrong key.
            Some(e) => tracing::warn!(
                version,
                error = %e,
                "could not check that the master key opens the store's keys"
            ),
        }
    }
    Ok(())
}

/// Whether no one holds sled's lock on the database in `dir` (the advisory
/// lock sled takes with `fs2` on its `db` file).
fn sled_unlocked(dir: &std::path::Path) -> bool {
    use fs2::FileExt;
    match std::fs::File::open(dir.join("db")) {
        // Released again when the probe's file closes.
        Ok(f) => f.try_lock_exclusive().is_ok(),
        Err(_) => true,
    }
}

/// Opens the store backend of `config`.
pub fn open_backend(config: &Config) -> anyhow::Result<Arc<dyn Backend>> {
    Ok(match &config.store {
        StoreConfig::Sled(path) => {
            std::fs::create_dir_all(path)
                .with_context(|| format!("creating {}", path.display()))?;
            Arc::new(
                SledBackend::open(path)
                    .with_context(|| format!("opening the store in {}", path.display()))?,
            )
        }
        StoreConfig::Memory => Arc::new(MemoryBackend::new()),
    })
}

/// Starts kmipd; `clock` replaces the system clock in tests.
pub async fn start(config: &Config, clock: Option<Arc<dyn Clock>>) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&config.server.data_dir)
        .with_context(|| format!("creating {}", config.server.data_dir.display()))?;
    let hsm_cfg = config.hsm.clone();
    let protector = tokio::task::spawn_blocking(move || kmipd_hsm::open(&hsm_cfg))
        .await?
        .context("opening the key protector")?;
    let backend = open_backend(config)?;
    let catalog = tokio::task::spawn_blocking(move || Catalog::open(backend))
        .await?
        .context("opening the store")?;
    // Another master key than the store's would fail every Get: refuse to
    // start instead, saying why.
    let (catalog, protector) = tokio::task::spawn_blocking(move || {
        check_master_keys(&catalog, protector.as_ref()).map(|()| (catalog, protector))
    })
    .await??;
    let audit = match &config.log.audit_file {
        Some(p) => {
            Audit::to_file(p).with_context(|| format!("opening the audit log {}", p.display()))?
        }
        None => Audit::to_log(),
    };
    let mut server = Server::new(
        catalog,
        protector,
        KeyCache::new(
            config.cache.enabled,
            config.cache.max_entries,
            config.cache.ttl,
        ),
        AccessPolicy::new(config.identities.clone(), config.access.clone()),
        clock.unwrap_or_else(|| Arc::new(SystemClock)),
        audit,
        config.server.vendor_identification.clone(),
    );
    server.groups = crate::groups::Groups::new(config.object_groups.clone());
    let server = Arc::new(server);
    let tls =
        Arc::new(Reloadable::new(config.tls.clone()).context("loading the TLS certificates")?);
    // The server was built just above; nothing else has set it.
    let _ = server.admin.tls.set(tls.clone());
    // Expiry metrics and warnings from the start, not only after a reload.
    publish_expiries(&server, &tls);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let opts = ListenerOptions {
        max_connections: config.server.max_connections,
        handshake_timeout: config.server.handshake_timeout,
        idle_timeout: config.server.idle_timeout,
        request_timeout: config.server.request_timeout,
        shutdown_grace: config.server.shutdown_grace,
        limits: Limits {
            max_message_size: config.server.max_message_size,
            ..Limits::default()
        },
    };
    let metrics_addr = match config.metrics_listen {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding metrics {a}"))?;
            let m = l.local_addr()?;
            Some((
                m,
                tokio::spawn(crate::http::serve(l, server.clone(), rx.clone())),
            ))
        }
        None => None,
    };
    let watcher = tokio::spawn(watch_files(tls.clone(), server.clone(), rx.clone()));
    let job_options = crate::jobs::rotation::Options {
        max_per_sec: config.policies.rotation_max_keys_per_sec,
        ..Default::default()
    };
    let mut background = vec![
        crate::jobs::spawn(server.clone(), job_options, rx.clone()),
        crate::jobs::scheduler::Scheduler::new(server.clone(), config.policies.clone())
            .spawn(rx.clone()),
        crate::ops::pending::spawn(server.clone(), rx.clone()),
        watcher,
    ];
    let metrics_addr = metrics_addr.map(|(m, task)| {
        background.push(task);
        m
    });
    let close_deadline =
        config.server.shutdown_grace + config.server.request_timeout + Duration::from_secs(5);
    let listener = tokio::spawn(serve(listener, server.clone(), tls.clone(), opts, rx));
    Ok(Running {
        addr,
        metrics_addr,
        server,
        tls,
        shutdown,
        listener,
        background,
        close_deadline,
        sled_dir: match &config.store {
            StoreConfig::Sled(p) => Some(p.clone()),
            StoreConfig::Memory => None,
        },
    })
}

fn stamp(paths: &[PathBuf], dir: &std::path::Path) -> Vec<Option<SystemTime>> {
    let mut v: Vec<Option<SystemTime>> = paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect();
    // The trusted-CA folders: any file added, removed or changed.
    let cas = dir.join("trusted-cas");
    if let Ok(roles) = std::fs::read_dir(&cas) {
        for r in roles.flatten() {
            if let Ok(files) = std::fs::read_dir(r.path()) {
                for f in files.flatten() {
                    v.push(f.metadata().and_then(|m| m.modified()).ok());
                }
            }
        }
    }
    v
}

/// Polls the certificate files every two seconds and reloads TLS when one
/// changes (SIGHUP does the same at once, see the binary).
/// Exports certificate expiries as metrics and warns of those within 30 days.
pub fn publish_expiries(server: &Server, tls: &Reloadable) {
    let state = tls.current();
    crate::tls::warn_expiring(&state.expiries, server.clock.now());
    server.metrics.set_certificates(
        state
            .expiries
            .iter()
            .map(|e| (e.kind.to_owned(), e.name.clone(), e.not_after))
            .collect(),
    );
}

async fn watch_files(
    tls: Arc<Reloadable>,
    server: Arc<Server>,
    mut shutdown: watch::Receiver<bool>,
) {
    let files = tls.watched_files();
    let mut last = stamp(&files, tls.pki_dir());
    // The state whose expiries are published (a SIGHUP reload swaps it).
    let mut published = tls.current();
    let mut ticks: u64 = 0;
    loop {
        ticks += 1;
        // Daily expiry warnings (a tick is two seconds).
        if ticks % 43_200 == 0 {
            publish_expiries(&server, &tls);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now = stamp(&files, tls.pki_dir());
        if now != last {
            last = now;
            match tls.reload() {
                Ok(()) => tracing::info!("certificates changed: TLS configuration reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "certificates changed but cannot be loaded; keeping the old ones")
                }
            }
        }
        let current = tls.current();
        if !Arc::ptr_eq(&current, &published) {
            publish_expiries(&server, &tls);
            published = current;
        }
    }
}
