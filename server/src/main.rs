//! `hotline-server`: run the server, or make the first admin invite.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hotline_proto::Role;
use hotline_proto::invite::parse_lifetime;
use hotline_proto::time::date_time;
use hotline_server::log::keys::{self, KeySource, MASTER_KEY_ENV, MASTER_PASSPHRASE_ENV};
use hotline_server::logging;
use hotline_server::store::{self, Create, certificate};
use hotline_server::{Config, DataDir, RunningServer};
use zeroize::Zeroizing;

/// The hotline server: a secure emergency line between human-rights
/// defenders and their duty team.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (see docs/operations.md).
    #[arg(short, long, global = true, env = "HOTLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the store and the TLS key (default: ./hotline-data).
    #[arg(short, long, global = true, env = "HOTLINE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// UDP address to listen on (default: 127.0.0.1:4433, this machine only).
    #[arg(short, long, global = true)]
    listen: Option<std::net::SocketAddr>,
    /// host:port that clients connect to, written into invites.
    #[arg(long, global = true)]
    public_addr: Option<String>,
    /// TLS server name for the development certificate and invites.
    #[arg(long, global = true)]
    server_name: Option<String>,
    /// File holding the store's master key (32 bytes or 64 hex digits).
    /// Keep it on other media than the data directory.
    #[arg(long, global = true, env = "HOTLINE_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Ask for the master passphrase at the terminal.
    #[arg(long, global = true)]
    passphrase: bool,
    /// Serve a (damaged) store read-only, up to its last sound record:
    /// reads are answered, every write is refused, and no byte of the
    /// data directory changes. A recovery choice; see docs/operations.md.
    #[arg(long, global = true)]
    read_only: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Make a one-time invite on the server host. Stop the server first;
    /// with a server running, admins use `hotline invite` instead.
    Invite {
        /// defender, officer, coordinator or admin.
        #[arg(long)]
        role: Role,
        /// How long the invite stays valid: 90s, 30m, 24h, 7d (max 30d).
        #[arg(long, default_value = "24h", value_parser = parse_lifetime)]
        ttl: u64,
    },
    /// Print the certificate pin that clients check, after checking the
    /// certificate against the store (give the master key).
    Fingerprint,
    /// Record the TLS certificate now in `<data_dir>/tls/` as the store's,
    /// after replacing it on purpose (clients pinned to the old one must
    /// be re-invited). Stop the server first.
    AcceptNewCert,
    /// Create the data directory, its store and TLS certificate, and stop.
    Init {
        /// Generate a new random master key into this file first (refuses
        /// to overwrite). Put it on other media than the data directory.
        #[arg(long)]
        generate_key_file: Option<PathBuf>,
    },
    /// Check the whole store: key, every record, the hash chain and every
    /// signed checkpoint. Exits non-zero naming the first bad record.
    Verify {
        /// A head line kept earlier (printed by `verify` and `checkpoint`):
        /// fails if the store is behind it or diverges from it, which
        /// detects a rollback of chain.head and the log together.
        #[arg(long, visible_alias = "expect-head", value_name = "LINE")]
        checkpoint: Option<String>,
        /// Where a store of the earlier layout (store/) is copied to be
        /// read (removed afterwards). Default: the directory holding the
        /// data directory, on its filesystem.
        #[arg(long, value_name = "DIR")]
        tmp_dir: Option<PathBuf>,
    },
    /// Rebuild the derived state from the log and save a fresh snapshot.
    Rebuild,
    /// After `verify` named damage that no backup can repair: give up
    /// everything from the first bad record on, keeping a copy of it in
    /// `<data_dir>/recovered-<time>/`, then verify. Stop the server first.
    Recover {
        /// Required: copy everything from the first bad frame on aside,
        /// then cut the log there.
        #[arg(long)]
        truncate_after_copy: bool,
        /// Only say what would be given up (records, their times, alerts,
        /// messages, check-ins); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask: cut as the summary says. Without it, the summary is
        /// printed and a terminal asks to type `truncate`; without a
        /// terminal, nothing is changed.
        #[arg(long, conflicts_with = "dry_run")]
        yes: bool,
    },
    /// Print the newest signed checkpoint, to keep off the server. With
    /// the server running: the newest one it signed (in `chain.head`, at
    /// most about a second behind its last acknowledged write, also when
    /// it has gone quiet); stopped: the store is verified and the newest
    /// one in `chain.head` printed (read-only: nothing is signed or
    /// written).
    Checkpoint,
    /// Copy the store into a new directory and verify the copy. Works
    /// while the server runs; changes nothing in the data directory.
    Backup {
        /// The new directory for the backup (must not exist, or be empty).
        #[arg(long)]
        to: PathBuf,
    },
    /// Make a new data directory (`-d`) from a backup, and verify it. Give
    /// the master key the store was made with.
    Restore {
        /// The backup's directory (written by `hotline-server backup`).
        #[arg(long)]
        from: PathBuf,
    },
}

/// How long the first-run admin invite stays valid.
const BOOTSTRAP_INVITE_TTL: u64 = 24 * 3600;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    // No peer address at any level: see `hotline_server::logging`.
    // Colours only on a terminal: a log file gets plain text.
    tracing_subscriber::util::SubscriberInitExt::init(logging::subscriber(
        logging::filter_from_env(),
        std::io::stderr,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    ));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// Output piped into `head` or a pager that closes early (`verify | head
