//! `hotline-server recover --truncate-after-copy`: the operator's choice
//! to give up what follows the first damage in the log, keeping a copy.
//!
//! First [`plan_recovery`] says exactly what would be given up, reading
//! only (the records' sequence and time range, how many alerts,
//! messages and check-ins among them and every kind of event in words,
//! opened with the master key where they still open, and between which
//! readable times the unreadable ones were written): `recover --dry-run` stops there, and the operator
//! confirms the plan before anything changes. Then
//! [`recover_truncate_after_copy`] takes the data directory's lock, checks
//! that the store still gives the same plan, and copies everything from the
//! first bad frame to the end of the log (the rest of that segment, every
//! later segment, and `chain.head`) into `<data_dir>/recovered-<UTC
//! time>/` (`recovered-20261130T193105Z/`) and syncs it; only then is `chain.head` replaced (written
//! beside it, synced, renamed over it) with the newest checkpoint that
//! remains, and then the segments are cut at the bad frame. The snapshot
//! cache (it holds the state of records now cut) is moved into the same
//! directory, so the next start rebuilds from the log instead of
//! reporting a possible rollback. When the last record kept is after
//! that checkpoint, a checkpoint of the last record kept is signed with
//! the store's key into `chain.head` (as a backup does for its copy), so
//! the head line `verify` prints covers every record kept. The store is
//! then verified. Nothing is deleted that is not in the copy, so putting
//! the copied files back undoes it ([`undo_commands`] says how). The segments and `chain.head` are
//! changed through the log's file operations ([`crate::log::fs`]): if
//! replacing `chain.head` fails, nothing in the store has changed (the
//! error says so) and the recovery can simply be run again.
//!
//! When the log's files end before a record that `chain.head` signs (the
//! newest segment lost or cut), the records missing are gone from this
//! disk: the plan says that signed records are lost, and the recovery
//! (once confirmed) cuts only an incomplete write at the end and rewrites
//! `chain.head` to the newest checkpoint in the log, then signs a
//! checkpoint of the last record kept.

use std::path::{Path, PathBuf};

use tracing::warn;

use super::{Create, OpenError, StoreError, log_dir, open_keys, verify_store};
use crate::domain::Event;
use crate::domain::alerts::AlertEvent;
use crate::domain::cases::CaseEvent;
use crate::domain::checkins::CheckinEvent;
use crate::domain::mailbox::MailEvent;
use crate::log::engine::{EngineError, LogEngine};
use crate::log::fs::{Fs, Open};
use crate::log::head::{Head, HeadFile};
use crate::log::keys::{KeySource, StoreKeys};
use crate::log::record::Checkpoint;
use crate::log::segment;
use crate::log::segments::{self, Mode, SegmentEngine};
use crate::log::{Entry, HEAD_FILE, LogError};

/// What a recovery did.
#[derive(Debug, Clone)]
pub struct RecoverReport {
    /// Records kept (all verified).
    pub kept: u64,
    /// Where the cut-off bytes were copied, if anything was cut.
    pub copied_to: Option<PathBuf>,
    /// The first record given up, if anything was cut.
    pub first_cut: Option<u64>,
}

/// What the records a recovery gives up hold, as far as they open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutContents {
    /// Records that opened with the store's keys.
    pub opened: u64,
    /// Alerts raised (an SOS that joined an open alert included).
    pub alerts: u64,
    /// Messages (envelopes) stored.
    pub messages: u64,
    /// Check-ins.
    pub checkins: u64,
    /// Records of a case whose key was destroyed (unreadable by design).
    pub shredded: u64,
    /// Records in the range that cannot be read: damaged, cut short, or
    /// not in the files at all.
    pub unreadable: u64,
    /// Bytes after the damage that could not be split into records (a
    /// damaged frame and whatever follows it in its segment).
    pub unsplit_bytes: u64,
    /// The earliest and latest times recorded in the records that opened.
    pub times: Option<(u64, u64)>,
    /// Every kind of event in the records that opened, in words ("claim(s)
    /// of an alert by an officer"), with how many; in a fixed order.
    pub kinds: std::collections::BTreeMap<(u8, &'static str), u64>,
    /// When the unreadable records were written, as far as their readable
    /// neighbours say: the newest time before the first of them (in the
    /// records given up, else in the records kept) and the oldest time
    /// after the last of them. `None` when every record reads.
    pub unreadable_between: Option<(Option<u64>, Option<u64>)>,
}

/// What a recovery would give up, found by reading only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// What verification found, in words.
    pub finding: String,
    /// The segment file where the log will end.
    pub segment: String,
    /// The byte offset in it where the log will end (below the header
    /// length: the file is removed).
    pub offset: u64,
    /// Later segment files, removed whole (after being copied).
    pub later_segments: Vec<String>,
    /// Bytes copied aside and removed from the log.
    pub cut_bytes: u64,
    /// Records kept (records 1 to `kept`).
    pub kept: u64,
    /// The first record given up.
    pub first_cut: u64,
    /// The last record given up: the highest sequence number found after
    /// the cut, or `chain.head`'s if higher.
    pub last_cut: u64,
    /// What the records given up hold.
    pub contents: CutContents,
    /// The newest time readable in the records kept, if any.
    pub kept_until: Option<u64>,
    /// Records `chain.head` signs that no frame in the files holds (the
    /// newest segment lost or cut): gone from this disk.
    pub not_in_files: Option<(u64, u64)>,
    /// `chain.head`'s checkpoint now.
    pub head_now: Option<Checkpoint>,
    /// The checkpoint `chain.head` will hold (the newest left in the log).
    pub head_after: Option<Checkpoint>,
    /// Only `chain.head` is unusable (damaged or missing) while every
    /// record verifies: nothing is given up, `chain.head` is rewritten
    /// from the log's newest checkpoint (the old file kept aside). A
    /// rollback of the log by whoever damaged it cannot be ruled out here:
    /// only a head line kept elsewhere (`verify --expect-head`) can.
    pub head_unusable: bool,
}

