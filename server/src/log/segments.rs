//! The log's engine on append-only segment files ([`super::segment`]),
//! with snapshots (derived, rebuildable) in a sled cache beside them.
//!
//! * Opening reads every segment, checks every frame's checksum and that
//!   records follow each other from 1 with no gap or duplicate, and keeps
//!   an index (sequence number → segment and offset) in memory. Reads are
//!   positioned reads of the files.
//! * Opening changes no byte of any segment, with one exception: the end
//!   of the newest segment, after its last whole frame, may be an
//!   incomplete frame or zero bytes (a write that never completed, so was
//!   never acknowledged). [`SegmentEngine::set_torn_tail_aside`] (called
//!   once the log has verified the chain against `chain.head`, and in any
//!   case before the first append, probe or tail re-read: on a full
//!   disk it waits for them) copies those bytes aside to
//!   `torn-after-<last whole record>-<UTC time>.bin` (written under a
//!   temporary name, synced, renamed; a failed copy is removed) and then
//!   cuts them off. Anything else wrong is [`Damage`]: nothing is changed and the store is refused.
//! * An append writes every frame of a group commit with one positioned
//!   write at the end of the newest segment and one `fdatasync`. When the
//!   segment has reached its size limit, a new one is created first, and it
//!   and the directory are synced before anything in it is acknowledged. A
//!   closed segment is never opened for writing again.
//! * A failed write leaves the in-memory end where it was and cuts the file
//!   back to it at once (synced), so that bytes written but never
//!   acknowledged are not taken as records by a later start, verify or
//!   backup. If that cut fails too, those bytes are overwritten with zeros
//!   in place (synced: an unfinished write, never a record), and the next
//!   append (or the heal) cuts first; [`SegmentEngine::reread_tail`] then reads the newest segment
//!   back from the disk and checks it ends at the acknowledged record.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tracing::{info, warn};

use super::engine::{Damage, EngineError, Item, LogEngine, SledCache};
use super::fs::{Fs, Open};
use super::segment::{self, End, KIND_CHECKPOINT, KIND_RECORD, SegmentHeader};

/// A new segment is started once the newest one holds this many bytes.
pub const MAX_SEGMENT_BYTES: u64 = 64 << 20;

/// The largest a segment file can be: a segment is closed once it reaches
/// [`MAX_SEGMENT_BYTES`], after at most one group commit past it. A larger
/// file (sparse, crafted) is damage, and is never read whole.
pub const MAX_SEGMENT_FILE_BYTES: u64 = 4 * MAX_SEGMENT_BYTES;

/// What is wrong with a segment file of `len` bytes, larger than
/// [`MAX_SEGMENT_FILE_BYTES`].
pub fn too_large(path: &Path, len: u64) -> String {
    format!(
        "{} is {len} bytes, more than a segment can be ({MAX_SEGMENT_FILE_BYTES} bytes): \
         the file is damaged (or not a segment) and was not read",
        path.display()
    )
}

/// An incomplete final write found by an open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file's name.
    pub segment: String,
    /// Where the incomplete bytes start.
    pub offset: u64,
    /// How many bytes there are.
    pub bytes: u64,
    /// Where they were copied (a writable open), or `None` (read-only).
    pub saved_to: Option<PathBuf>,
}

/// How to open the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read only: nothing is created or changed; a torn tail is reported
    /// and left in place.
    ReadOnly,
    /// For appends: a torn tail is copied aside and cut off.
    Writable {
        /// Size at which a new segment is started.
        max_segment_bytes: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    segment: usize,
    offset: u64,
    len: usize,
}

#[derive(Debug)]
struct Segment {
    name: String,
    file: File,
}

#[derive(Debug, Default)]
struct Files {
    segments: Vec<Segment>,
    /// Index `seq - 1`.
    records: Vec<Loc>,
    checkpoints: Vec<(u64, Loc)>,
    /// Length of the newest segment up to its last acknowledged frame.
    open_len: u64,
    /// A write failed: bytes past `open_len` may be on disk.
    dirty: bool,
}

/// The segment engine. See the module documentation.
#[derive(Debug)]
pub struct SegmentEngine {
    dir: PathBuf,
    store_id: [u8; 16],
    mode: Mode,
    files: Mutex<Files>,
    cache: Mutex<Option<SledCache>>,
    /// Where the snapshot cache is and its size, while the engine runs
    /// without one (it could not be opened: a full disk, an I/O error):
    /// the next snapshot tries to open it again.
    cache_at: Mutex<Option<(PathBuf, u64)>>,
    torn: Mutex<Option<TornTail>>,
    /// Every change to a segment goes through it ([`super::fs`]).
    fs: Fs,
}

fn io(e: std::io::Error) -> EngineError {
    EngineError::Io(e.to_string())
}