/// -2`) ends the command quietly with the status of SIGPIPE, as for any
/// Unix tool, instead of a panic message: Rust ignores SIGPIPE, so the
/// next print fails, and the workspace forbids the unsafe code that would
/// restore it (the same as the `hotline` client).
fn quiet_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(l) = cli.listen {
        config.listen = l;
    }
    if let Some(p) = &cli.public_addr {
        config.public_addr = Some(p.clone());
    }
    if let Some(n) = &cli.server_name {
        config.server_name = n.clone();
    }
    config.validate()?;
    Ok(config)
}

/// Where the master key comes from: a key file (flag or configuration),
/// `HOTLINE_MASTER_KEY`, `HOTLINE_MASTER_PASSPHRASE`, a prompt
/// (`--passphrase`), or, for a development server on loopback only, a
/// generated key file beside the data directory.
fn key_source(cli: &Cli, config: &Config, new_store: bool) -> anyhow::Result<KeySource> {
    if let Some(path) = cli
        .master_key_file
        .clone()
        .or_else(|| config.master_key_file.clone())
    {
        warn_if_others_can_read(&path);
        return Ok(KeySource::File(path));
    }
    if let Ok(hex) = std::env::var(MASTER_KEY_ENV) {
        return Ok(KeySource::Hex(Zeroizing::new(hex)));
    }
    if let Ok(pass) = std::env::var(MASTER_PASSPHRASE_ENV) {
        return Ok(KeySource::Passphrase(Zeroizing::new(pass)));
    }
    if cli.passphrase {
        let pass = Zeroizing::new(
            rpassword::prompt_password("Master passphrase: ").with_context(|| {
                format!("cannot ask for the passphrase (no terminal?); set {MASTER_PASSPHRASE_ENV}")
            })?,
        );
        if new_store {
            let again = Zeroizing::new(rpassword::prompt_password(
                "Repeat the master passphrase: ",
            )?);
            if again != pass {
                anyhow::bail!("the two passphrases differ; nothing was created");
            }
        }
        return Ok(KeySource::Passphrase(pass));
    }
    if config.is_dev() && config.insecure_dev_master_key {
        let path = config.insecure_dev_key_path();
        if !path.exists() && keys::exists(&config.data_dir) {
            // The store was not made with the development key: name what
            // it needs rather than the development key file.
            anyhow::bail!("{}", keys::needed_key(&config.data_dir));
        }
        // Only a command that makes the store makes its key: a verify,
        // backup or fingerprint creates nothing.
        if !path.exists() && new_store {
            keys::generate_key_file(&path)?;
        }
        eprintln!(
            "WARNING: development mode: the master key is {}, beside the data (insecure_dev_master_key). \
             Do not keep real cases on this server.",
            path.display()
        );
        warn_if_others_can_read(&path);
        return Ok(KeySource::File(path));
    }
    Err(keys::KeyError::Missing.into())
}

/// A master key file that group or others may read is used, with a loud
/// warning naming the file, its mode and the fix: refusing would stop a
/// server (and an SOS) over something the operator can fix at leisure.
fn warn_if_others_can_read(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "WARNING: the master key file {} has mode {mode:04o}: it is readable by group or \
                 others, and whoever reads it can open the whole store. Fix it with: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    let data_dir = config.data_dir.clone();
    // The store a key is checked against: a restore's is the backup's.
    let store_dir = match &cli.command {
        Some(Command::Restore { from }) => from.clone(),
        _ => config.data_dir.clone(),
    };
    let key = key_description(&cli, &config);
    run_command(cli, config)
        .await
        .map_err(|e| name_the_lock(e, &data_dir))
        .map_err(|e| name_the_key(e, &key, &store_dir))
}

/// Which key was given, in words, as [`key_source`] chooses it (a file's
/// path, never a key).
fn key_description(cli: &Cli, config: &Config) -> String {
    if let Some(path) = cli
        .master_key_file
        .clone()
        .or_else(|| config.master_key_file.clone())
    {
        return format!("the key file {}", path.display());
    }
    if std::env::var_os(MASTER_KEY_ENV).is_some() {
        return format!("the key in {MASTER_KEY_ENV}");
    }
    if std::env::var_os(MASTER_PASSPHRASE_ENV).is_some() || cli.passphrase {
        return "the passphrase".to_owned();
    }
    format!(
        "the development key file {}",
        config.insecure_dev_key_path().display()
    )
}

/// A wrong master key is named (the file, or where it came from) with the
/// store it does not open.
fn name_the_key(e: anyhow::Error, key: &str, store_dir: &std::path::Path) -> anyhow::Error {
    let wrong = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<keys::KeyError>(),
            Some(keys::KeyError::WrongKey)
        ) || matches!(
            c.downcast_ref::<store::OpenError>(),
            Some(store::OpenError::Key(keys::KeyError::WrongKey))
        )
    });
    if !wrong {
        return e;
    }
    anyhow::anyhow!(
        "wrong master key: {key} does not open the store in {} (or its header was altered). \
         Nothing was changed",
        store_dir.display()
    )
}