impl RecoveryPlan {
    /// Records given up.
    pub fn records_cut(&self) -> u64 {
        self.last_cut
            .checked_sub(self.first_cut)
            .map_or(0, |d| d.saturating_add(1))
    }

    /// Whether records that `chain.head` signs are given up: acknowledged
    /// records, and `chain.head` rewritten back to an earlier one.
    pub fn gives_up_signed_records(&self) -> bool {
        self.head_now.is_some_and(|cp| cp.seq > self.kept)
    }
}

/// Reads a segment file whole, after checking its size: a file larger
/// than any segment can be (a sparse or crafted file) is damage, named
/// with its size, and is never allocated.
fn read_segment(path: &Path) -> Result<Vec<u8>, OpenError> {
    let len = std::fs::metadata(path)
        .map_err(io("cannot read a segment"))?
        .len();
    if len > segments::MAX_SEGMENT_FILE_BYTES {
        return Err(StoreError::Io(segments::too_large(path, len)).into());
    }
    std::fs::read(path).map_err(io("cannot read a segment"))
}

fn io(what: &str) -> impl Fn(std::io::Error) -> OpenError + '_ {
    move |e| StoreError::Io(format!("{what}: {e}")).into()
}

/// Where the log must be cut, and why.
struct Finding {
    seq: u64,
    segment: String,
    offset: u64,
    reason: String,
    /// Only `chain.head` is unusable (damaged or missing); every record
    /// verifies and none is given up.
    head_only: bool,
}

/// `chain.head` is damaged or missing while every record verifies: the
/// recovery keeps every record, cuts only an incomplete write at the end
/// (copied aside), and rewrites `chain.head` from the log's newest
/// checkpoint, keeping the old file aside.
fn head_only_finding(engine: &SegmentEngine, reason: String) -> Option<Finding> {
    let (segment, offset, records) = engine.end()?;
    Some(Finding {
        seq: records + 1,
        segment,
        offset,
        reason,
        head_only: true,
    })
}

/// Finds the first damage in the store and where its frame starts.
fn first_damage(
    data_dir: &Path,
    keys: &StoreKeys,
    head: Head,
) -> Result<Option<Finding>, OpenError> {
    let engine = match SegmentEngine::open(&log_dir(data_dir), keys.store_id(), Mode::ReadOnly) {
        Ok(e) => e,
        Err(EngineError::Damaged(d)) => {
            return Ok(Some(Finding {
                seq: d.seq,
                reason: d.to_string(),
                segment: d.segment,
                offset: d.offset,
                head_only: false,
            }));
        }
        Err(e) => return Err(LogError::from_engine(e).into()),
    };
    match crate::log::verify_against(&engine, keys, data_dir, &[], head) {
        Ok(_) => Ok(None),
        Err(LogError::Tampered { seq: 0, reason })
            if reason.starts_with(crate::log::HEAD_UNUSABLE) =>
        {
            Ok(head_only_finding(&engine, reason))
        }
        Err(LogError::Tampered { seq, reason }) => match engine.frame_of(seq) {
            Some((segment, offset)) => Ok(Some(Finding {
                seq,
                segment,
                offset,
                reason,
                head_only: false,
            })),
            // Past the end: chain.head signs records the files do not
            // hold. Nothing to cut but an incomplete write at the end.
            None => match (head, engine.end()) {
                (Head::Checkpoint(cp), Some((segment, offset, records)))
                    if cp.seq >= seq && seq == records + 1 =>
                {
                    Ok(Some(Finding {
                        seq,
                        reason: format!(
                            "{reason}; {}",
                            super::verify::ends_at(
                                Some((segment.clone(), offset, records)),
                                engine.torn_tail().as_ref()
                            )
                        ),
                        segment,
                        offset,
                        head_only: false,
                    }))
                }
                // The only segment's header is incomplete (cut short or
                // zeroed): the whole file goes aside.
                (Head::Checkpoint(cp), None) if cp.seq >= seq && seq == 1 => {
                    match engine.torn_tail().filter(|t| t.offset == 0) {
                        Some(t) => Ok(Some(Finding {
                            seq,
                            reason: format!("{reason}; {}", super::verify::ends_at(None, Some(&t))),
                            segment: t.segment,
                            offset: 0,
                            head_only: false,
                        })),
                        None => Err(LogError::Tampered { seq, reason }.into()),
                    }
                }
                _ => Err(LogError::Tampered { seq, reason }.into()),
            },
        },
        Err(e) => Err(e.into()),
    }
}

/// The bytes a cut at `offset` gives up from one segment, as frames:
/// `(record frames (seq, payload), bytes that do not split into frames)`.
/// Records (sequence number and stored bytes) read from a segment.
type Records = Vec<(u64, Vec<u8>)>;