/// The segment files in `dir`, by first sequence number.
fn list(dir: &Path) -> Result<Vec<(u64, String)>, EngineError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let name = entry.map_err(io)?.file_name();
        if let Some(name) = name.to_str()
            && let Some(first) = segment::parse_file_name(name)
        {
            out.push((first, name.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

impl SegmentEngine {
    /// Opens the segments in `dir` of the store `store_id`, changing
    /// nothing (a missing `dir` is an empty log). Fails with
    /// [`EngineError::Damaged`] naming the first bad record, segment and
    /// offset, having changed nothing.
    pub fn open(dir: &Path, store_id: [u8; 16], mode: Mode) -> Result<SegmentEngine, EngineError> {
        Self::open_with_fs(dir, store_id, mode, super::fs::real())
    }

    /// [`SegmentEngine::open`], changing the files only through `fs`
    /// (tests inject faults there).
    pub fn open_with_fs(
        dir: &Path,
        store_id: [u8; 16],
        mode: Mode,
        fs: Fs,
    ) -> Result<SegmentEngine, EngineError> {
        let mut files = Files::default();
        let mut torn = None;
        scan(dir, store_id, &mut files, &mut torn)?;
        let engine = SegmentEngine::new(dir, store_id, mode, files, torn, fs);
        if let Mode::Writable { .. } = mode {
            engine.reopen_newest_for_writing()?;
            remove_probe(dir, &engine.fs);
            remove_partial_copies(dir);
        }
        Ok(engine)
    }

    /// Opens the segments read-only up to the first damage, if any: the
    /// engine holds the records before it, for inspecting a damaged store.
    pub fn open_until_damage(
        dir: &Path,
        store_id: [u8; 16],
    ) -> Result<(SegmentEngine, Option<Damage>), EngineError> {
        let mut files = Files::default();
        let mut torn = None;
        let damage = match scan(dir, store_id, &mut files, &mut torn) {
            Ok(()) => None,
            Err(EngineError::Damaged(d)) => Some(d),
            Err(e) => return Err(e),
        };
        Ok((
            SegmentEngine::new(
                dir,
                store_id,
                Mode::ReadOnly,
                files,
                torn,
                super::fs::real(),
            ),
            damage,
        ))
    }

    fn new(
        dir: &Path,
        store_id: [u8; 16],
        mode: Mode,
        files: Files,
        torn: Option<TornTail>,
        fs: Fs,
    ) -> SegmentEngine {
        SegmentEngine {
            dir: dir.to_owned(),
            store_id,
            mode,
            files: Mutex::new(files),
            cache: Mutex::new(None),
            cache_at: Mutex::new(None),
            torn: Mutex::new(torn),
            fs,
        }
    }

    /// The incomplete final write this open found, if any.
    pub fn torn_tail(&self) -> Option<TornTail> {
        self.torn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Copies the incomplete final write found by a writable open aside
    /// (synced), then cuts it off; nothing if there is none or it is done.
    pub fn set_torn_tail_aside(&self) -> Result<Option<TornTail>, EngineError> {
        if let Mode::ReadOnly = self.mode {
            return Err(EngineError::Io("the log is open read-only".into()));
        }
        let mut slot = self.torn.lock().unwrap_or_else(|p| p.into_inner());
        let Some(torn) = slot.as_mut() else {
            return Ok(None);
        };
        if torn.saved_to.is_some() {
            return Ok(Some(torn.clone()));
        }
        let path = self.dir.join(&torn.segment);
        // Only the incomplete bytes are read, not the segment before them.
        let mut tail = Vec::new();
        let mut file = File::open(&path).map_err(io)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(torn.offset)).map_err(io)?;
        std::io::Read::read_to_end(&mut file, &mut tail).map_err(io)?;
        drop(file);
        let tail = &tail[..];
        // Named after the last whole record before it: the bytes are what
        // was being written after that record.
        let last = self.lock().records.len() as u64;
        let mut aside = self
            .dir
            .join(format!("torn-after-{last}-{}.bin", crate::file_time_now()));
        let mut n = 1;
        while aside.exists() {
            aside = self.dir.join(format!(
                "torn-after-{last}-{}-{n}.bin",
                crate::file_time_now()
            ));
            n += 1;
        }
        let fs = &self.fs;
        // Written under a temporary name, synced, then renamed: a copy
        // under the final name is always whole. A failed attempt (a full
        // disk) leaves nothing behind; the segment keeps the bytes and
        // the next attempt (the first write, the heal's probe) copies them.
        let partial = aside.with_extension("bin.partial");
        let copied = fs
            .open(&partial, Open::CreateNew)
            .and_then(|f| fs.write_at(&f, tail, 0).and_then(|()| fs.sync_all(&f)))
            .and_then(|()| fs.rename(&partial, &aside))
            .and_then(|()| fs.sync_dir(&self.dir));
        if let Err(e) = copied {
            let _ = fs.remove_file(&partial);
            if aside.exists() {
                let _ = fs.remove_file(&aside);
            }
            let _ = fs.sync_dir(&self.dir);
            return Err(io(e));
        }
        if torn.offset == 0 {
            // Not even a header: the whole file goes aside.
            fs.remove_file(&path).map_err(io)?;
        } else {
            let f = fs.open(&path, Open::ReadWrite).map_err(io)?;
            fs.set_len(&f, torn.offset).map_err(io)?;
            fs.sync_all(&f).map_err(io)?;
        }
        fs.sync_dir(&self.dir).map_err(io)?;
        warn!(
            bytes = tail.len(),
            "the newest segment ended in an incomplete write (never acknowledged); \
             copied aside and cut off"
        );
        info!(file = %aside.display(), "incomplete write kept");
        torn.saved_to = Some(aside);
        Ok(Some(torn.clone()))
    }

    fn reopen_newest_for_writing(&self) -> Result<(), EngineError> {
        let mut files = self.lock();
        let dir = self.dir.clone();
        if let Some(newest) = files.segments.last_mut() {
            newest.file = self
                .fs
                .open(&dir.join(&newest.name), Open::ReadWrite)
                .map_err(io)?;
        }
        Ok(())
    }

    /// Gives the engine its snapshot cache (see [`open_cache`]).
    pub fn set_cache(&self, cache: SledCache) {
        *self.cache() = Some(cache);
    }

    /// Runs without a snapshot cache (the one in `dir` could not be
    /// opened: a full disk, an I/O error); the next snapshot tries to open
    /// it again. Nothing is moved or deleted.
    pub fn run_without_cache(&self, dir: &Path, cache_bytes: u64) {
        drop(self.cache().take());
        *self.cache_at.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((dir.to_owned(), cache_bytes));
    }

    /// Moves the snapshot cache in `dir` aside (it proved damaged: a
    /// snapshot that did not read, decode or verify) and starts an empty
    /// one; returns where the damaged one went. If the new one cannot be
    /// opened (a full disk), the engine runs without one.
    pub fn reset_cache(
        &self,
        dir: &Path,
        cache_bytes: u64,
    ) -> Result<Option<PathBuf>, EngineError> {
        let old = self.cache().take();
        drop(old);
        let moved = match move_aside(dir, self.fs.as_ref()) {
            Ok(moved) => moved,
            Err(e) => {
                // Left where it is: the state is kept in memory, and the
                // next snapshot tries to open (and move) it again.
                warn!(cache = %dir.display(), error = %e,
                    "the damaged snapshot cache cannot be moved aside; running without one");
                self.run_without_cache(dir, cache_bytes);
                return Ok(None);
            }
        };
        match open_cache_noting_with_fs(dir, cache_bytes, &self.fs).map(|(c, _)| c) {
            Ok(c) => self.set_cache(c),
            Err(EngineError::Locked) => return Err(EngineError::Locked),
            Err(e) => {
                warn!(cache = %dir.display(), error = %e,
                    "a new snapshot cache cannot be opened; running without one \
                     (the state is kept in memory; the next snapshot tries again)");
                self.run_without_cache(dir, cache_bytes);
            }
        }
        Ok(moved)
    }

    fn lock(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self, files: &Files, loc: Loc) -> Result<Vec<u8>, EngineError> {
        let mut buf = vec![0u8; loc.len];
        files.segments[loc.segment]
            .file
            .read_exact_at(&mut buf, loc.offset)
            .map_err(io)?;
        Ok(buf)
    }

    /// Re-reads the end of the newest segment from the disk after a failed
    /// write: cuts off anything past the last acknowledged frame (synced),
    /// then reads the segment's frames back from the file and checks that
    /// they end cleanly exactly where the acknowledged ones do, at the
    /// record the index holds last. Returns that record (its sequence
    /// number and stored bytes) as read from the disk, for the log to
    /// check against its chain head; [`EngineError::Damaged`] if the disk
    /// holds anything else.
    pub fn reread_tail(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        if let Mode::Writable { .. } = self.mode {
            // Bytes of an incomplete write found at open are copied aside
            // before the cut below could drop them.
            self.set_torn_tail_aside()?;
        }
        let mut files = self.lock();
        let Some(newest) = files.segments.last() else {
            return Ok(None);
        };
        let name = newest.name.clone();
        let on_disk = newest.file.metadata().map_err(io)?.len();
        if on_disk != files.open_len {
            if let Mode::ReadOnly = self.mode {
                return Err(EngineError::Io("the log is open read-only".into()));
            }
            self.fs.set_len(&newest.file, files.open_len).map_err(io)?;
            self.fs.sync_all(&newest.file).map_err(io)?;
            files.dirty = false;
        }
        let index = files.segments.len() - 1;
        let reading = File::open(self.dir.join(&name)).map_err(io)?;
        let (header, on_disk) = segment::read_file_header(&reading).map_err(io)?;
        let damage = |offset: u64, reason: &str| damage_at(&files, &name, offset, reason);
        if on_disk != files.open_len {
            return Err(damage(
                on_disk.min(files.open_len),
                "after a failed write the newest segment's length is not the acknowledged one",
            ));
        }
        header.map_err(|reason| damage(0, reason))?;
        // The newest segment's records are the last ones indexed.
        let indexed = &files.records[files.records.partition_point(|l| l.segment < index)..];
        let mut held = 0;
        let mut matches = true;
        let mut last = None;
        // Read with a bounded buffer, compared frame by frame.
        let end = segment::read_file_frames(&reading, on_disk, |f| {
            if f.kind == KIND_RECORD {
                matches &= indexed.get(held).is_some_and(|l| {
                    f.payload.start as u64 == l.offset && f.payload.len() == l.len
                });
                held += 1;
                last = Some(f.clone());
            }
            Ok(())
        })
        .map_err(io)?;
        match end {
            End::Clean => {}
            End::Torn { offset } | End::Bad { offset, .. } => {
                return Err(damage(
                    offset,
                    "after a failed write an acknowledged frame no longer reads back",
                ));
            }
        }
        if !matches || held != indexed.len() {
            return Err(damage(
                segment::HEADER_LEN as u64,
                "after a failed write the newest segment's records are not the acknowledged ones",
            ));
        }
        let count = files.records.len() as u64;
        match last {
            Some(f) if f.seq == count => {
                let mut bytes = vec![0u8; f.payload.len()];
                reading
                    .read_exact_at(&mut bytes, f.payload.start as u64)
                    .map_err(io)?;
                Ok(Some((count, bytes)))
            }
            Some(f) => Err(damage(
                f.offset,
                "after a failed write the last record on disk is not the last acknowledged one",
            )),
            // Nothing in the newest segment yet: the last record is in
            // the one before, which no write touches.
            None => match files.records.last().copied() {
                Some(loc) => Ok(Some((count, self.read(&files, loc)?))),
                None => Ok(None),
            },
        }
    }

    /// Starts a new segment whose first record is `first_seq`; the file
    /// and the directory are synced before it is used.
    fn roll(&self, files: &mut Files, first_seq: u64) -> Result<(), EngineError> {
        if !self.dir.exists() {
            crate::files::create_private_dir(&self.dir).map_err(io)?;
            if let Some(parent) = self.dir.parent() {
                self.fs.sync_dir(parent).map_err(io)?;
            }
        }
        let name = segment::file_name(first_seq);
        let path = self.dir.join(&name);
        let header = SegmentHeader {
            store_id: self.store_id,
            first_seq,
        }
        .to_bytes();
        let file = self.fs.open(&path, Open::CreateNew).map_err(io)?;
        let result = self
            .fs
            .write_at(&file, &header, 0)
            .and_then(|()| self.fs.sync_all(&file))
            .and_then(|()| self.fs.sync_dir(&self.dir))
            .map_err(io);
        if let Err(e) = result {
            // Nothing in it was acknowledged: the next attempt starts over.
            let _ = self.fs.remove_file(&path);
            return Err(e);
        }
        // The previous segment is closed: keep it open for reading only.
        if let Some(prev) = files.segments.last_mut() {
            prev.file = File::open(self.dir.join(&prev.name)).map_err(io)?;
        }
        files.segments.push(Segment { name, file });
        files.open_len = segment::HEADER_LEN as u64;
        Ok(())
    }

    /// Where the frame of record `seq` starts: its segment file's name and
    /// offset.
    pub fn frame_of(&self, seq: u64) -> Option<(String, u64)> {
        let files = self.lock();
        let loc = files.records.get(seq.checked_sub(1)? as usize)?;
        Some((
            files.segments[loc.segment].name.clone(),
            loc.offset - segment::FRAME_HEADER_LEN as u64,
        ))
    }

    /// Where the log ends: the newest segment file's name, the byte
    /// offset just past its last whole frame, and how many records the
    /// log holds (`None` with no segment).
    pub fn end(&self) -> Option<(String, u64, u64)> {
        let files = self.lock();
        let newest = files.segments.last()?;
        Some((
            newest.name.clone(),
            files.open_len,
            files.records.len() as u64,
        ))
    }

    /// The directory of the segment files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment files' names, oldest first.
    pub fn segment_names(&self) -> Vec<String> {
        self.lock()
            .segments
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    fn cache(&self) -> MutexGuard<'_, Option<SledCache>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads every segment in `dir` into `files` (the index), stopping at the
/// first damage; an incomplete final write goes to `torn`.
fn scan(
    dir: &Path,
    store_id: [u8; 16],
    files: &mut Files,
    torn: &mut Option<TornTail>,
) -> Result<(), EngineError> {
    // A missing directory is an empty log; the first append creates it.
    let names = list(dir)?;
    let count = names.len();
    for (i, (first_seq, name)) in names.into_iter().enumerate() {
        let newest = i + 1 == count;
        let path = dir.join(&name);
        // Read with a bounded buffer (payloads are checksummed as they
        // pass, never held): the memory an open needs does not grow with
        // the size of the segments.
        let reading = File::open(&path).map_err(io)?;
        let (header, file_len) = segment::read_file_header(&reading).map_err(io)?;
        let next = files.records.len() as u64 + 1;
        let damage = |offset: u64, reason: &str| {
            EngineError::Damaged(Damage {
                seq: next,
                segment: name.clone(),
                offset,
                reason: reason.to_owned(),
            })
        };
        if file_len > MAX_SEGMENT_FILE_BYTES {
            return Err(damage(0, &too_large(&path, file_len)));
        }
        let header = match header {
            Ok(h) => h,
            // A new segment whose header never reached the disk: it
            // was synced before anything in it was acknowledged. Only if
            // nothing at all is in the file: a zeroed header with frames
            // after it is damage (those frames were acknowledged).
            Err(_) if newest && segment::is_short_or_zero(&reading).map_err(io)? => {
                *torn = Some(TornTail {
                    segment: name.clone(),
                    offset: 0,
                    bytes: file_len,
                    saved_to: None,
                });
                continue;
            }
            Err(reason) => return Err(damage(0, reason)),
        };
        if header.store_id != store_id {
            return Err(damage(0, "the segment belongs to another store"));
        }
        if header.first_seq != first_seq {
            return Err(damage(0, "the segment's header and file name disagree"));
        }
        if first_seq != next {
            return Err(damage(
                0,
                if first_seq > next {
                    "a segment is missing: records are absent before this one"
                } else {
                    "segments overlap: records are duplicated"
                },
            ));
        }
        // Kept before its frames are read, so that the records before
        // a damaged frame can still be read (`open_until_damage`).
        let file = File::open(&path).map_err(io)?;
        let index = files.segments.len();
        files.segments.push(Segment {
            name: name.clone(),
            file,
        });
        let mut failure = None;
        let end = segment::read_file_frames(&reading, file_len, |frame| {
            index_frame(files, index, &name, frame).map_err(|e| {
                failure = Some(e);
                std::io::Error::other("stopped at damage")
            })
        })
        .map_err(|e| failure.take().unwrap_or_else(|| io(e)))?;
        let mut len = file_len;
        match end {
            End::Clean => {}
            End::Torn { offset } if newest => {
                *torn = Some(TornTail {
                    segment: name.clone(),
                    offset,
                    bytes: len - offset,
                    saved_to: None,
                });
                len = offset;
            }
            End::Torn { offset } => {
                return Err(damage_at(
                    files,
                    &name,
                    offset,
                    "a closed segment ends in an incomplete frame",
                ));
            }
            End::Bad { offset, reason } => {
                return Err(damage_at(files, &name, offset, reason));
            }
        }
        files.open_len = len;
    }
    Ok(())
}

/// Adds a frame read by [`scan`] of segment `index` to the index: records
/// must follow each other, checkpoints must come in order.
fn index_frame(
    files: &mut Files,
    index: usize,
    name: &str,
    frame: &segment::Frame,
) -> Result<(), EngineError> {
    let next = files.records.len() as u64 + 1;
    let loc = Loc {
        segment: index,
        offset: frame.payload.start as u64,
        len: frame.payload.len(),
    };
    let bad = |reason: &str| {
        EngineError::Damaged(Damage {
            seq: next,
            segment: name.to_owned(),
            offset: frame.offset,
            reason: reason.to_owned(),
        })
    };
    if frame.kind == KIND_RECORD {
        if frame.seq != next {
            return Err(bad(if frame.seq > next {
                "a record is missing (deleted)"
            } else {
                "a record is out of order or duplicated"
            }));
        }
        files.records.push(loc);
    } else {
        debug_assert_eq!(frame.kind, KIND_CHECKPOINT);
        let after_last = files.checkpoints.last().is_none_or(|(s, _)| frame.seq > *s);
        // Whether it matches the chain is the log's to check.
        if !after_last {
            return Err(bad("a checkpoint is out of order"));
        }
        files.checkpoints.push((frame.seq, loc));
    }
    Ok(())
}

/// Opens the snapshot cache in `dir` (sled). If it opened and proved
/// damaged (sled found its files corrupt or undecodable), it is moved
/// aside (never deleted) and a new one is started: it holds nothing that
/// cannot be rebuilt from the segments. Any other failure (a full disk, a
/// quota, an I/O error) says nothing about the cache: it is returned, and
/// the cache is left where it is. Call it only while holding the data
/// directory's lock ([`crate::files::DataDirLock`]): a process without it
/// could move a running server's cache (and sled's lock) away.
pub fn open_cache(dir: &Path, cache_bytes: u64) -> Result<SledCache, EngineError> {
    open_cache_noting(dir, cache_bytes).map(|(c, _)| c)
}

/// [`open_cache`], also saying where a damaged cache was moved.
pub fn open_cache_noting(
    dir: &Path,
    cache_bytes: u64,
) -> Result<(SledCache, Option<PathBuf>), EngineError> {
    open_cache_noting_with_fs(dir, cache_bytes, &super::fs::real())
}

/// [`open_cache_noting`], moving a damaged cache aside through `fs` (the
/// log's file operations; sled's own I/O stays outside them).
pub fn open_cache_noting_with_fs(
    dir: &Path,
    cache_bytes: u64,
    fs: &Fs,
) -> Result<(SledCache, Option<PathBuf>), EngineError> {
    match SledCache::open(dir, cache_bytes) {
        Ok(c) => Ok((c, None)),
        Err(EngineError::Corrupt(why)) => {
            warn!(cache = %dir.display(), error = %why,
                "the snapshot cache is damaged; moving it aside and starting a new one");
            let moved = move_aside(dir, fs.as_ref())?;
            Ok((SledCache::open(dir, cache_bytes)?, moved))
        }
        Err(e) => Err(e),
    }
}

/// Removes a probe file ([`PROBE_FILE`]) a process that stopped during a
/// probe left behind, through the file operations `fs` (best effort: a
/// leftover that cannot be removed harms nothing, the next probe empties
/// and removes it).
fn remove_probe(dir: &Path, fs: &Fs) {
    let path = dir.join(PROBE_FILE);
    if !path.exists() {
        return;
    }
    if fs.remove_file(&path).is_ok() {
        let _ = fs.sync_dir(dir);
        info!("removed the free-space probe file an earlier run left behind");
    }
}

/// Removes copies of an incomplete write that a stopped run left half
/// made (`torn-after-*.bin.partial`): the bytes they were copied from are
/// still in the segment, and are copied again before the first write.
fn remove_partial_copies(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("torn-after-") && n.ends_with(".bin.partial"))
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed = true;
        }
    }
    if removed {
        crate::files::sync_dir(dir);
        info!("removed a half-made copy of an incomplete write an earlier run left behind");
    }
}

fn damage_at(files: &Files, name: &str, offset: u64, reason: &str) -> EngineError {
    EngineError::Damaged(Damage {
        seq: files.records.len() as u64 + 1,
        segment: name.to_owned(),
        offset,
        reason: reason.to_owned(),
    })
}

/// Renames `dir` to `<dir>.damaged-<UTC time>` ([`crate::file_time`]) through `fs`; returns the
/// new name (`None` if there was no `dir`).
fn move_aside(dir: &Path, fs: &dyn super::fs::FileOps) -> Result<Option<PathBuf>, EngineError> {
    if !dir.exists() {
        return Ok(None);
    }
    let mut target = dir.as_os_str().to_owned();
    target.push(format!(".damaged-{}", crate::file_time_now()));
    let mut target = PathBuf::from(target);
    let mut n = 1;
    while target.exists() {
        let mut t = dir.as_os_str().to_owned();
        t.push(format!(".damaged-{}-{n}", crate::file_time_now()));
        target = PathBuf::from(t);
        n += 1;
    }
    fs.rename(dir, &target).map_err(io)?;
    if let Some(parent) = dir.parent()
        && let Err(e) = fs.sync_dir(parent)
    {
        warn!(error = %e, "the directory of the moved cache could not be synced");
    }
    warn!(moved_to = %target.display(), "the snapshot cache was moved aside");
    Ok(Some(target))
}

impl LogEngine for SegmentEngine {
    fn append(
        &self,
        records: &[(u64, Vec<u8>)],
        checkpoint: Option<(u64, Vec<u8>)>,
    ) -> Result<(), EngineError> {
        let Mode::Writable { max_segment_bytes } = self.mode else {
            return Err(EngineError::Io("the log is open read-only".into()));
        };
        self.set_torn_tail_aside()?;
        let mut files = self.lock();
        let next = files.records.len() as u64 + 1;
        if records
            .iter()
            .enumerate()
            .any(|(i, (s, _))| *s != next + i as u64)
        {
            return Err(EngineError::Io("records appended out of order".into()));
        }
        if files.dirty {
            // A failed write may have left bytes past the acknowledged end.
            let newest = files.segments.last().ok_or_else(|| {
                EngineError::Io("a failed write left no segment to cut back".into())
            })?;
            self.fs.set_len(&newest.file, files.open_len).map_err(io)?;
            self.fs.sync_all(&newest.file).map_err(io)?;
            files.dirty = false;
        }
        if files.segments.is_empty() || files.open_len >= max_segment_bytes {
            self.roll(&mut files, next)?;
        }
        let mut buf = Vec::new();
        let mut locs = Vec::with_capacity(records.len());
        let segment = files.segments.len() - 1;
        let base = files.open_len;
        for (seq, bytes) in records {
            let offset = base + buf.len() as u64 + segment::FRAME_HEADER_LEN as u64;
            segment::encode_frame(KIND_RECORD, *seq, bytes, &mut buf);
            locs.push(Loc {
                segment,
                offset,
                len: bytes.len(),
            });
        }
        let cp = checkpoint.map(|(seq, bytes)| {
            let offset = base + buf.len() as u64 + segment::FRAME_HEADER_LEN as u64;
            segment::encode_frame(KIND_CHECKPOINT, seq, &bytes, &mut buf);
            (
                seq,
                Loc {
                    segment,
                    offset,
                    len: bytes.len(),
                },
            )
        });
        let file = &files.segments[segment].file;
        let fs = &self.fs;
        if let Err(e) = fs
            .write_at(file, &buf, base)
            .and_then(|()| fs.sync_data(file))
        {
            // Nothing of this write is acknowledged, but its pages may
            // still reach the disk: cut them off at once, so that neither
            // a start after a crash nor a read of the files meanwhile
            // (verify, backup, read-only serving) takes them as records.
            match fs.set_len(file, base).and_then(|()| fs.sync_all(file)) {
                Ok(()) => files.dirty = false,
                Err(cut) => {
                    let blanked = blank_past(fs.as_ref(), file, base, buf.len());
                    files.dirty = true;
                    match blanked {
                        Ok(()) => warn!(
                            error = %cut,
                            "a failed write could not be cut back; its bytes were overwritten \
                             with zeros (an unfinished write, never a record) until the log heals"
                        ),
                        Err(blank) => warn!(
                            error = %cut,
                            blank_error = %blank,
                            "a failed write could not be cut back nor overwritten; bytes that \
                             were never acknowledged may remain past the last record until the \
                             log heals"
                        ),
                    }
                }
            }
            return Err(io(e));
        }
        files.open_len = base + buf.len() as u64;
        files.records.extend(locs);
        files.checkpoints.extend(cp);
        Ok(())
    }

    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, EngineError> {
        let files = self.lock();
        let Some(loc) = seq
            .checked_sub(1)
            .and_then(|i| files.records.get(i as usize).copied())
        else {
            return Ok(None);
        };
        self.read(&files, loc).map(Some)
    }

    fn scan(&self, from: u64) -> Box<dyn Iterator<Item = Item> + '_> {
        let mut seq = from.max(1);
        Box::new(std::iter::from_fn(move || {
            let files = self.lock();
            let loc = files.records.get(seq as usize - 1).copied()?;
            let item = self.read(&files, loc).map(|b| (seq, b));
            seq += 1;
            Some(item)
        }))
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        let files = self.lock();
        let Some(loc) = files.records.last().copied() else {
            return Ok(None);
        };
        let seq = files.records.len() as u64;
        self.read(&files, loc).map(|b| Some((seq, b)))
    }

    /// Read one at a time, the files' lock taken for each read only (as
    /// [`LogEngine::scan`] does): never all of them under the lock.
    fn checkpoints(&self) -> Box<dyn Iterator<Item = Item> + '_> {
        let mut i = 0;
        Box::new(std::iter::from_fn(move || {
            let files = self.lock();
            let (seq, loc) = files.checkpoints.get(i).copied()?;
            i += 1;
            Some(self.read(&files, loc).map(|b| (seq, b)))
        }))
    }

    /// The newest one only: one positioned read, whatever the number of
    /// checkpoints.
    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        let files = self.lock();
        let Some((seq, loc)) = files.checkpoints.last().copied() else {
            return Ok(None);
        };
        self.read(&files, loc).map(|b| Some((seq, b)))
    }

    fn put_snapshot(&self, seq: u64, bytes: &[u8]) -> Result<(), EngineError> {
        let mut cache = self.cache();
        if cache.is_none() {
            // Running without one since it could not be opened: try again.
            let at = self
                .cache_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some((dir, cache_bytes)) = at {
                let (c, _) = open_cache_noting_with_fs(&dir, cache_bytes, &self.fs)?;
                info!(cache = %dir.display(), "the snapshot cache opens again");
                *cache = Some(c);
                *self.cache_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
        match cache.as_ref() {
            Some(c) => c.put_snapshot(seq, bytes),
            None => Err(EngineError::Io("no snapshot cache is open".into())),
        }
    }

    fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        match self.cache().as_ref() {
            Some(c) => c.latest_snapshot(),
            None => Ok(None),
        }
    }

    fn clear_snapshots(&self) -> Result<(), EngineError> {
        match self.cache().as_ref() {
            Some(c) => c.clear_snapshots(),
            None => Ok(()),
        }
    }

    fn reread_tail(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        SegmentEngine::reread_tail(self)
    }

    /// Cuts the newest segment back to its last acknowledged frame (if a
    /// failed write left bytes past it), then writes, syncs and removes a
    /// probe file of [`PROBE_BYTES`] in the log's directory.
    fn probe_write(&self) -> Result<(), EngineError> {
        let Mode::Writable { .. } = self.mode else {
            return Err(EngineError::Io("the log is open read-only".into()));
        };
        // An incomplete write found at open and not yet set aside (the
        // disk was full then): the probe is the first write, so it goes
        // first, and the log takes writes only once it is done.
        self.set_torn_tail_aside()?;
        {
            let mut files = self.lock();
            if files.dirty {
                if let Some(newest) = files.segments.last() {
                    self.fs.set_len(&newest.file, files.open_len).map_err(io)?;
                    self.fs.sync_all(&newest.file).map_err(io)?;
                }
                files.dirty = false;
            }
        }
        if !self.dir.exists() {
            return Ok(());
        }
        let path = self.dir.join(PROBE_FILE);
        let fs = &self.fs;
        let result = (|| {
            let f = fs.open(&path, Open::CreateTruncate)?;
            fs.write_at(&f, &vec![0u8; PROBE_BYTES], 0)?;
            fs.sync_data(&f)
        })();
        let _ = fs.remove_file(&path);
        result.map_err(io)
    }
}