/// Whether `cause` says that another process holds the data directory's
/// lock (or a lock on the store's files).
fn is_lock_held(cause: &(dyn std::error::Error + 'static)) -> bool {
    use hotline_server::log::LogError;
    use hotline_server::log::engine::EngineError;
    use store::{OpenError, StoreError};
    matches!(cause.downcast_ref::<StoreError>(), Some(StoreError::Locked))
        || matches!(
            cause.downcast_ref::<OpenError>(),
            Some(
                OpenError::State(StoreError::Locked)
                    | OpenError::Log(LogError::Engine(EngineError::Locked))
            )
        )
        || matches!(
            cause.downcast_ref::<LogError>(),
            Some(LogError::Engine(EngineError::Locked))
        )
        || matches!(
            cause.downcast_ref::<EngineError>(),
            Some(EngineError::Locked)
        )
}

/// A refusal because the data directory's lock is held names the lock
/// file and how to find the process holding it: it may be a running
/// server, or any tool (an operator's `flock`, a backup tool).
fn name_the_lock(e: anyhow::Error, data_dir: &std::path::Path) -> anyhow::Error {
    if !e.chain().any(is_lock_held) {
        return e;
    }
    let lock = data_dir.join(hotline_server::store::LOCK_FILE);
    anyhow::anyhow!(
        "the data directory {} is held by another process (a running hotline-server, \
         or a tool holding {}); find it with `fuser -v {}` or `lsof {}`, \
         and stop it (or wait for it) first",
        data_dir.display(),
        lock.display(),
        lock.display(),
        lock.display()
    )
}

/// Whether `dir` holds no entry at all (unreadable counts as not empty:
/// the command that follows names why it cannot read it).
fn is_empty_dir(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

async fn run_command(cli: Cli, config: Config) -> anyhow::Result<()> {
    let command = cli.command.as_ref().unwrap_or(&Command::Serve);
    let new_store = !keys::exists(&config.data_dir);
    if matches!(
        command,
        Command::Verify { .. } | Command::Recover { .. } | Command::Backup { .. }
    ) && !config.data_dir.is_dir()
    {
        // Before choosing a key: nothing may be created for a verify.
        return Err(keys::KeyError::DataDirMissing(config.data_dir.clone()).into());
    }
    // Only these may make a store (and so a development key file);
    // everything else reads, or works on a store that is already there.
    let makes_store = match command {
        Command::Serve => !cli.read_only,
        Command::Invite { .. } | Command::Init { .. } => true,
        _ => false,
    };
    if !makes_store
        && !matches!(command, Command::Restore { .. })
        && config.data_dir.is_dir()
        && is_empty_dir(&config.data_dir)
    {
        anyhow::bail!(
            "no store in {} (it is empty): check --data-dir, or make one with `hotline-server init`",
            config.data_dir.display()
        );
    }
    match command {
        Command::Fingerprint if config.tls_cert.is_some() => {
            // A configured certificate: the operator's own file.
            let pin = hotline_server::endpoint::tls::TlsIdentity::certificate_pin(&config)?;
            println!("{pin}");
            return Ok(());
        }
        Command::Fingerprint => {
            // Reads only, and works beside a running server; the
            // certificate is checked against the store, so a swapped
            // certificate is never handed out.
            if !keys::exists(&config.data_dir) {
                anyhow::bail!(
                    "no store in {} yet: run `hotline-server init` or start the server once",
                    config.data_dir.display()
                );
            }
            let key = key_source(&cli, &config, false)?;
            let (_, store_keys) = keys::open(&config.data_dir, &key)?;
            // The log's record when no server holds the store (a running
            // server checked it at its start): the files only otherwise.
            let log =
                certificate::read_log(&config.data_dir, keys::open(&config.data_dir, &key)?.1)
                    .unwrap_or(certificate::FromLog::UNREAD);
            let checked = certificate::check(&config.data_dir, &store_keys, log)?
            .with_context(|| {
                format!(
                    "no TLS certificate in {} (cert.pem and key.sealed): a store that has served \
                     had one, so restore tls/ from a backup, or run `hotline-server \
                     accept-new-cert` and start the server to make a new one (then re-invite \
                     every device); a store never started makes one on its first start",
                    config.data_dir.join("tls").display()
                )
            })?;
            if !checked.bound {
                eprintln!(
                    "note: tls/cert.bound is missing; the certificate's key is this store's. \
                     The next start records it if the store predates the record, and refuses \
                     if the store's log shows the record was removed"
                );
            }
            println!("{}", checked.pin);
            return Ok(());
        }
        Command::Init {
            generate_key_file: Some(path),
        } => {
            if !new_store {
                anyhow::bail!("{} already holds a store", config.data_dir.display());
            }
            keys::generate_key_file(path)?;
            println!(
                "wrote a new master key to {}: keep it off this disk, and back it up",
                path.display()
            );
        }
        _ => {}
    }
    let key = match command {
        Command::Init {
            generate_key_file: Some(path),
        } => KeySource::File(path.clone()),
        Command::Restore { from } => {
            // The backup's key: never a new development key for the target.
            let mut at_backup = config.clone();
            at_backup.data_dir = from.clone();
            key_source(&cli, &at_backup, false)?
        }
        _ => key_source(&cli, &config, new_store && makes_store)?,
    };
    if cli.read_only && !matches!(command, Command::Serve) {
        anyhow::bail!(
            "--read-only is for serving only (hotline-server --read-only, or serve --read-only)"
        );
    }
    match command {
        Command::Serve if cli.read_only => serve_read_only(config, &key).await,
        Command::Serve => serve(config, &key).await,
        Command::Init { .. } => {
            if !new_store {
                anyhow::bail!("{} already holds a store", config.data_dir.display());
            }
            let data = DataDir::open(&config, &key)?;
            data.store.close()?;
            println!("created the store in {}", config.data_dir.display());
            println!("certificate pin: {}", data.tls.pin);
            Ok(())
        }
        Command::Verify {
            checkpoint,
            tmp_dir,
        } => {
            let report = store::verify_store_in(
                &config.data_dir,
                &key,
                config.limits.store_cache_bytes,
                checkpoint.as_deref(),
                tmp_dir.as_deref(),
            )?;
            let v = &report.verified;
            println!(
                "store verified: {} records (the last is record {}), {} signed checkpoints, {} records shredded",
                v.records, v.head_seq, v.checkpoints, v.shredded
            );
            // Both positions in words: the log's newest checkpoint frame
            // lags chain.head's, which is what the chain was checked to reach.
            let in_log = match v.last_checkpoint_seq {
                0 => "none yet".to_owned(),
                seq => format!("record {seq}"),
            };
            match &report.head {
                Some(cp) => println!(
                    "newest signed checkpoint in the log: {in_log}; chain.head: record {}, signed {} \
                     (the server signs one every second while it writes, every 1,000 records, and at shutdown)",
                    cp.seq,
                    date_time(cp.time)
                ),
                None => {
                    println!("newest signed checkpoint in the log: {in_log}; chain.head: none yet")
                }
            }
            if let Some(line) = &report.head_line {
                println!(
                    "head line (keep a copy off this machine; `verify --expect-head LINE` later \
                     detects a rollback to before it):"
                );
                println!("{line}");
            }
            if let Some(seq) = report.external_checkpoint {
                println!(
                    "the expected head (record {seq}) is in the log and matches: no rollback to before it"
                );
            }
            if let Some(torn) = report
                .torn_tail
                .as_ref()
                .filter(|_| store::in_use(&config.data_dir))
            {
                println!(
                    "{} ends in a record being written at this moment ({} bytes at offset {}): \
                     not part of what was verified",
                    torn.segment, torn.bytes, torn.offset
                );
            } else if let Some(torn) = report.torn_tail {
                println!(
                    "{} ends in an incomplete write of {} bytes at offset {} (never acknowledged): \
                     the next start copies it aside and cuts it off",
                    torn.segment, torn.bytes, torn.offset
                );
            }
            if let Some(dir) = report.old_copy_in.as_ref().filter(|_| report.old_layout) {
                println!(
                    "the store is in the earlier layout (store/), verified through a temporary copy \
                     in {} (removed again): the next start migrates it to log/",
                    dir.display()
                );
            }
            if config.tls_cert.is_none() {
                let (_, store_keys) = keys::open(&config.data_dir, &key)?;
                let log =
                    certificate::read_log(&config.data_dir, keys::open(&config.data_dir, &key)?.1)
                        .unwrap_or(certificate::FromLog {
                            has_records: v.records > 0,
                            record: None,
                        });
                match certificate::check(&config.data_dir, &store_keys, log)? {
                    Some(c) if c.bound => println!(
                        "TLS certificate verified: pin {} (the one recorded in the store)",
                        c.pin
                    ),
                    Some(c) => println!(
                        "TLS certificate: pin {}, its key matches; tls/cert.bound is missing \
                         (the next start records it if the store predates the record, and \
                         refuses if the store's log shows it was removed)",
                        c.pin
                    ),
                    None if v.records > 0 => println!(
                        "no TLS certificate: `accept-new-cert` let it go; the next start makes \
                         a new one (re-invite every device)"
                    ),
                    None => println!("no TLS certificate yet (the first start makes one)"),
                }
            }
            Ok(())
        }
        Command::Recover {
            truncate_after_copy,
            dry_run,
            yes,
        } => {
            if !truncate_after_copy {
                anyhow::bail!(
                    "recover gives up records: say so with --truncate-after-copy \
                     (first try restoring the damaged file from a backup; see docs/operations.md)"
                );
            }
            let Some(plan) = store::plan_recovery(&config.data_dir, &key)? else {
                let report = store::verify_store(
                    &config.data_dir,
                    &key,
                    config.limits.store_cache_bytes,
                    None,
                )?;
                println!(
                    "nothing to recover: the store verifies with {} records",
                    report.verified.records
                );
                return Ok(());
            };
            print_recovery_plan(&plan);
            if *dry_run {
                println!("dry run: nothing was changed");
                return Ok(());
            }
            if !*yes {
                if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                    anyhow::bail!(
                        "not confirmed: nothing was changed (no terminal to ask at; \
                         add --yes to cut as above, or --dry-run to only see this summary)"
                    );
                }
                print!("Type truncate to cut the log as above (anything else changes nothing): ");
                std::io::Write::flush(&mut std::io::stdout())?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if answer.trim() != "truncate" {
                    anyhow::bail!("not confirmed: nothing was changed");
                }
            }
            let report = store::recover_truncate_after_copy(
                &config.data_dir,
                &key,
                config.limits.store_cache_bytes,
                &plan,
            )?;
            match (report.first_cut, report.copied_to.as_ref()) {
                (Some(_), None) if plan.head_unusable => println!(
                    "rewrote chain.head from the log's newest checkpoint (there was no file to \
                     keep aside, and nothing was cut); the store verifies with {} records",
                    report.kept
                ),
                (Some(_), Some(to)) if plan.head_unusable => println!(
                    "rewrote chain.head from the log's newest checkpoint; the old chain.head \
                     (and any incomplete write) was copied to {}; the store verifies with {} records",
                    to.display(),
                    report.kept
                ),
                (Some(seq), Some(to)) => println!(
                    "cut the log before record {seq}; everything from there on was copied to {}; \
                     the store verifies with {} records",
                    to.display(),
                    report.kept
                ),
                _ => println!(
                    "nothing to recover: the store verifies with {} records",
                    report.kept
                ),
            }
            if let Some(to) = &report.copied_to {
                store::keep_head_written_by_recovery(&config.data_dir, to)?;
                print_undo(&store::undo_commands(&config.data_dir, &plan, to));
            }
            Ok(())
        }
        Command::Rebuild => {
            let data = DataDir::open_with(&config, &key, Create::Never)?;
            let n = data.store.rebuild()?;
            data.store.close()?;
            println!("rebuilt the state from {n} log records and saved a snapshot");
            Ok(())
        }
        Command::Backup { to } => {
            if !dir_is_empty(to) {
                anyhow::bail!(
                    "{} is not empty: a backup goes into a new directory; give a path that does \
                     not exist. Nothing was changed",
                    to.display()
                );
            }
            let report = store::backup(&config.data_dir, &key, to).with_context(|| {
                let mut partial = to.clone().into_os_string();
                partial.push(".partial");
                let partial = PathBuf::from(partial);
                format!(
                    "no backup was taken in {}{}",
                    to.display(),
                    if partial.exists() {
                        String::new()
                    } else {
                        format!(" (its unverified copy {} was removed)", partial.display())
                    }
                )
            })?;
            print_backup("backup", &report);
            if let Some(line) = &report.head_line {
                println!(
                    "head line of this backup (keep it with the backup: `verify --expect-head LINE` \
                     passes on a store restored from it):"
                );
                println!("{line}");
            }
            if let Some(reason) = &report.certificate_missing {
                anyhow::bail!(
                    "the log is backed up and verified in {}, but it holds no TLS certificate \
                     although its log records one: a server restored from it starts only after \
                     `hotline-server accept-new-cert` (a new certificate: every device must then \
                     be re-invited). ({reason})",
                    report.dir.display()
                );
            }
            if let Some(reason) = &report.certificate_not_taken {
                anyhow::bail!(
                    "the log is backed up and verified in {}, but the TLS certificate in {} does not \
                     match the store's record: the backup's tls/ was NOT taken (a server restored \
                     from it starts only after `hotline-server accept-new-cert`, with a new \
                     certificate: every device must then be re-invited). Fix it with \
                     `hotline-server accept-new-cert` if the certificate was replaced on purpose, or \
                     restore tls/ from an earlier backup, then back up again. {reason}",
                    report.dir.display(),
                    config
                        .data_dir
                        .join(store::certificate::CERT_FILE)
                        .display()
                );
            }
            Ok(())
        }
        Command::Restore { from } => {
            if !store::in_use(&config.data_dir) && !dir_is_empty(&config.data_dir) {
                anyhow::bail!(
                    "{} is not empty: restore makes a new data directory; give a path that does \
                     not exist. Nothing was changed",
                    config.data_dir.display()
                );
            }
            let report = store::restore(from, &key, &config.data_dir)?;
            print_backup("restored", &report);
            if let Some(reason) = &report.certificate_missing {
                anyhow::bail!(
                    "restored and verified the log in {new}, but it has no TLS certificate: a \
                     server will not start on it until `hotline-server accept-new-cert -d {new}` \
                     is run, which makes a new certificate — every device must then be \
                     re-invited; or copy tls/ from an earlier backup taken after the last \
                     certificate change into {new}. ({reason})",
                    new = config.data_dir.display()
                );
            }
            println!(
                "start the server on {} with the same master key: it rebuilds its snapshot cache and serves",
                config.data_dir.display()
            );
            Ok(())
        }
        Command::Checkpoint => {
            if let Some(cp) = store::running_checkpoint(&config.data_dir, &key)? {
                // A server holds the store: its newest signed checkpoint.
                eprintln!(
                    "the server is running: this is the newest checkpoint it signed (record {}, {})",
                    cp.0.seq,
                    date_time(cp.0.time)
                );
                println!("{}", cp.1);
                return Ok(());
            }
            // Stopped: read-only. The store is verified (nothing is
            // written: no checkpoint signed, no snapshot saved) and the
            // newest signed checkpoint, chain.head's, printed.
            let report = store::verify_store_in(
                &config.data_dir,
                &key,
                config.limits.store_cache_bytes,
                None,
                None,
            )?;
            let (Some(cp), Some(line)) = (&report.head, &report.head_line) else {
                anyhow::bail!("the store has no signed checkpoint yet: nothing to print");
            };
            eprintln!(
                "the server is stopped: the store verified, and this is its newest signed \
                 checkpoint, in chain.head (record {}, {}); nothing was written",
                cp.seq,
                date_time(cp.time)
            );
            if report.verified.head_seq > cp.seq {
                eprintln!(
                    "the log goes on to record {} (written after it, without a clean stop): \
                     a start signs a checkpoint of it",
                    report.verified.head_seq
                );
            }
            println!("{line}");
            Ok(())
        }
        Command::Fingerprint => Ok(()),
        Command::AcceptNewCert => {
            let accepted =
                certificate::accept_new(&config.data_dir, &key, config.limits.store_cache_bytes)
                    .map_err(|e| match e {
                        certificate::AcceptError::Open(e) => anyhow::Error::from(e),
                        certificate::AcceptError::Cert(e) => e.into(),
                    })?;
            match accepted {
                certificate::Accepted::Recorded {
                    before: Some(old),
                    now,
                } if old == now => println!("the certificate was already the store's: pin {now}"),
                certificate::Accepted::Recorded {
                    before: Some(old),
                    now,
                } => println!(
                    "recorded the new certificate: pin {now} (was {old}); \
                     re-invite every device: their pinned certificate no longer matches"
                ),
                certificate::Accepted::Recorded { before: None, now } => {
                    println!("recorded the certificate: pin {now}")
                }
                certificate::Accepted::NextStartMakesOne { before } => println!(
                    "no certificate in {}: the record{} was removed; the next start makes a new \
                     certificate and prints its pin; re-invite every device",
                    config.data_dir.join("tls").display(),
                    before.map(|p| format!(" of {p}")).unwrap_or_default()
                ),
            }
            Ok(())
        }
        Command::Invite { role, ttl } => {
            let (role, ttl) = (*role, *ttl);
            let data = DataDir::open_with(&config, &key, Create::IfMissing(Default::default()))?;
            let invite = data
                .create_invite(&config, role, ttl)
                .await
                .context("cannot create the invite")?;
            println!(
                "One-time {role} invite, valid for {}, until {}:",
                human_ttl(ttl),
                date_time(invite.expires_at)
            );
            if role == Role::Admin {
                println!("(it replaces any admin invite this server printed before)");
            }
            println!();
            println!("  {invite}");
            println!();
            println!("On the new device: hotline enroll '{invite}'");
            // The invite names where devices connect: from --public-addr,
            // -l or the configuration file, as the server is given them.
            let addr = config.advertised_addr(config.listen);
            let from = if cli.public_addr.is_some() {
                "--public-addr"
            } else if cli.listen.is_some() {
                "--listen"
            } else if cli.config.is_some() {
                "the configuration file"
            } else {
                "the default: no -c, -l or --public-addr given"
            };
            eprintln!(
                "the invite tells devices to connect to {addr} ({from}); if the server runs \
                 elsewhere, give invite the same -c/--config, -l/--listen or --public-addr as \
                 the server"
            );
            data.store.close()?;
            Ok(())
        }
    }
}

async fn serve(config: Config, key: &KeySource) -> anyhow::Result<()> {
    // The address first: a start that cannot listen changes nothing.
    let socket = RunningServer::bind(config.listen)?;
    let data = DataDir::open(&config, key)?;
    let created = data.tls.created;
    let server = RunningServer::start_bound(config.clone(), data, socket).await?;
    let pin = server.cert_pin();
    println!(
        "hotline-server {} listening on {} (QUIC/UDP)",
        env!("CARGO_PKG_VERSION"),
        server.local_addr()
    );
    println!("data directory: {}", config.data_dir.display());
    for note in server.start_notes() {
        println!("{note}");
    }
    if let Some(why) = server.snapshot_ahead_of_log() {
        println!("POSSIBLE ROLLBACK: {why}");
    }
    if let Some(why) = server.storage_degraded() {
        println!(
            "WRITES REFUSED: the disk holding the data directory does not take writes ({why}); \
             {} bytes free. Reads are served; writes resume by themselves once there is space.",
            hotline_server::store::free_bytes(&config.data_dir).unwrap_or(0)
        );
    }
    if created {
        println!("created a new TLS certificate for this server");
    }
    println!("certificate pin (clients check this): {pin}");
    println!("                              groups: {}", pin.grouped());
    if !server.has_active_admin().await? {
        let invite = match server.create_bootstrap_invite(BOOTSTRAP_INVITE_TTL).await {
            Ok(invite) => invite,
            Err(e) if server.writes_refused() => {
                // A full disk: the server serves anyway (and heals by
                // itself); the invite needs a write.
                println!();
                println!(
                    "No admin device is enrolled yet, and no invite can be saved now: {e}. \
                     Free space on the disk holding {}; once writes work again, \
                     restart the server to get the first admin invite.",
                    config.data_dir.display()
                );
                println!();
                println!("Press Ctrl-C to stop.");
                server.run_until(shutdown_signal()).await;
                return Ok(());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context("cannot create the first admin invite"));
            }
        };
        println!();
        println!(
            "No admin device is enrolled yet. One-time admin invite, valid for {}, until {}",
            human_ttl(BOOTSTRAP_INVITE_TTL),
            date_time(invite.expires_at)
        );
        println!("(it replaces any admin invite printed before; only this one enrolls):");
        println!();
        println!("  {invite}");
        println!();
        println!("Connect a client with:  hotline enroll '{invite}'");
        println!("then:                   hotline status");
    }
    println!();
    println!("Press Ctrl-C to stop.");
    server.run_until(shutdown_signal()).await;
    Ok(())
}