fn frames_after(bytes: &[u8], offset: usize) -> (Records, u64, Vec<u64>) {
    let buf: Vec<u8> = if offset < segment::HEADER_LEN {
        bytes.to_vec()
    } else {
        let mut b = bytes[..segment::HEADER_LEN].to_vec();
        b.extend_from_slice(bytes.get(offset..).unwrap_or(&[]));
        b
    };
    // Past frames whose payload is damaged but whose header checks out:
    // the records after them are counted (and cut all the same).
    let salvage = segment::salvage_frames(&buf);
    let unsplit = match salvage.end {
        segment::End::Clean => 0,
        segment::End::Torn { offset } | segment::End::Bad { offset, .. } => {
            (buf.len() as u64).saturating_sub(offset)
        }
    };
    let records = salvage
        .frames
        .into_iter()
        .filter(|f| f.kind == segment::KIND_RECORD)
        .map(|f| (f.seq, buf[f.payload].to_vec()))
        .collect();
    let damaged = salvage.damaged.into_iter().map(|(seq, _)| seq).collect();
    (records, unsplit, damaged)
}

/// Keeps the frames past the cut whose sequence numbers the cut bytes
/// could hold: records follow each other from `first` and each takes at
/// least a frame header, so a frame claiming a number beyond
/// `first + cut_bytes / FRAME_HEADER_LEN` (a crafted or damaged header:
/// `u64::MAX`) is damage, not a record; its payload's bytes are returned
/// with the bytes that do not split into frames.
fn plausible_records(
    records: Vec<(u64, Vec<u8>)>,
    first: u64,
    cut_bytes: u64,
) -> (Vec<(u64, Vec<u8>)>, u64) {
    let highest = first.saturating_add(cut_bytes / segment::FRAME_HEADER_LEN as u64);
    let mut implausible = 0u64;
    let kept = records
        .into_iter()
        .filter(|(seq, b)| {
            let ok = (first..=highest).contains(seq);
            if !ok {
                implausible = implausible
                    .saturating_add(b.len() as u64)
                    .saturating_add(segment::FRAME_HEADER_LEN as u64);
            }
            ok
        })
        .collect();
    (kept, implausible)
}

/// The time an event records, if it records one.
fn event_time(event: &Event) -> Option<u64> {
    match event {
        Event::InviteCreated { invite, .. } => Some(invite.created_at),
        Event::DeviceEnrolled { device, .. } => Some(device.enrolled_at),
        Event::DeviceRevoked { at, .. } => Some(*at),
        Event::Alert(
            AlertEvent::Raised { at, .. }
            | AlertEvent::Stepped { at, .. }
            | AlertEvent::CheckedInLate { at, .. }
            | AlertEvent::Released { at, .. }
            | AlertEvent::Joined { at, .. },
        ) => Some(*at),
        Event::Checkin(
            CheckinEvent::Set { at, .. }
            | CheckinEvent::CheckedIn { at, .. }
            | CheckinEvent::WrongCode { at, .. },
        ) => Some(*at),
        Event::Batch(events) => events.iter().filter_map(event_time).max(),
        Event::Case(
            CaseEvent::Appended { at, .. }
            | CaseEvent::Requested { at, .. }
            | CaseEvent::ErasureRequested { at, .. }
            | CaseEvent::Erased { at, .. },
        ) => Some(*at),
        _ => None,
    }
}

/// An event's kind in words (plural with "(s)"), and its place in the
/// summary's order. `None` for a batch (its events are counted).
fn kind(event: &Event) -> Option<(u8, &'static str)> {
    Some(match event {
        Event::Alert(a) => match a {
            AlertEvent::Raised { .. } => (0, "alert(s) raised"),
            AlertEvent::Joined { .. } => (1, "SOS(es) joined to an open alert"),
            AlertEvent::Stepped { .. } => (2, "escalation step(s) paging officers"),
            AlertEvent::Exhausted { .. } => (3, "escalation(s) run out"),
            AlertEvent::Delivered { .. } => (4, "alert delivery(ies) to an officer"),
            AlertEvent::Acknowledged { .. } => (5, "claim(s) of an alert by an officer"),
            AlertEvent::ClosedBy { .. } => (6, "alert(s) closed by an officer"),
            AlertEvent::Resolved { .. } => (7, "alert(s) resolved"),
            AlertEvent::Cancelled { .. } => (8, "alert(s) cancelled"),
            AlertEvent::CheckedInLate { .. } => (9, "late check-in(s) on an alert"),
            AlertEvent::Released { .. } => (10, "held alert(s) released"),
        },
        Event::Duty { on: true, .. } => (11, "duty change(s): an officer going on duty"),
        Event::Duty { on: false, .. } => (12, "duty change(s): an officer going off duty"),
        Event::Checkin(k) => match k {
            CheckinEvent::Set { .. } => (13, "check-in schedule change(s)"),
            CheckinEvent::CheckedIn { .. } => (14, "check-in(s)"),
            CheckinEvent::WrongCode { .. } => (15, "check-in(s) with a wrong code"),
            CheckinEvent::MissedAlerted { .. } => (16, "missed check-in(s) alerted"),
        },
        Event::Mail(m) => match m {
            MailEvent::EnvelopeStored { .. } => (17, "message(s) stored"),
            MailEvent::Read { .. } => (18, "message(s) marked read"),
            MailEvent::InboxAcked { .. } => (19, "inbox acknowledgement(s)"),
            MailEvent::RosterStored { .. } => (20, "roster update(s)"),
            MailEvent::PrekeysPublished { .. } => (21, "prekey publication(s)"),
            MailEvent::PrekeyTaken { .. } => (22, "prekey(s) taken"),
        },
        Event::InviteCreated { .. } => (23, "invite(s) created"),
        Event::DeviceEnrolled { .. } => (24, "enrolment(s) of a device"),
        Event::DeviceRevoked { .. } => (25, "revocation(s) of a device"),
        Event::PanicKeyRegistered { .. } => (26, "panic key(s) registered"),
        Event::CertificatePinned { .. } => (27, "TLS certificate record(s)"),
        Event::Case(c) => match c {
            CaseEvent::Appended { .. } => (29, "case event(s) written by staff"),
            CaseEvent::Requested { .. } => (30, "case request(s) by a defender"),
            CaseEvent::ErasureRequested { .. } => (31, "case erasure request(s)"),
            CaseEvent::Erased { .. } => (32, "case(s) erased"),
            CaseEvent::RequestDigest { .. } => (33, "case request digest(s)"),
        },
        Event::Batch(_) => return None,
    })
}

