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
use hotline_server::store::{self, Create};
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
    /// Print the certificate pin that clients check.
    Fingerprint,
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
        /// A checkpoint exported earlier with `hotline-server checkpoint`:
        /// also detects a rollback to an older copy of the store.
        #[arg(long)]
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
    },
    /// Print the newest signed checkpoint, to keep off the server. With
    /// the server running: the newest one it signed (in `chain.head`, at
    /// most about a second behind its last acknowledged write, also when
    /// it has gone quiet); stopped: a fresh one.
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
        if !path.exists() && !keys::exists(&config.data_dir) {
            keys::generate_key_file(&path)?;
        }
        eprintln!(
            "WARNING: development mode: the master key is {}, beside the data (insecure_dev_master_key). \
             Do not keep real cases on this server.",
            path.display()
        );
        return Ok(KeySource::File(path));
    }
    Err(keys::KeyError::Missing.into())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
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
    match command {
        Command::Fingerprint => {
            // Reads the certificate only: needs no key and works beside a
            // running server.
            let pin = hotline_server::endpoint::tls::TlsIdentity::certificate_pin(&config)
                .context(
                    "no certificate yet: run `hotline-server init` or start the server once",
                )?;
            println!("{pin}");
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
        _ => key_source(&cli, &config, new_store)?,
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
            let v = report.verified;
            println!(
                "store verified: {} records, chain head at {}, {} signed checkpoints (newest at {}), {} records shredded",
                v.records, v.head_seq, v.checkpoints, v.last_checkpoint_seq, v.shredded
            );
            if let Some(seq) = report.external_checkpoint {
                println!("the exported checkpoint at record {seq} matches: no rollback");
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
            Ok(())
        }
        Command::Recover {
            truncate_after_copy,
        } => {
            if !truncate_after_copy {
                anyhow::bail!(
                    "recover gives up records: say so with --truncate-after-copy \
                     (first try restoring the damaged file from a backup; see docs/operations.md)"
                );
            }
            let report = store::recover_truncate_after_copy(
                &config.data_dir,
                &key,
                config.limits.store_cache_bytes,
            )?;
            match (report.first_cut, report.copied_to) {
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
            let report = store::backup(&config.data_dir, &key, to)?;
            print_backup("backup", &report);
            Ok(())
        }
        Command::Restore { from } => {
            let report = store::restore(from, &key, &config.data_dir)?;
            print_backup("restored", &report);
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
            let data = DataDir::open_with(&config, &key, Create::Never)?;
            // Closing signs a checkpoint of the current head.
            data.store.close()?;
            let cp = data
                .store
                .log()
                .latest_checkpoint()?
                .context("the store is empty: nothing to checkpoint yet")?;
            println!("{}", cp.export(&data.store.log().keys().store_id()));
            Ok(())
        }
        Command::Fingerprint => Ok(()),
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
            data.store.close()?;
            Ok(())
        }
    }
}

async fn serve(config: Config, key: &KeySource) -> anyhow::Result<()> {
    let data = DataDir::open(&config, key)?;
    let created = data.tls.created;
    let server = RunningServer::start_with(config.clone(), data).await?;
    let pin = server.cert_pin();
    println!(
        "hotline-server {} listening on {} (QUIC/UDP)",
        env!("CARGO_PKG_VERSION"),
        server.local_addr()
    );
    println!("data directory: {}", config.data_dir.display());
    if created {
        println!("created a new TLS certificate for this server");
    }
    println!("certificate pin (clients check this): {pin}");
    println!("                              groups: {}", pin.grouped());
    if !server.has_active_admin().await? {
        let invite = server
            .create_bootstrap_invite(BOOTSTRAP_INVITE_TTL)
            .await
            .context("cannot create the first admin invite")?;
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
    let (data, left_out) = DataDir::open_read_only(&config, key)?;
    let server = RunningServer::start_with(config.clone(), data).await?;
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