async fn serve_read_only(config: Config, key: &KeySource) -> anyhow::Result<()> {
    let socket = RunningServer::bind(config.listen)?;
    let (data, left_out) = DataDir::open_read_only(&config, key)?;
    let server = RunningServer::start_bound(config.clone(), data, socket).await?;
    println!(
        "hotline-server {} listening on {} (QUIC/UDP), READ-ONLY",
        env!("CARGO_PKG_VERSION"),
        server.local_addr()
    );
    println!(
        "data directory: {} (nothing in it is changed)",
        config.data_dir.display()
    );
    match left_out {
        Some((seq, why)) => {
            println!("serving only the records before record {seq}: {why}")
        }
        None => println!("serving every record (no damage found)"),
    }
    println!("reads are answered; every write (an SOS included) is refused until a normal start");
    println!(
        "certificate pin (clients check this): {}",
        server.cert_pin()
    );
    println!();
    println!("Press Ctrl-C to stop.");
    server.run_until(shutdown_signal()).await;
    Ok(())
}

/// What `recover --truncate-after-copy` would do when only `chain.head`
/// is unusable (damaged or missing) and every record verifies.
fn print_head_rewrite_plan(p: &store::RecoveryPlan) {
    println!("the store fails verification: {}", p.finding);
    println!();
    println!("recover --truncate-after-copy would:");
    println!(
        "  keep every record (records 1 to {}): none is given up",
        p.kept
    );
    if p.cut_bytes > 0 {
        println!(
            "  cut an incomplete write of {} bytes at the end of log/{} (never acknowledged)",
            p.cut_bytes, p.segment
        );
    }
    if p.finding.contains(") is missing") {
        println!("  (chain.head is missing: there is no file to copy aside)");
    } else {
        println!("  copy chain.head (as it is) to <data_dir>/recovered-<time>/ first");
    }
    match p.head_after {
        Some(cp) if cp.seq < p.kept => println!(
            "  rewrite chain.head from the log's newest checkpoint (record {}, signed {}), \
             then sign a checkpoint of record {} (the last record) into it",
            cp.seq,
            date_time(cp.time),
            p.kept
        ),
        Some(cp) => println!(
            "  rewrite chain.head from the log's newest checkpoint: record {}, signed {}",
            cp.seq,
            date_time(cp.time)
        ),
        None => println!("  rewrite chain.head empty (the log holds no checkpoint)"),
    }
    println!(
        "  WARNING: with chain.head unusable, a rollback of the log (newest records removed by \
         whoever damaged the file) cannot be ruled out from this disk: compare with a head line \
         kept elsewhere (verify --expect-head) or a backup"
    );
    println!();
}