/// The kind counted for a case key destroyed (a log entry, not an event).
const KEY_ERASED: (u8, &str) = (28, "case key(s) destroyed");

/// Counts what an event holds into `c`.
fn count(event: &Event, c: &mut CutContents) {
    match event {
        Event::Alert(AlertEvent::Raised { .. } | AlertEvent::Joined { .. }) => c.alerts += 1,
        Event::Mail(MailEvent::EnvelopeStored { .. }) => c.messages += 1,
        Event::Checkin(CheckinEvent::CheckedIn { .. }) => c.checkins += 1,
        Event::Batch(events) => events.iter().for_each(|e| count(e, c)),
        _ => {}
    }
    if let Some(k) = kind(event) {
        *c.kinds.entry(k).or_default() += 1;
    }
    if let Some(t) = event_time(event) {
        c.times = Some(match c.times {
            None => (t, t),
            Some((a, b)) => (a.min(t), b.max(t)),
        });
    }
}

/// Opens the records given up and counts what they hold.
fn contents(
    data_dir: &Path,
    keys: &StoreKeys,
    records: &[(u64, Vec<u8>)],
    first: u64,
    last: u64,
    unsplit_bytes: u64,
    head: Option<Checkpoint>,
) -> Result<CutContents, OpenError> {
    let mut c = CutContents {
        unsplit_bytes,
        ..CutContents::default()
    };
    let in_range: Vec<(u64, &[u8])> = records
        .iter()
        .filter(|(seq, _)| (first..=last).contains(seq))
        .map(|(seq, b)| (*seq, b.as_slice()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    // The time each record that opened records, if it records one.
    let mut times = std::collections::BTreeMap::new();
    for ((seq, _), entry) in in_range.iter().zip(crate::log::open_stored(
        keys,
        data_dir,
        in_range.iter().copied(),
    )?) {
        if !seen.insert(*seq) {
            continue;
        }
        match entry {
            Ok(Entry::Event(bytes)) => match super::codec::decode_event(&bytes) {
                Ok(event) => {
                    c.opened += 1;
                    count(&event, &mut c);
                    if let Some(t) = event_time(&event) {
                        times.insert(*seq, t);
                    }
                }
                Err(_) => {
                    seen.remove(seq);
                }
            },
            Ok(Entry::Shredded) => c.shredded += 1,
            Ok(Entry::KeyErased) => {
                c.opened += 1;
                *c.kinds.entry(KEY_ERASED).or_default() += 1;
            }
            Err(_) => {
                seen.remove(seq);
            }
        }
    }
    c.unreadable = last
        .saturating_add(1)
        .saturating_sub(first)
        .saturating_sub(c.opened)
        .saturating_sub(c.shredded);
    let unread = || (first..=last).filter(|seq| !seen.contains(seq));
    if let (Some(a), Some(b)) = (unread().next(), unread().next_back()) {
        // After them: the next time a readable record gives, or the time
        // chain.head's signed checkpoint was made, if it signs them.
        let signed = head.filter(|cp| cp.seq >= b).map(|cp| cp.time);
        let after = times.range(b..).next().map(|(_, t)| *t);
        c.unreadable_between = Some((
            times.range(..a).next_back().map(|(_, t)| *t),
            match (after, signed) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            },
        ));
    }
    Ok(c)
}

/// The newest time readable in the last records kept (looking back at
/// most 256 records), if any.
fn kept_until(
    data_dir: &Path,
    keys: &StoreKeys,
    engine: &dyn LogEngine,
    kept: u64,
) -> Result<Option<u64>, OpenError> {
    let from = kept.saturating_sub(255).max(1);
    let mut stored = Vec::new();
    for seq in from..=kept {
        if let Some(b) = engine.get(seq).map_err(LogError::from_engine)? {
            stored.push((seq, b));
        }
    }
    let opened = crate::log::open_stored(
        keys,
        data_dir,
        stored.iter().map(|(s, b)| (*s, b.as_slice())),
    )?;
    Ok(opened
        .into_iter()
        .filter_map(|e| match e {
            Ok(Entry::Event(b)) => super::codec::decode_event(&b)
                .ok()
                .and_then(|e| event_time(&e)),
            _ => None,
        })
        .max())
}

/// Says what `recover --truncate-after-copy` would give up, reading only:
/// no file in the data directory is created or changed (the snapshot
/// cache is not opened, no lock file is created). `None`: the store
/// verifies, nothing to recover. Refused while another process holds the
/// data directory.
pub fn plan_recovery(data_dir: &Path, key: &KeySource) -> Result<Option<RecoveryPlan>, OpenError> {
    let keys = open_keys(data_dir, key, Create::Never)?;
    if super::backup::in_use(data_dir) {
        return Err(StoreError::Locked.into());
    }
    plan(data_dir, &keys)
}

fn plan(data_dir: &Path, keys: &StoreKeys) -> Result<Option<RecoveryPlan>, OpenError> {
    let log = log_dir(data_dir);
    let head = crate::log::read_head(keys, data_dir)?;
    let Some(found) = first_damage(data_dir, keys, head)? else {
        return Ok(None);
    };
    let first = segment::parse_file_name(&found.segment)
        .ok_or_else(|| StoreError::Corrupt("a segment has an unexpected name".into()))?;
    let mut later = Vec::new();
    for entry in std::fs::read_dir(&log).map_err(io("cannot list the segments"))? {
        let entry = entry.map_err(io("cannot list the segments"))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(f) = segment::parse_file_name(&file)
            && f > first
        {
            later.push(file);
        }
    }
    later.sort();
    let bytes = read_segment(&log.join(&found.segment))?;
    let cut = if (found.offset as usize) < segment::HEADER_LEN {
        0
    } else {
        found.offset as usize
    };
    let mut cut_bytes = bytes.len().saturating_sub(cut) as u64;
    let (mut records, mut unsplit, mut damaged) = frames_after(&bytes, cut);
    for file in &later {
        let b = read_segment(&log.join(file))?;
        cut_bytes += b.len() as u64;
        let (r, u, d) = frames_after(&b, 0);
        records.extend(r);
        unsplit += u;
        damaged.extend(d);
    }
    let head_now = match head {
        Head::Checkpoint(cp) => Some(cp),
        _ => None,
    };
    let kept = found.seq - 1;
    let (records, implausible) = plausible_records(records, found.seq, cut_bytes);
    unsplit = unsplit.saturating_add(implausible);
    // Frames whose payload is damaged are in the files (unreadable, and
    // counted so by `contents`); their numbers are used if plausible.
    let highest = found
        .seq
        .saturating_add(cut_bytes / segment::FRAME_HEADER_LEN as u64);
    let damaged: Vec<u64> = damaged
        .into_iter()
        .filter(|seq| (found.seq..=highest).contains(seq))
        .collect();
    let last_cut = if found.head_only {
        // Nothing is given up: records_cut() is 0.
        kept
    } else {
        records
            .iter()
            .map(|(seq, _)| *seq)
            .chain(damaged.iter().copied())
            .chain(head_now.map(|cp| cp.seq))
            .max()
            .unwrap_or(0)
            .max(found.seq)
    };
    let contents = contents(
        data_dir, keys, &records, found.seq, last_cut, unsplit, head_now,
    )?;
    let found_up_to = records
        .iter()
        .map(|(seq, _)| *seq)
        .chain(damaged.iter().copied())
        .max()
        .unwrap_or(kept)
        .max(kept);
    let not_in_files = head_now
        .filter(|cp| cp.seq > found_up_to)
        .map(|cp| (found_up_to + 1, cp.seq));
    // What remains: the records before the cut, and the newest checkpoint
    // among them.
    let (engine, _) =
        SegmentEngine::open_until_damage(&log, keys.store_id()).map_err(LogError::from_engine)?;
    let mut head_after = None;
    for item in engine.checkpoints() {
        let (seq, b) = item.map_err(LogError::from_engine)?;
        if seq <= kept {
            head_after = Checkpoint::from_bytes(&b).or(head_after);
        }
    }
    let kept_until = kept_until(data_dir, keys, &engine, kept)?;
    let mut contents = contents;
    // Before the first unreadable record given up: the records kept, if
    // no record given up before it says.
    if let Some((before @ None, _)) = contents.unreadable_between.as_mut() {
        *before = kept_until;
    }
    Ok(Some(RecoveryPlan {
        head_unusable: found.head_only,
        finding: found.reason,
        segment: found.segment,
        offset: cut as u64,
        later_segments: later,
        cut_bytes,
        kept,
        first_cut: found.seq,
        last_cut,
        contents,
        kept_until,
        not_in_files,
        head_now,
        head_after,
    }))
}

/// Carries out `confirmed` (from [`plan_recovery`], shown to the operator
/// and confirmed): see the module documentation. Takes the data
/// directory's lock, and changes nothing unless the store still gives the
/// same plan. Refuses while a server holds the store.
pub fn recover_truncate_after_copy(
    data_dir: &Path,
    key: &KeySource,
    cache_bytes: u64,
    confirmed: &RecoveryPlan,
) -> Result<RecoverReport, OpenError> {
    recover_truncate_after_copy_with_fs(
        data_dir,
        key,
        cache_bytes,
        confirmed,
        crate::log::fs::real(),
    )
}

/// [`recover_truncate_after_copy`], changing the log's files and
/// `chain.head` only through `fs` (tests inject faults there; the copy
/// aside is new files in a new directory, written directly).
pub(crate) fn recover_truncate_after_copy_with_fs(
    data_dir: &Path,
    key: &KeySource,
    cache_bytes: u64,
    confirmed: &RecoveryPlan,
    fs: Fs,
) -> Result<RecoverReport, OpenError> {
    let keys = open_keys(data_dir, key, Create::Never)?;
    // A server of the earlier version holds only the cache's lock.
    if super::backup::in_use(data_dir) {
        return Err(StoreError::Locked.into());
    }
    let _lock = super::take_lock(data_dir)?;
    let Some(plan) = plan(data_dir, &keys)? else {
        let report = verify_store(data_dir, key, cache_bytes, None)?;
        return Ok(RecoverReport {
            kept: report.verified.records,
            copied_to: None,
            first_cut: None,
        });
    };
    if plan != *confirmed {
        return Err(StoreError::Io(
            "the store changed since the summary was made: nothing was changed; run recover again"
                .into(),
        )
        .into());
    }
    let log = log_dir(data_dir);
    let name = &plan.segment;
    let cut = plan.offset as usize;
    // 1. The copy, synced, before anything changes: the bytes cut from
    // the damaged segment, every later segment, and chain.head, each only
    // if it holds anything (no empty file, and no directory when there is
    // nothing to copy: a missing chain.head and no incomplete write).
    let bytes = read_segment(&log.join(name))?;
    let mut copies: Vec<(String, Vec<u8>)> = Vec::new();
    let cut_off = bytes.get(cut..).unwrap_or(&[]);
    if !cut_off.is_empty() {
        copies.push((format!("{name}.from-{cut}"), cut_off.to_vec()));
    }
    for file in &plan.later_segments {
        copies.push((file.clone(), read_segment(&log.join(file))?));
    }
    let head = data_dir.join(HEAD_FILE);
    if head.exists() {
        let b = std::fs::read(&head).map_err(io("cannot read chain.head"))?;
        copies.push((HEAD_FILE.to_owned(), b));
    }
    let aside = if copies.is_empty() && plan.records_cut() == 0 {
        None
    } else {
        Some(copy_aside(data_dir, &copies)?)
    };
    // 2. chain.head: the newest checkpoint that remains after the cut (it
    // is before the cut, so the log holds it either way). Written beside
    // it, synced, then renamed over it, before anything is cut: if that
    // fails, the store is as it was (only the copy was added); a crash
    // leaves either the old head or the new one, never none.
    replace_head(data_dir, &keys, plan.head_after.as_ref(), &fs)?;
    // 3. The cut.
    for file in &plan.later_segments {
        fs.remove_file(&log.join(file))
            .map_err(io("cannot remove a copied segment"))?;
    }
    if cut == 0 {
        fs.remove_file(&log.join(name))
            .map_err(io("cannot remove a copied segment"))?;
    } else if bytes.len() > cut {
        let f = fs
            .open(&log.join(name), Open::ReadWrite)
            .map_err(io("cannot open the segment"))?;
        fs.set_len(&f, cut as u64)
            .map_err(io("cannot cut the segment"))?;
        fs.sync_all(&f).map_err(io("cannot sync the segment"))?;
    }
    fs.sync_dir(&log).map_err(io("cannot sync the segments"))?;
    // The snapshot cache holds state of records that are no longer in the
    // log: kept with the copy (it is rebuildable, and the lock keeps a
    // server out), so that the next start rebuilds from the log quietly
    // instead of calling the cache a possible rollback.
    if let Some(aside) = aside.as_ref().filter(|_| plan.records_cut() > 0) {
        move_cache_into(data_dir, aside, &fs)?;
    }
    if plan.records_cut() > 0 {
        warn!(
            first_cut = plan.first_cut,
            records_cut = plan.records_cut(),
            "recovery cut the log at the first damage; the rest was copied aside"
        );
    } else {
        warn!(
            records = plan.kept,
            incomplete_bytes = plan.cut_bytes,
            "recovery rewrote chain.head from the log's newest checkpoint; every record was kept"
        );
    }
    // 4. chain.head covers every record kept: when the newest checkpoint
    // left in the log is behind the last record kept, a checkpoint of the
    // last record kept is signed into it (as a backup does for its copy).
    // A crash before this leaves the checkpoint written in step 2, which
    // verifies too.
    super::backup::sign_end(
        data_dir,
        &keys,
        super::backup::check(data_dir, &keys).map_err(OpenError::from)?,
    )?;
    // 5. Verify what remains.
    let report = verify_store(data_dir, key, cache_bytes, None)?;
    Ok(RecoverReport {
        kept: report.verified.records,
        copied_to: aside,
        first_cut: Some(plan.first_cut),
    })
}

/// The shell command that puts back what a recovery copied to
/// `copied_to`: one line, whose checks all come first (the cut segment
/// still ends where it was cut, the segments removed are still absent),
/// so that once anything was written to the store since, it stops before
/// it copies anything. Paths are absolute, so it runs from any directory.
pub fn undo_commands(data_dir: &Path, plan: &RecoveryPlan, copied_to: &Path) -> Vec<String> {
    let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let copied_to = data_dir.join(copied_to.file_name().unwrap_or(copied_to.as_os_str()));
    let log = log_dir(&data_dir);
    let (mut checks, mut copies) = (Vec::new(), Vec::new());
    let tail = copied_to.join(format!("{}.from-{}", plan.segment, plan.offset));
    if tail.exists() {
        let segment = log.join(&plan.segment);
        if plan.offset == 0 {
            checks.push(format!("test ! -e {}", quoted(&segment)));
            copies.push(format!("cp -p {} {}", quoted(&tail), quoted(&segment)));
        } else {
            checks.push(format!(
                "test \"$(wc -c < {seg})\" -eq {off}",
                seg = quoted(&segment),
                off = plan.offset,
            ));
            copies.push(format!("cat {} >> {}", quoted(&tail), quoted(&segment)));
        }
    }
    for file in &plan.later_segments {
        let copy = copied_to.join(file);
        if copy.exists() {
            checks.push(format!("test ! -e {}", quoted(&log.join(file))));
            copies.push(format!(
                "cp -p {} {}",
                quoted(&copy),
                quoted(&log.join(file))
            ));
        }
    }
    let head = copied_to.join(HEAD_FILE);
    let written = copied_to.join(HEAD_WRITTEN);
    if head.exists() && written.exists() {
        // chain.head is rewritten at every checkpoint: still the one the
        // recovery wrote means nothing was written since.
        checks.push(format!(
            "cmp -s {} {}",
            quoted(&data_dir.join(HEAD_FILE)),
            quoted(&written)
        ));
    }
    if head.exists() {
        copies.push(format!(
            "cp -p {} {}",
            quoted(&head),
            quoted(&data_dir.join(HEAD_FILE))
        ));
    }
    if copies.is_empty() {
        return Vec::new();
    }
    vec![
        checks
            .into_iter()
            .chain(copies)
            .collect::<Vec<_>>()
            .join(" && "),
    ]
}

/// The name, in a recovery's copy directory, of the `chain.head` the
/// recovery wrote (for the undo's check that nothing was written since).
const HEAD_WRITTEN: &str = "chain.head.written-by-recover";

/// Keeps, beside what a recovery copied aside in `copied_to`, the
/// `chain.head` it left in `data_dir`, so that [`undo_commands`] can check
/// that nothing was written to the store since.
pub fn keep_head_written_by_recovery(data_dir: &Path, copied_to: &Path) -> Result<(), OpenError> {
    let head = data_dir.join(HEAD_FILE);
    if !head.exists() {
        return Ok(());
    }
    let bytes = crate::files::read_at_most(&head, crate::log::head::HEAD_FILE_BYTES)
        .map_err(io("cannot read chain.head"))?;
    crate::files::write_private(&copied_to.join(HEAD_WRITTEN), &bytes)
        .map_err(io("cannot write the copy"))
}

/// `path` quoted for a POSIX shell.
fn quoted(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// Writes `copies` (file name, bytes) into a new directory
/// `recovered-<UTC time>/` ([`crate::file_time`]) in `data_dir`, synced, and returns it. A new
/// directory each time: a recovery retried (after a failure) within the
/// same second never mixes its copy with the first one's.
fn copy_aside(data_dir: &Path, copies: &[(String, Vec<u8>)]) -> Result<PathBuf, OpenError> {
    let now = crate::file_time_now();
    let mut aside = data_dir.join(format!("recovered-{now}"));
    let mut n = 1;
    while aside.exists() {
        aside = data_dir.join(format!("recovered-{now}-{n}"));
        n += 1;
    }
    crate::files::create_private_dir(&aside).map_err(io("cannot create the copy directory"))?;
    for (file, bytes) in copies {
        crate::files::write_private(&aside.join(file), bytes)
            .map_err(io("cannot write the copy"))?;
    }
    crate::files::sync_dir_strict(&aside).map_err(io("cannot sync the copy"))?;
    crate::files::sync_dir_strict(data_dir).map_err(io("cannot sync the data directory"))?;
    Ok(aside)
}

/// Moves the snapshot cache (if any) into `aside` (the recovery's copy
/// directory), through `fs`, and syncs the data directory.
fn move_cache_into(data_dir: &Path, aside: &Path, fs: &Fs) -> Result<(), OpenError> {
    let cache = super::cache_dir(data_dir);
    if !cache.exists() {
        return Ok(());
    }
    fs.rename(&cache, &aside.join("cache")).map_err(io(
        "the log was cut, but the snapshot cache could not be moved aside",
    ))?;
    fs.sync_dir(data_dir)
        .map_err(io("cannot sync the data directory"))?;
    fs.sync_dir(aside).map_err(io("cannot sync the copy"))?;
    Ok(())
}

/// Replaces `chain.head` with one holding `newest` (empty if `None`):
/// written to `chain.head.new`, synced, renamed over it, the directory
/// synced, all through `fs`. On a failure the old `chain.head` is left as
/// it was and `chain.head.new` is removed.
fn replace_head(
    data_dir: &Path,
    keys: &StoreKeys,
    newest: Option<&Checkpoint>,
    fs: &Fs,
) -> Result<(), OpenError> {
    let head = data_dir.join(HEAD_FILE);
    let new_head = data_dir.join(format!("{HEAD_FILE}.new"));
    if new_head.exists() {
        fs.remove_file(&new_head)
            .map_err(io("cannot replace chain.head"))?;
    }
    let written = (|| {
        let (file, _) = HeadFile::open_with_fs(
            &new_head,
            true,
            &keys.checkpoint_public_key(),
            &keys.store_id(),
            fs.clone(),
        )?;
        if let (Some(mut file), Some(cp)) = (file, newest) {
            file.write(cp)?;
        }
        let f = fs.open(&new_head, Open::ReadWrite)?;
        fs.sync_all(&f)?;
        fs.rename(&new_head, &head)
    })();
    if let Err(e) = written {
        let _ = fs.remove_file(&new_head);
        return Err(StoreError::Io(format!(
            "cannot replace chain.head: {e}; nothing in the store was changed \
             (the copy made first can be removed)"
        ))
        .into());
    }
    fs.sync_dir(data_dir)
        .map_err(io("cannot sync the data directory"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fs2::FileExt;

    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("read")));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_failed_replace_of_chain_head_leaves_the_store_as_it_was_with_a_clear_error() {
        use crate::domain::devices::InviteRecord;
        use crate::log::fs::{Fault, FaultFs, Op};
        use hotline_proto::Role;
        let dir = tempfile::tempdir().expect("tempdir");
        for round in 0..2u8 {
            let store = crate::store::open_in(dir.path());
            for i in 0..20u8 {
                store
                    .put_invite(
                        [round * 20 + i; 32],
                        &InviteRecord {
                            role: Role::Officer,
                            created_at: 1,
                            expires_at: u64::MAX,
                            used_at: None,
                            bootstrap: None,
                        },
                    )
                    .expect("append");
            }
            store.close().expect("close");
        }
        let data = dir.path().join("data");
        let key = KeySource::File(dir.path().join("master.key"));
        let seg = log_dir(&data).join(segment::file_name(1));
        let len = std::fs::metadata(&seg).expect("segment").len();
        crate::log::fs::flip_byte(&seg, len * 3 / 4, 0x10).expect("flip");
        let plan = plan_recovery(&data, &key).expect("plans").expect("damage");
        let log_before = files(&log_dir(&data));
        let head_before = std::fs::read(data.join(HEAD_FILE)).expect("chain.head");

        let faults = FaultFs::new();
        faults.fail_from(Op::Rename, 1, Fault::Eio);
        let err = recover_truncate_after_copy_with_fs(&data, &key, 1 << 20, &plan, faults.handle())
            .expect_err("the rename fails");
        let said = err.to_string();
        assert!(
            said.contains("cannot replace chain.head") && said.contains("nothing in the store"),
            "{said}"
        );
        assert_eq!(faults.calls(Op::Rename), 1);
        assert_eq!(files(&log_dir(&data)), log_before, "a segment changed");
        assert_eq!(
            std::fs::read(data.join(HEAD_FILE)).expect("chain.head"),
            head_before,
            "chain.head changed"
        );
        assert!(!data.join(format!("{HEAD_FILE}.new")).exists());
        // The store still gives the same plan, and the recovery, tried
        // again on a disk that renames, goes through.
        assert_eq!(
            plan_recovery(&data, &key).expect("plans"),
            Some(plan.clone())
        );
        let report = recover_truncate_after_copy(&data, &key, 1 << 20, &plan).expect("recovers");
        assert_eq!(report.kept, plan.kept);
        assert_ne!(
            std::fs::read(data.join(HEAD_FILE)).expect("chain.head"),
            head_before
        );
    }

    #[test]
    fn a_crafted_frame_numbered_u64_max_is_damage_and_no_count_wraps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open_in(dir.path());
        for n in 0..3u8 {
            let invite = crate::domain::devices::InviteRecord {
                role: hotline_proto::Role::Officer,
                created_at: 1,
                expires_at: 100,
                used_at: None,
                bootstrap: None,
            };
            store.put_invite([n; 32], &invite).expect("put");
        }
        drop(store);
        let data = dir.path().join("data");
        let key = KeySource::File(dir.path().join("master.key"));
        let log = log_dir(&data);
        let first = std::fs::read(log.join(segment::file_name(1))).expect("segment");
        let header = segment::SegmentHeader::parse(&first).expect("header");
        // A later segment (after a gap) holding one frame numbered u64::MAX.
        let mut later = segment::SegmentHeader {
            store_id: header.store_id,
            first_seq: 1000,
        }
        .to_bytes();
        segment::encode_frame(segment::KIND_RECORD, u64::MAX, b"crafted", &mut later);
        std::fs::write(log.join(segment::file_name(1000)), &later).expect("write");
        let plan = plan_recovery(&data, &key)
            .expect("plans")
            .expect("damage found");
        assert!(plan.last_cut < 1000, "{plan:?}");
        assert!(plan.records_cut() < 1000, "{plan:?}");
        assert!(plan.contents.unreadable < 1000, "{plan:?}");
        assert!(plan.contents.unsplit_bytes >= 7, "{plan:?}");
        assert_eq!(plan.segment, segment::file_name(1000));
    }

    #[test]
    fn plausible_records_keep_what_the_cut_bytes_can_hold() {
        let f = segment::FRAME_HEADER_LEN as u64;
        let records = vec![
            (5, vec![1; 10]),
            (6, vec![2; 10]),
            (u64::MAX, vec![3; 10]),
            (4, vec![4; 10]),
        ];
        let (kept, bytes) = plausible_records(records, 5, 3 * (f + 10));
        assert_eq!(kept.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(bytes, 2 * (f + 10));
        let plan = |first_cut, last_cut| RecoveryPlan {
            finding: String::new(),
            segment: String::new(),
            offset: 0,
            later_segments: vec![],
            cut_bytes: 0,
            kept: 0,
            first_cut,
            last_cut,
            contents: CutContents::default(),
            kept_until: None,
            not_in_files: None,
            head_now: None,
            head_after: None,
            head_unusable: false,
        };
        assert_eq!(plan(1, u64::MAX).records_cut(), u64::MAX);
        assert_eq!(plan(3, 2).records_cut(), 0);
    }

    #[test]
    fn a_segment_larger_than_any_segment_can_be_is_named_and_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(segment::file_name(1));
        let f = std::fs::File::create(&path).expect("create");
        f.set_len(200 << 30).expect("sparse");
        let err = read_segment(&path).expect_err("too large");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(&(200u64 << 30).to_string()), "{text}");
    }

    #[test]
    fn recovery_is_refused_while_another_process_holds_the_data_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(crate::store::open_in(dir.path()));
        let data = dir.path().join("data");
        let key = KeySource::File(dir.path().join("master.key"));
        // Another writer (say `invite`) holds the lock, before it opened
        // the snapshot cache.
        let other = std::fs::File::open(data.join(crate::files::LOCK_FILE)).expect("lock file");
        other.try_lock_exclusive().expect("lock");
        let before = files(&data);
        let err = plan_recovery(&data, &key).expect_err("refused");
        assert!(err.to_string().contains("held by another process"), "{err}");
        assert_eq!(files(&data), before, "nothing changed");
        drop(other);
        assert_eq!(plan_recovery(&data, &key).expect("plans"), None);
        assert!(!data.join(format!("{HEAD_FILE}.new")).exists());
    }
}
