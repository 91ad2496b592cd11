//! The file operations the log performs on its durable files, behind one
//! seam, so that tests can make each of them fail.
//!
//! Every operation that changes a byte or a name of the segments
//! ([`super::segments`]), `chain.head` ([`super::head`]) and the keyring
//! ([`super::keyring`]) goes through a [`FileOps`]: opening a file for
//! writing, a positioned write, `fdatasync`/`fsync`, cutting a file back,
//! renaming, removing, and syncing a directory. Reads stay direct.
//!
//! The server uses [`real`] (plain `std::fs`, one dynamic call per
//! operation). [`FaultFs`] is for tests only: it is reached only from code
//! (`Config::dangerous_log_file_ops`, which no configuration file or flag
//! can set), and fails chosen calls with `EIO` or `ENOSPC`, tears a write
//! (writes the first bytes only and then behaves as a crashed process:
//! every later operation fails and nothing more reaches the disk), and
//! [`flip_byte`] damages a closed segment.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// How a file is opened for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// An existing file, for reading and writing.
    ReadWrite,
    /// A new file (refused if it exists), owner-only, read and write.
    CreateNew,
    /// Created (owner-only) if missing, kept as it is otherwise.
    Create,
    /// Created (owner-only) if missing, emptied otherwise.
    CreateTruncate,
}

/// The operations, as a fault plan names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Opening a file for writing ([`FileOps::open`]).
    Open,
    /// A positioned write ([`FileOps::write_at`]).
    Write,
    /// `fdatasync` or `fsync` of a file ([`FileOps::sync_data`],
    /// [`FileOps::sync_all`]).
    Sync,
    /// Cutting a file to a length ([`FileOps::set_len`]).
    SetLen,
    /// A rename ([`FileOps::rename`]).
    Rename,
    /// Removing a file ([`FileOps::remove_file`]).
    Remove,
    /// `fsync` of a directory ([`FileOps::sync_dir`]).
    SyncDir,
}

const OPS: usize = 7;

impl Op {
    fn index(self) -> usize {
        self as usize
    }
}

/// The file operations the log performs on its durable files.
pub trait FileOps: std::fmt::Debug + Send + Sync {
    /// Opens `path` for writing (and reading).
    fn open(&self, path: &Path, how: Open) -> io::Result<File>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// `fsync`.
    fn sync_all(&self, file: &File) -> io::Result<()>;
    /// Sets the file's length.
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
    /// Renames `from` to `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// `fsync` of a directory (the names in it).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A handle on the file operations in use.
pub type Fs = Arc<dyn FileOps>;

/// The real file operations (`std::fs`).
pub fn real() -> Fs {
    Arc::new(RealFs)
}

/// `std::fs`, with nothing added.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl FileOps for RealFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<File> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        match how {
            Open::ReadWrite => {}
            Open::CreateNew => {
                opts.create_new(true).mode(0o600);
            }
            Open::Create => {
                opts.create(true).truncate(false).mode(0o600);
            }
            Open::CreateTruncate => {
                opts.create(true).truncate(true).mode(0o600);
            }
        }
        opts.open(path)
    }

    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with `EIO`, having done nothing.
    Eio,
    /// The call fails with `ENOSPC`, having done nothing.
    Enospc,
    /// Only for [`Op::Write`]: the first `keep` bytes of the write (at
    /// most all but its last byte: the write is always incomplete) reach
    /// the file, then the process "crashes": the call and every later
    /// call fail with `EIO` and change nothing. A test then drops what it
    /// opened and reopens from what is on disk, as a restart would.
    Torn {
        /// How many bytes of the write reach the file.
        keep: usize,
    },
}

/// A fault that fired: which operation, its call number (from 1), and
/// what was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    /// The operation.
    pub op: Op,
    /// Its call number, counted from the [`FaultFs`]'s creation.
    pub call: u64,
    /// The fault.
    pub fault: Fault,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    op: Op,
    /// The first call (absolute number) it applies to.
    from: u64,
    /// Every call from `from` on (until lifted), or only that one.
    sticky: bool,
    fault: Fault,
}

#[derive(Debug, Default)]
struct Plan {
    calls: [u64; OPS],
    rules: Vec<Rule>,
    crashed: bool,
    injected: Vec<Injected>,
}

/// File operations that fail where a test's plan says, otherwise real.
/// See the module documentation.
#[derive(Debug, Default)]
pub struct FaultFs {
    plan: Mutex<Plan>,
}