/// After a failed write whose cut-back failed too: overwrites, in place,
/// every byte past the acknowledged end `base` with zeros and syncs them,
/// so that the failed frames can never be read back as whole records (by
/// a start after a crash, a verify or a backup): a newest segment that
/// ends in zero bytes ends in an unfinished write ([`segment::End::Torn`]),
/// never in damage. Covers the file as far as it reaches now (the cut did
/// not change it), or, if the cut did shorten it but its sync failed, the
/// `written` bytes of the failed write (whose old length may come back
/// after a crash).
fn blank_past(
    fs: &dyn super::fs::FileOps,
    file: &File,
    base: u64,
    written: usize,
) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let end = if len > base {
        len
    } else {
        base + written as u64
    };
    let zeros = vec![0u8; (end - base) as usize];
    fs.write_at(file, &zeros, base)?;
    fs.sync_data(file)
}

/// The probe file a degraded log writes to learn whether the disk takes
/// writes again (removed at once; never read).
pub const PROBE_FILE: &str = "probe.tmp";
/// Its size: room for a few group commits.
const PROBE_BYTES: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    const ID: [u8; 16] = [3; 16];

    fn writable(dir: &Path, max: u64) -> SegmentEngine {
        SegmentEngine::open(
            dir,
            ID,
            Mode::Writable {
                max_segment_bytes: max,
            },
        )
        .expect("opens")
    }

    fn rec(seq: u64) -> (u64, Vec<u8>) {
        (seq, format!("record {seq}").into_bytes())
    }

    fn fill(engine: &SegmentEngine, from: u64, to: u64) {
        for seq in from..=to {
            let cp = (seq % 10 == 0).then(|| (seq, format!("cp {seq}").into_bytes()));
            engine.append(&[rec(seq)], cp).expect("append");
        }
    }

    fn files_of(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read"),
                )
            })
            .collect()
    }

    #[test]
    fn records_roll_across_segments_and_read_back_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        let engine = writable(&log, 300);
        fill(&engine, 1, 50);
        let names = engine.segment_names();
        assert!(names.len() > 5, "rolled: {names:?}");
        drop(engine);
        for engine in [
            writable(&log, 300),
            SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("read-only"),
        ] {
            assert_eq!(engine.segment_names(), names);
            assert_eq!(engine.last().expect("last"), Some(rec(50)));
            assert_eq!(engine.get(17).expect("get"), Some(rec(17).1));
            assert_eq!(engine.get(51).expect("get"), None);
            assert_eq!(engine.get(0).expect("get"), None);
            let scanned: Vec<_> = engine.scan(20).map(|i| i.expect("item")).collect();
            assert_eq!(scanned, (20..=50).map(rec).collect::<Vec<_>>());
            let cps: Vec<u64> = engine.checkpoints().map(|i| i.expect("cp").0).collect();
            assert_eq!(cps, vec![10, 20, 30, 40, 50]);
        }
        // Appends continue after a reopen, in a new segment once full.
        let engine = writable(&log, 300);
        fill(&engine, 51, 60);
        drop(engine);
        let engine = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("reopen");
        assert_eq!(engine.last().expect("last"), Some(rec(60)));
        assert!(engine.torn_tail().is_none());
    }

    #[test]
    fn a_torn_tail_is_copied_aside_then_cut_and_a_read_only_open_changes_nothing() {
        for zeros in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = dir.path().join("log");
            fill(&writable(&log, 1 << 20), 1, 20);
            let seg = log.join(segment::file_name(1));
            let whole = std::fs::read(&seg).expect("read");
            let tail: Vec<u8> = if zeros {
                vec![0; 4096]
            } else {
                let mut frame = Vec::new();
                segment::encode_frame(KIND_RECORD, 21, b"never acknowledged", &mut frame);
                frame[..frame.len() - 5].to_vec()
            };
            let mut torn = whole.clone();
            torn.extend_from_slice(&tail);
            std::fs::write(&seg, &torn).expect("write");

            let before = files_of(&log);
            let ro = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("read-only");
            assert_eq!(ro.torn_tail().map(|t| t.bytes), Some(tail.len() as u64));
            assert_eq!(ro.last().expect("last"), Some(rec(20)));
            drop(ro);
            assert_eq!(files_of(&log), before, "a read-only open wrote");

            let engine = writable(&log, 1 << 20);
            assert_eq!(files_of(&log), before, "opening alone changes nothing");
            let saved = engine
                .set_torn_tail_aside()
                .expect("aside")
                .and_then(|t| t.saved_to)
                .expect("saved");
            assert_eq!(std::fs::read(&saved).expect("aside"), tail);
            assert_eq!(std::fs::read(&seg).expect("seg"), whole);
            assert_eq!(engine.last().expect("last"), Some(rec(20)));
            fill(&engine, 21, 22);
            drop(engine);
            let engine = writable(&log, 1 << 20);
            assert!(engine.torn_tail().is_none());
            assert_eq!(engine.last().expect("last"), Some(rec(22)));
        }
    }

    #[test]
    fn a_new_segment_whose_header_never_reached_the_disk_is_set_aside_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        fill(&writable(&log, 1 << 20), 1, 12);
        // A roll interrupted before its header was written and synced.
        let next = log.join(segment::file_name(13));
        std::fs::write(&next, [0u8; 7]).expect("write");
        let before = files_of(&log);
        let ro = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("read-only");
        assert_eq!(ro.torn_tail().map(|t| (t.offset, t.bytes)), Some((0, 7)));
        drop(ro);
        let engine = writable(&log, 1 << 20);
        assert_eq!(files_of(&log), before, "opening alone changes nothing");
        let saved = engine
            .set_torn_tail_aside()
            .expect("aside")
            .and_then(|t| t.saved_to)
            .expect("saved");
        assert_eq!(std::fs::read(saved).expect("aside"), vec![0u8; 7]);
        assert!(!next.exists());
        fill(&engine, 13, 14);
        drop(engine);
        let engine = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("reopen");
        assert_eq!(engine.last().expect("last"), Some(rec(14)));
    }

    #[test]
    fn damage_is_named_and_nothing_is_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        fill(&writable(&log, 300), 1, 40);
        let pristine = files_of(&log);
        let names: Vec<String> = pristine
            .keys()
            .filter(|n| n.starts_with("seg-"))
            .cloned()
            .collect();
        let restore = || {
            for (n, b) in &pristine {
                std::fs::write(log.join(n), b).expect("restore");
            }
        };
        // A flipped byte in the last byte of each segment (a full-length
        // frame whose checksum fails), including the newest.
        for name in &names {
            let mut bad = pristine[name].clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x40;
            std::fs::write(log.join(name), &bad).expect("write");
            let before = files_of(&log);
            for mode in [
                Mode::ReadOnly,
                Mode::Writable {
                    max_segment_bytes: 300,
                },
            ] {
                let err = SegmentEngine::open(&log, ID, mode).expect_err("damage");
                let EngineError::Damaged(d) = err else {
                    panic!("{err}")
                };
                assert_eq!(&d.segment, name);
                assert!(d.reason.contains("checksum"), "{d}");
                assert!(d.offset > 0 && d.offset < bad.len() as u64);
                assert_eq!(files_of(&log), before, "{name}: bytes changed");
            }
            restore();
        }
        // A missing segment in the middle.
        std::fs::remove_file(log.join(&names[1])).expect("rm");
        let err = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect_err("gap");
        assert!(err.to_string().contains("segment is missing"), "{err}");
        restore();
        // Another store's segment.
        let err = SegmentEngine::open(&log, [4; 16], Mode::ReadOnly).expect_err("other store");
        assert!(err.to_string().contains("another store"), "{err}");
        // Restored: whole again.
        let engine = writable(&log, 300);
        assert_eq!(engine.last().expect("last"), Some(rec(40)));
    }

    #[test]
    fn a_torn_tail_that_cannot_be_copied_leaves_no_copy_and_is_set_aside_once_by_the_probe() {
        use crate::log::fs::{Fault, FaultFs, Op};
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        fill(&writable(&log, 1 << 20), 1, 5);
        let seg = log.join(segment::file_name(1));
        let whole = std::fs::read(&seg).expect("read");
        let mut torn = whole.clone();
        torn.extend_from_slice(&[0u8; 100]);
        std::fs::write(&seg, &torn).expect("write");
        // A half-made copy a killed run left: removed by a writable open.
        let left = log.join("torn-after-5-1.bin.partial");
        std::fs::write(&left, [0u8; 3]).expect("partial");
        let faults = FaultFs::new();
        let engine = SegmentEngine::open_with_fs(
            &log,
            ID,
            Mode::Writable {
                max_segment_bytes: 1 << 20,
            },
            faults.handle(),
        )
        .expect("opens");
        assert!(!left.exists(), "the half-made copy is removed");
        let aside = || -> Vec<String> {
            std::fs::read_dir(&log)
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("torn-after"))
                .collect()
        };
        // A full disk: every attempt fails and leaves nothing behind.
        faults.fail_from(Op::Write, 1, Fault::Enospc);
        for _ in 0..3 {
            assert!(engine.set_torn_tail_aside().is_err());
            assert!(engine.probe_write().is_err());
            assert!(engine.reread_tail().is_err());
        }
        assert_eq!(aside(), Vec::<String>::new());
        assert_eq!(std::fs::read(&seg).expect("seg"), torn);
        assert_eq!(engine.last().expect("last"), Some(rec(5)));
        // The rename fails: no copy either.
        faults.lift();
        faults.fail_from(Op::Rename, 1, Fault::Enospc);
        assert!(engine.probe_write().is_err());
        assert_eq!(aside(), Vec::<String>::new());
        // Space returns: the probe sets it aside, once, whole.
        faults.lift();
        engine.probe_write().expect("probe");
        engine.probe_write().expect("probe again");
        assert_eq!(engine.reread_tail().expect("reread").map(|r| r.0), Some(5));
        let names = aside();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].ends_with(".bin"), "{names:?}");
        assert_eq!(
            std::fs::read(log.join(&names[0])).expect("aside"),
            vec![0u8; 100]
        );
        assert_eq!(std::fs::read(&seg).expect("seg"), whole);
    }

    #[test]
    fn a_segment_larger_than_any_segment_can_be_is_damage_named_with_its_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        fill(&writable(&log, 1 << 20), 1, 5);
        let seg = log.join(segment::file_name(1));
        let f = OpenOptions::new().write(true).open(&seg).expect("open");
        f.set_len(200 << 30).expect("sparse");
        for mode in [
            Mode::ReadOnly,
            Mode::Writable {
                max_segment_bytes: 1 << 20,
            },
        ] {
            let err = SegmentEngine::open(&log, ID, mode).expect_err("damage");
            let text = err.to_string();
            assert!(text.contains(&segment::file_name(1)), "{text}");
            assert!(text.contains(&(200u64 << 30).to_string()), "{text}");
        }
        assert_eq!(std::fs::metadata(&seg).expect("meta").len(), 200 << 30);
    }

    #[test]
    fn a_failed_write_is_cut_back_before_the_next_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        let engine = writable(&log, 1 << 20);
        fill(&engine, 1, 5);
        // Bytes past the acknowledged end, as a failed write leaves them.
        let seg = log.join(segment::file_name(1));
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
        std::io::Write::write_all(&mut f, b"half a frame").expect("write");
        assert_eq!(
            engine.reread_tail().expect("reread").map(|(seq, _)| seq),
            Some(5)
        );
        fill(&engine, 6, 7);
        drop(engine);
        let engine = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("open");
        assert!(engine.torn_tail().is_none());
        assert_eq!(engine.last().expect("last"), Some(rec(7)));
    }

    #[test]
    fn a_write_whose_sync_failed_is_cut_off_at_once_and_a_crash_keeps_none_of_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        let faults = crate::log::fs::FaultFs::new();
        let engine = SegmentEngine::open_with_fs(
            &log,
            ID,
            Mode::Writable {
                max_segment_bytes: 1 << 20,
            },
            faults.handle(),
        )
        .expect("opens");
        fill(&engine, 1, 5);
        let seg = log.join(segment::file_name(1));
        let acknowledged = std::fs::read(&seg).expect("read");
        // The write reaches the file, then fdatasync fails: nothing of
        // records 6 and 7 is acknowledged.
        faults.fail_once(crate::log::fs::Op::Sync, 1, crate::log::fs::Fault::Eio);
        let err = engine
            .append(&[rec(6), rec(7)], Some((7, b"cp 7".to_vec())))
            .expect_err("not acknowledged");
        assert!(matches!(err, EngineError::Io(_)), "{err}");
        // Cut back at once, before any heal or append: a verify or a
        // backup of the files now sees only the acknowledged records.
        assert_eq!(std::fs::read(&seg).expect("read"), acknowledged);
        // The server crashes before it heals: the next start holds
        // exactly the acknowledged records, with nothing set aside.
        drop(engine);
        let engine = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("reopen");
        assert!(engine.torn_tail().is_none());
        assert_eq!(engine.last().expect("last"), Some(rec(5)));
        assert_eq!(engine.get(6).expect("get"), None);
    }

    #[test]
    fn a_failed_write_whose_cut_back_fails_is_overwritten_with_zeros_and_never_read_as_a_record() {
        use crate::log::fs::{Fault, FaultFs, Op};
        let mode = Mode::Writable {
            max_segment_bytes: 1 << 20,
        };
        // 1: cutting the file back fails; 2: the cut shortens the file but
        // its sync fails (the old length may come back after a crash).
        for cut_fails in [Op::SetLen, Op::Sync] {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = dir.path().join("log");
            let faults = FaultFs::new();
            let engine =
                SegmentEngine::open_with_fs(&log, ID, mode, faults.handle()).expect("opens");
            fill(&engine, 1, 5);
            let seg = log.join(segment::file_name(1));
            let acknowledged = std::fs::read(&seg).expect("read").len();
            faults.fail_once(Op::Sync, 1, Fault::Eio);
            // (The cut's sync is the second sync from now.)
            let nth = if cut_fails == Op::Sync { 2 } else { 1 };
            faults.fail_once(cut_fails, nth, Fault::Eio);
            engine
                .append(&[rec(6), rec(7)], Some((7, b"cp 7".to_vec())))
                .expect_err("not acknowledged");
            let bytes = std::fs::read(&seg).expect("read");
            assert!(
                bytes.len() > acknowledged,
                "{cut_fails:?}: nothing to blank"
            );
            assert!(
                bytes[acknowledged..].iter().all(|b| *b == 0),
                "{cut_fails:?}: the failed frames are still in the file"
            );
            // A reader meanwhile, and a start after a crash, see five
            // records and an unfinished write: never damage, never 6.
            let ro = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("read-only open");
            assert_eq!(ro.last().expect("last"), Some(rec(5)), "{cut_fails:?}");
            assert_eq!(ro.get(6).expect("get"), None);
            assert!(ro.torn_tail().is_some());
            drop(ro);
            // The heal cuts the zeros off, and the log goes on at 6.
            assert_eq!(
                engine.reread_tail().expect("reread").map(|(seq, _)| seq),
                Some(5)
            );
            assert_eq!(std::fs::read(&seg).expect("read").len(), acknowledged);
            fill(&engine, 6, 6);
            drop(engine);
            let engine = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("reopen");
            assert!(engine.torn_tail().is_none());
            assert_eq!(engine.last().expect("last"), Some(rec(6)));
        }
    }

    #[test]
    fn the_heal_reads_the_tail_back_from_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        let engine = writable(&log, 1 << 20);
        fill(&engine, 1, 5);
        let seg = log.join(segment::file_name(1));
        let whole = std::fs::read(&seg).expect("read");
        // Whole and acknowledged: the last record as the disk holds it.
        assert_eq!(engine.reread_tail().expect("reread"), Some(rec(5)));
        // The last acknowledged frame no longer reads back (a failing
        // disk lost its sector): damage, named, not a healed log.
        let (frames, _) = segment::parse_frames(&whole);
        let last = frames.last().expect("frame").offset as usize;
        let mut lost = whole.clone();
        for b in &mut lost[last + 2..] {
            *b = 0;
        }
        std::fs::write(&seg, &lost).expect("write");
        let err = engine.reread_tail().expect_err("damage");
        let EngineError::Damaged(d) = err else {
            panic!("{err}")
        };
        assert_eq!(d.offset, last as u64, "{d}");
        // Records missing from the end of the file.
        std::fs::write(&seg, &whole[..last]).expect("write");
        assert!(matches!(engine.reread_tail(), Err(EngineError::Damaged(_))));
    }

    #[test]
    fn a_probe_file_left_by_a_stopped_run_is_removed_at_open_and_a_probe_leaves_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        let engine = writable(&log, 1 << 20);
        fill(&engine, 1, 3);
        engine.probe_write().expect("probe");
        assert!(!log.join(PROBE_FILE).exists(), "a probe left its file");
        drop(engine);
        // A run stopped in the middle of a probe.
        std::fs::write(log.join(PROBE_FILE), [0u8; 4096]).expect("leftover");
        let engine = SegmentEngine::open(&log, ID, Mode::ReadOnly).expect("read-only");
        assert!(
            log.join(PROBE_FILE).exists(),
            "a read-only open changes nothing"
        );
        drop(engine);
        // The removal goes through the file operations: a disk that
        // refuses it leaves the leftover, and the open still succeeds.
        let faults = crate::log::fs::FaultFs::new();
        faults.fail_from(crate::log::fs::Op::Remove, 1, crate::log::fs::Fault::Eio);
        let mode = Mode::Writable {
            max_segment_bytes: 1 << 20,
        };
        let engine = SegmentEngine::open_with_fs(&log, ID, mode, faults.handle())
            .expect("opens with a leftover it cannot remove");
        assert_eq!(faults.calls(crate::log::fs::Op::Remove), 1);
        assert!(log.join(PROBE_FILE).exists());
        drop(engine);
        let engine = writable(&log, 1 << 20);
        assert!(
            !log.join(PROBE_FILE).exists(),
            "the leftover was not removed"
        );
        assert_eq!(engine.last().expect("last"), Some(rec(3)));
    }

    #[test]
    fn a_cache_that_cannot_be_opened_for_an_io_reason_is_left_where_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Not a directory: sled cannot open it, and nothing says it is
        // damaged (as with a full disk).
        let cache = dir.path().join("cache");
        std::fs::write(&cache, b"not a cache").expect("write");
        let err = open_cache(&cache, 1 << 20).expect_err("does not open");
        assert!(matches!(err, EngineError::Io(_)), "{err}");
        assert_eq!(std::fs::read(&cache).expect("still there"), b"not a cache");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "moved or added: {names:?}");
    }
}