/// What `recover --truncate-after-copy` would give up, for the operator
/// to confirm.
fn print_recovery_plan(p: &store::RecoveryPlan) {
    if p.head_unusable {
        print_head_rewrite_plan(p);
        return;
    }
    let c = &p.contents;
    println!(
        "the store fails verification at record {}: {}",
        p.first_cut, p.finding
    );
    println!();
    println!("recover --truncate-after-copy would:");
    let n = p.records_cut();
    let range = if n == 1 {
        format!("record {}", p.first_cut)
    } else {
        format!("records {} to {}", p.first_cut, p.last_cut)
    };
    // When chain.head signs records the files lack, the range ends at
    // its checkpoint; otherwise bytes that do not split may hold more.
    let at_least = if c.unsplit_bytes > 0 && p.not_in_files.is_none() {
        " (at least: the bytes after the damage do not all split into records)"
    } else {
        ""
    };
    println!("  give up {n} record(s): {range}{at_least}");
    if p.kept == 0 && p.offset == 0 {
        println!(
            "  keep no record: log/{} goes whole{}",
            p.segment,
            if p.later_segments.is_empty() {
                String::new()
            } else {
                format!(", and {} later segment file(s) go", p.later_segments.len())
            }
        );
    } else {
        println!(
            "  keep records 1 to {} (the log ends in log/{} at byte {}{})",
            p.kept,
            p.segment,
            p.offset,
            if p.later_segments.is_empty() {
                String::new()
            } else {
                format!(", and {} later segment file(s) go", p.later_segments.len())
            }
        );
    }
    // chain.head's signature bounds the records given up that it signs,
    // those without a time of their own (messages, claims, duty changes)
    // included: they were written before it was signed.
    let signed = p.head_now.filter(|cp| cp.seq >= p.first_cut);
    let kept_newest = match p.kept_until {
        Some(t) => format!("; the newest time in the records kept is {}", exact_time(t)),
        None => String::new(),
    };
    match (c.times, signed) {
        (Some((from, to)), Some(cp)) => println!(
            "  the records given up that open were written from {} to {}: the times they record \
             run to {}, and records without a time of their own, such as messages and claims, \
             were written before {} (chain.head's signature at record {}){kept_newest}",
            exact_time(from),
            exact_time(to.max(cp.time)),
            exact_time(to),
            exact_time(cp.time),
            cp.seq
        ),
        (Some((from, to)), None) => println!(
            "  the records given up that open were written from {} to {}{kept_newest}",
            exact_time(from),
            exact_time(to)
        ),
        (None, _) => {
            let opened = if c.opened > 0 {
                format!(
                    "none of the {} record(s) given up that open records a time of its own \
                     (messages and claims, for instance, do not)",
                    c.opened
                )
            } else {
                "no record given up opens to give a time".to_owned()
            };
            let when = match (p.kept_until, signed) {
                (Some(t), Some(cp)) => format!(
                    "they were written after {} (the newest time in the records kept) and \
                     before {} (chain.head's signature at record {})",
                    exact_time(t),
                    exact_time(cp.time),
                    cp.seq
                ),
                (Some(t), None) => format!(
                    "they were written after {} (the newest time in the records kept)",
                    exact_time(t)
                ),
                (None, Some(cp)) => format!(
                    "they were written before {} (chain.head's signature at record {})",
                    exact_time(cp.time),
                    cp.seq
                ),
                (None, None) => "no readable time bounds them: check every open case".to_owned(),
            };
            println!("  {opened}: {when}");
        }
    }
    println!(
        "  among them: {} alert(s) raised, {} message(s), {} check-in(s) (in the {} record(s) that open with the master key)",
        c.alerts, c.messages, c.checkins, c.opened
    );
    if c.shredded > 0 {
        println!(
            "  {} record(s) of erased cases (unreadable by design)",
            c.shredded
        );
    }
    if !c.kinds.is_empty() {
        println!("  every kind of event in the records given up that open:");
        for ((_, what), n) in &c.kinds {
            println!("    {n} {what}");
        }
    }
    if c.unreadable > 0 {
        let when = match c.unreadable_between {
            Some((Some(a), Some(b))) => {
                format!("between {} and {}", exact_time(a), exact_time(b))
            }
            Some((Some(a), None)) => format!("after {}", exact_time(a)),
            Some((None, Some(b))) => format!("before {}", exact_time(b)),
            _ => "at a time no readable record shows: check every open case".into(),
        };
        let (n, them) = if c.unreadable == 1 {
            ("1 record could not be read".to_owned(), "it may be an SOS")
        } else {
            (
                format!("{} records could not be read", c.unreadable),
                "any of them may be an SOS",
            )
        };
        println!(
            "  {n} (damaged, cut short or not in the files): {them}; tell the duty team to \
             check alerts raised {when} with the defenders"
        );
    }
    if c.unsplit_bytes > 0 {
        println!(
            "  {} byte(s) after the damage cannot be split into records",
            c.unsplit_bytes
        );
    }
    println!(
        "  copy everything cut ({} bytes) and chain.head to <data_dir>/recovered-<time>/ first",
        p.cut_bytes
    );
    let after = match p.head_after {
        // The recovery signs a checkpoint of the last record kept.
        Some(cp) if cp.seq < p.kept => format!(
            "record {} (the last record kept), with a checkpoint the recovery signs",
            p.kept
        ),
        Some(cp) => format!("record {}, signed {}", cp.seq, date_time(cp.time)),
        None => "no checkpoint (none is left in the log)".into(),
    };
    if let Some((from, to)) = p.not_in_files {
        println!(
            "  WARNING: chain.head signs the log up to record {to}, but {} in the log's files: \
             acknowledged records are gone from this disk (a backup may hold them)",
            if from == to {
                format!("record {from} is not")
            } else {
                format!("records {from} to {to} are not")
            }
        );
    }
    if p.gives_up_signed_records() {
        let now = p.head_now.map_or(0, |cp| cp.seq);
        let signed = if p.kept + 1 == now {
            format!("record {now} was acknowledged")
        } else {
            format!("records {} to {now} were acknowledged", p.kept + 1)
        };
        println!(
            "  chain.head signs the log up to record {now}: {signed}; \
             chain.head would be rewritten back to {after}"
        );
    } else {
        println!("  rewrite chain.head to {after}");
    }
    println!(
        "Tell the duty team which period to check with the people concerned. \
         Putting the copied files back undoes the cut: the commands are printed after it."
    );
    println!();
}