fn crashed_error() -> io::Error {
    io::Error::other("the process crashed (injected): nothing more reaches the disk")
}

impl FaultFs {
    /// No fault planned yet.
    pub fn new() -> Arc<FaultFs> {
        Arc::new(FaultFs::default())
    }

    /// This handle as the log's file operations.
    pub fn handle(self: &Arc<Self>) -> Fs {
        self.clone()
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `nth` call of `op` from now (1 = the next) fails with `fault`.
    pub fn fail_once(&self, op: Op, nth: u64, fault: Fault) {
        let mut plan = self.plan();
        let from = plan.calls[op.index()] + nth.max(1);
        plan.rules.push(Rule {
            op,
            from,
            sticky: false,
            fault,
        });
    }

    /// Every call of `op` from the `nth` one from now on fails with
    /// `fault`, until [`FaultFs::lift`] (a disk full until freed).
    pub fn fail_from(&self, op: Op, nth: u64, fault: Fault) {
        let mut plan = self.plan();
        let from = plan.calls[op.index()] + nth.max(1);
        plan.rules.push(Rule {
            op,
            from,
            sticky: true,
            fault,
        });
    }

    /// Removes every planned fault (not a crash: a crashed process stays
    /// crashed).
    pub fn lift(&self) {
        self.plan().rules.clear();
    }

    /// How many calls of `op` were made.
    pub fn calls(&self, op: Op) -> u64 {
        self.plan().calls[op.index()]
    }

    /// The faults that fired, in order.
    pub fn injected(&self) -> Vec<Injected> {
        self.plan().injected.clone()
    }

    /// The process "crashes" now: every later call fails and changes
    /// nothing (a test then drops what it opened and reopens).
    pub fn crash(&self) {
        self.plan().crashed = true;
    }

    /// Whether the process "crashed" (a torn write, or [`FaultFs::crash`]).
    pub fn crashed(&self) -> bool {
        self.plan().crashed
    }

    /// Counts a call of `op` and decides its fate.
    fn check(&self, op: Op) -> Result<Option<usize>, io::Error> {
        let mut plan = self.plan();
        if plan.crashed {
            return Err(crashed_error());
        }
        plan.calls[op.index()] += 1;
        let call = plan.calls[op.index()];
        let Some(rule) = plan
            .rules
            .iter()
            .find(|r| r.op == op && (call == r.from || (r.sticky && call > r.from)))
            .copied()
        else {
            return Ok(None);
        };
        plan.injected.push(Injected {
            op,
            call,
            fault: rule.fault,
        });
        match rule.fault {
            Fault::Eio => Err(io::Error::from_raw_os_error(5)),
            Fault::Enospc => Err(io::Error::from_raw_os_error(28)),
            Fault::Torn { keep } => {
                plan.crashed = true;
                Ok(Some(keep))
            }
        }
    }
}

impl FileOps for FaultFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<File> {
        self.check(Op::Open)?;
        RealFs.open(path, how)
    }

    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.check(Op::Write)? {
            None => RealFs.write_at(file, buf, offset),
            Some(keep) => {
                file.write_all_at(&buf[..keep.min(buf.len().saturating_sub(1))], offset)?;
                Err(crashed_error())
            }
        }
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.check(Op::Sync)?;
        RealFs.sync_data(file)
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        self.check(Op::Sync)?;
        RealFs.sync_all(file)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.check(Op::SetLen)?;
        RealFs.set_len(file, len)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename)?;
        RealFs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove)?;
        RealFs.remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::SyncDir)?;
        RealFs.sync_dir(dir)
    }
}

/// Flips the bits `mask` of the byte at `offset` in the file at `path`
/// (a disk's silent damage); flipping again restores it.
pub fn flip_byte(path: &Path, offset: u64, mask: u8) -> io::Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset)?;
    byte[0] ^= mask;
    file.write_all_at(&byte, offset)?;
    file.sync_data()
}

/// A small deterministic generator for fault tests: the seed comes from
/// `HOTLINE_FAULT_SEED` if set, otherwise from the clock, and is printed
/// so that a failing run can be repeated.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// From `HOTLINE_FAULT_SEED`, or the clock; prints the seed.
    pub fn from_env(test: &str) -> SeededRng {
        let seed = std::env::var("HOTLINE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        println!("{test}: HOTLINE_FAULT_SEED={seed}");
        SeededRng(seed)
    }

    /// The next number (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}