/// How to undo a recovery: the commands that put the copied files back.
fn print_undo(commands: &[String]) {
    if commands.is_empty() {
        return;
    }
    println!();
    println!(
        "To undo this recovery, stop the server and run (its `test`s stop it before it copies \
         anything if the store was written to since, e.g. by a start: then restore from a backup \
         instead):"
    );
    for c in commands {
        println!("  {c}");
    }
    println!("then run `hotline-server verify`.");
}

/// A Unix time to the second, in UTC: `2026-11-30 19:31:42 UTC` (the
/// recovery summary's times, for the duty team to check against).
fn exact_time(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(
            || date_time(unix),
            |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// Whether `dir` is missing or holds nothing (a target for `backup` or
/// `restore`).
fn dir_is_empty(dir: &std::path::Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        // Missing, or unreadable: the command itself names why.
        Err(_) => true,
    }
}

fn print_backup(what: &str, r: &store::BackupReport) {
    let v = &r.verified;
    println!(
        "{what} in {} verified: {} records, chain head at {}, {} signed checkpoints, {} segment files",
        r.dir.display(),
        v.records,
        v.head_seq,
        v.checkpoints,
        r.segments
    );
    match &r.checkpoint {
        Some(cp) => println!(
            "newest signed checkpoint: record {}, signed {}",
            cp.seq,
            date_time(cp.time)
        ),
        None => println!("no signed checkpoint yet (an empty store)"),
    }
    match &r.certificate {
        Some(c) => println!(
            "TLS certificate and key verified: pin {} (a server restored from it serves with this pin){}",
            c.pin,
            if c.bound {
                ""
            } else {
                "; not recorded in the store yet"
            }
        ),
        None if r.certificate_missing.is_some() => {
            println!("no TLS certificate in it, although its log records one (see below)")
        }
        None if r.certificate_not_taken.is_some() => {
            println!("no TLS certificate in it: not taken (see below)")
        }
        None => {
            println!("no TLS certificate in it (the server uses configured files, or had none yet)")
        }
    }
    if r.left_out_bytes > 0 {
        println!(
            "a record being written at that moment ({} bytes) is not in it",
            r.left_out_bytes
        );
    }
}

fn human_ttl(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s if s % 60 == 0 => format!("{} minute(s)", s / 60),
        s => format!("{s} second(s)"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The error and its causes on one line, skipping a cause whose text the
/// line already holds (many errors quote their source).
fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}
