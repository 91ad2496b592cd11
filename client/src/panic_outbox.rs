//! The panic outbox: an SOS raised without the passphrase (with the
//! panic key) that could not reach the server, or that the server could
//! not take for now (its storage full), waits here and goes out with the
//! next run of `hotline` that reaches the server, with or without the
//! passphrase, before anything else.
//!
//! Without the passphrase the device's outbox (sealed under it) cannot be
//! opened, so this is a file of its own in the state directory,
//! owner-only, holding only what the panic path makes without the
//! passphrase: the alert's priority, when it was written, and its text
//! already sealed (HPKE) to the staff roster, which this device cannot
//! read back; or no text at all, when it could not be sealed (the server
//! could not be reached: the roster and the staff's keys come from it). No
//! plaintext is ever written.
//!
//! Up to [`MAX_WAITING`] SOSes wait, oldest first, each sent in turn:
//! in an emergency the newest words matter most, so a second SOS's text
//! is kept beside the first's (sealed texts cannot be joined without the
//! passphrase); when they go out, the first raises the alert and the
//! others join it (`RaiseAlert.join_alert`): one alert, every text with
//! its own category for staff. A second SOS without
//! text adds nothing but its priority (if more urgent) to the first; one
//! with text fills a first that has none. Beyond [`MAX_WAITING`] the
//! oldest text is dropped (its priority, if more urgent, goes to the next)
//! and the defender is told. Sending one again is harmless: the server
//! answers a raise with the same envelope (or a second raise without text
//! while one is open) with the same alert.

use hotline_proto::alert::{AlertInfo, Priority};
use hotline_proto::e2e::envelope::SignedEnvelope;

use crate::connection::authenticate_panic;
use crate::error::ClientError;
use crate::state::StateDir;

/// The file's name in the state directory.
pub const PANIC_OUTBOX_FILE: &str = "panic-outbox";

/// The first form: one SOS (still read).
const MAGIC_V1: &[u8; 6] = b"HLPO1\n";
/// The current form: a list of SOSes.
const MAGIC: &[u8; 6] = b"HLPO2\n";

/// How many SOSes wait at most; beyond, the oldest text is dropped.
pub const MAX_WAITING: usize = 8;

/// An SOS waiting in the panic outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicSos {
    /// When the (first) SOS was written, Unix seconds.
    pub created_at: u64,
    /// Its priority (the most urgent of those joined).
    pub priority: Priority,
    /// Its text, sealed to the staff roster; `None`: raised without text.
    pub envelope: Option<SignedEnvelope>,
}

/// What queuing an SOS did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued on its own.
    New,
    /// Joined the first SOS waiting (one alert): it had no text, or this
    /// one has none.
    Joined,
    /// Queued after the SOSes already waiting, its text kept beside
    /// theirs: every text goes, in order. `waiting`: how many wait now.
    Added {
        /// How many SOSes wait now, this one included.
        waiting: usize,
    },
    /// As `Added`, but [`MAX_WAITING`] already waited: the oldest one's
    /// text was dropped to keep this newest one (its priority, if more
    /// urgent, passed to the next).
    AddedOldestDropped,
}

fn rank(p: Priority) -> u8 {
    match p {
        Priority::Immediate => 1,
        Priority::Urgent => 2,
        Priority::Routine => 3,
    }
}

fn from_rank(r: u8) -> Option<Priority> {
    match r {
        1 => Some(Priority::Immediate),
        2 => Some(Priority::Urgent),
        3 => Some(Priority::Routine),
        _ => None,
    }
}

impl PanicSos {
    /// One entry's bytes: created_at (u64 BE), priority (1 immediate, 2
    /// urgent, 3 routine), the envelope's length (u32 BE, 0: none) and
    /// the envelope as sent on the wire.
    fn encode_into(&self, out: &mut Vec<u8>) {
        let env = self.envelope.as_ref().map(SignedEnvelope::encode);
        let env = env.unwrap_or_default();
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.push(rank(self.priority));
        out.extend_from_slice(&(env.len() as u32).to_be_bytes());
        out.extend_from_slice(&env);
    }

    /// Reads one entry from the start of `bytes`: it and what follows.
    fn decode_from(bytes: &[u8]) -> Option<(PanicSos, &[u8])> {
        let created_at = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let priority = from_rank(*bytes.get(8)?)?;
        let len = u32::from_be_bytes(bytes.get(9..13)?.try_into().ok()?) as usize;
        let env = bytes.get(13..13usize.checked_add(len)?)?;
        let rest = bytes.get(13 + len..)?;
        let envelope = if len == 0 {
            None
        } else {
            Some(SignedEnvelope::decode(env).ok()?)
        };
        Some((
            PanicSos {
                created_at,
                priority,
                envelope,
            },
            rest,
        ))
    }
}

/// The file's bytes for `waiting` (oldest first, 1 to [`MAX_WAITING`]):
/// magic `HLPO2\n`, the count (u8), then each entry (see
/// [`PanicSos`]'s fields: created_at u64 BE, priority u8, envelope length
/// u32 BE, envelope).
pub fn encode(waiting: &[PanicSos]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(waiting.len().min(usize::from(u8::MAX)) as u8);
    for sos in waiting.iter().take(usize::from(u8::MAX)) {
        sos.encode_into(&mut out);
    }
    out
}

/// Reads [`encode`]'s bytes, or the first form's (`HLPO1\n` and one
/// entry); `None` if they do not read (also: an empty list, or bytes
/// left over).
pub fn decode(bytes: &[u8]) -> Option<Vec<PanicSos>> {
    if let Some(rest) = bytes.strip_prefix(MAGIC_V1.as_slice()) {
        let (sos, rest) = PanicSos::decode_from(rest)?;
        return rest.is_empty().then(|| vec![sos]);
    }
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (&count, mut rest) = rest.split_first()?;
    if count == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (sos, after) = PanicSos::decode_from(rest)?;
        out.push(sos);
        rest = after;
    }
    rest.is_empty().then_some(out)
}

fn path(state: &StateDir) -> std::path::PathBuf {
    state.path().join(PANIC_OUTBOX_FILE)
}

/// The SOSes waiting in the panic outbox of `state`, oldest first (none:
/// empty). A file that does not read is an error (never taken for
/// "nothing waits").
pub fn pending(state: &StateDir) -> Result<Vec<PanicSos>, ClientError> {
    let path = path(state);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes).ok_or_else(|| {
            ClientError::State(format!(
                "{} is damaged: the SOS waiting in it cannot be read",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ClientError::State(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn more_urgent(a: Priority, b: Priority) -> Priority {
    if rank(b) < rank(a) { b } else { a }
}

/// Where an SOS of `priority` with `envelope`, written at `now`, goes in
/// `waiting`, and what that did (see [`Queued`]).
fn add(
    waiting: &mut Vec<PanicSos>,
    priority: Priority,
    envelope: Option<SignedEnvelope>,
    now: u64,
) -> Queued {
    let Some(first) = waiting.first_mut() else {
        waiting.push(PanicSos {
            created_at: now,
            priority,
            envelope,
        });
        return Queued::New;
    };
    match envelope {
        None => {
            first.priority = more_urgent(first.priority, priority);
            Queued::Joined
        }
        Some(env) if first.envelope.is_none() => {
            first.priority = more_urgent(first.priority, priority);
            first.envelope = Some(env);
            Queued::Joined
        }
        Some(env) => {
            waiting.push(PanicSos {
                created_at: now,
                priority,
                envelope: Some(env),
            });
            if waiting.len() > MAX_WAITING {
                let oldest = waiting.remove(0);
                if let Some(next) = waiting.first_mut() {
                    next.priority = more_urgent(next.priority, oldest.priority);
                }
                Queued::AddedOldestDropped
            } else {
                Queued::Added {
                    waiting: waiting.len(),
                }
            }
        }
    }
}

/// Queues an SOS of `priority` with its sealed text (`envelope`, or none)
/// written at `now`, beside (or joining) those already waiting.
pub fn queue(
    state: &StateDir,
    priority: Priority,
    envelope: Option<SignedEnvelope>,
    now: u64,
) -> Result<Queued, ClientError> {
    let _lock = state.lock()?;
    let mut waiting = pending(state)?;
    let queued = add(&mut waiting, priority, envelope, now);
    state.write_private(PANIC_OUTBOX_FILE, &encode(&waiting))?;
    Ok(queued)
}

/// Removes `sent` from the panic outbox, unless it changed meanwhile
/// (another SOS joined it): then it stays, to be sent again.
fn remove_if_unchanged(state: &StateDir, sent: &PanicSos) -> Result<(), ClientError> {
    let _lock = state.lock()?;
    let mut waiting = pending(state)?;
    let Some(at) = waiting.iter().position(|w| w == sent) else {
        return Ok(());
    };
    waiting.remove(at);
    if waiting.is_empty() {
        state.remove_private(PANIC_OUTBOX_FILE)
    } else {
        state.write_private(PANIC_OUTBOX_FILE, &encode(&waiting))
    }
}

/// What sending the panic outbox did.
#[derive(Debug)]
pub struct Flushed {
    /// The alert of each SOS sent, in order, with what the defender must
    /// be told about it.
    pub sent: Vec<(AlertInfo, Vec<String>)>,
    /// Why the rest was not sent (it stays queued), if it was not.
    pub stopped: Option<ClientError>,
    /// How many SOSes still wait.
    pub left: usize,
}

/// Sends the SOSes waiting in the panic outbox of `state`, oldest first,
/// with the panic key (no passphrase needed), each removed once the
/// server answered; stops at the first failure (the rest stays queued).
/// Empty `sent` and no `stopped`: nothing waited.
pub async fn flush(state: &StateDir) -> Result<Flushed, ClientError> {
    let waiting = pending(state)?;
    if waiting.is_empty() {
        return Ok(Flushed {
            sent: Vec::new(),
            stopped: None,
            left: 0,
        });
    }
    let profile = state.load_profile()?;
    let key = state.load_panic_key()?.ok_or_else(|| {
        ClientError::State("this device has no panic key to send the SOS waiting in it".into())
    })?;
    let session = authenticate_panic(&state.server(&profile)?, profile.device_id()?, &key).await?;
    let mut sent = Vec::new();
    let mut stopped = None;
    // The SOSes that waited together go out as one alert: the first
    // raises it (or joins the device's open one), the others join it.
    let mut join = 0;
    for sos in &waiting {
        let mut warnings = Vec::new();
        match crate::sos::raise_text_or_alone_joining(
            &session,
            sos.priority,
            sos.envelope.clone(),
            join,
            &mut warnings,
        )
        .await
        {
            Ok(alert) => {
                if join == 0 {
                    join = alert.id;
                }
                if let Err(e) = remove_if_unchanged(state, sos) {
                    sent.push((alert, warnings));
                    stopped = Some(e);
                    break;
                }
                sent.push((alert, warnings));
            }
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    session.close().await;
    let left = pending(state).map(|w| w.len()).unwrap_or(0);
    Ok(Flushed {
        sent,
        stopped,
        left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An envelope as stored (the file keeps its wire form; nothing here
    /// opens it).
    fn sealed(n: u8) -> SignedEnvelope {
        use hotline_proto::identity::IdentityKeyPair;
        let key = IdentityKeyPair::from_seed(&[n; 32]);
        SignedEnvelope {
            sender: key.device_id(),
            body: vec![n; 64],
            signature: key.sign(&[n; 64]),
        }
    }

    /// What is written reads back; anything else is refused, never read
    /// as another SOS; the first form (one SOS) still reads.
    #[test]
    fn waiting_soses_read_back_and_damage_is_refused() {
        let sos = PanicSos {
            created_at: 1_700_000_000,
            priority: Priority::Urgent,
            envelope: None,
        };
        let two = vec![
            sos.clone(),
            PanicSos {
                created_at: 1_700_000_009,
                priority: Priority::Immediate,
                envelope: Some(sealed(7)),
            },
        ];
        assert_eq!(decode(&encode(&two)), Some(two.clone()));
        let mut bytes = encode(&two);
        bytes.push(0);
        assert_eq!(decode(&bytes), None);
        let bytes = encode(&two);
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(b"HLPO2\n"), None);
        assert_eq!(decode(b"HLPO2\n\0"), None);
        assert_eq!(decode(b"HLPO1\n"), None);
        // The first form, as written before lists: magic, created_at,
        // priority, no envelope.
        let mut v1 = b"HLPO1\n".to_vec();
        v1.extend_from_slice(&1_700_000_000u64.to_be_bytes());
        v1.push(2);
        v1.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(decode(&v1), Some(vec![sos.clone()]));
        // The current form, byte for byte (docs/protocol.md section 4.5).
        let mut v2 = b"HLPO2\n\x01".to_vec();
        v2.extend_from_slice(&1_700_000_000u64.to_be_bytes());
        v2.push(2);
        v2.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(encode(std::slice::from_ref(&sos)), v2);
    }

    /// A second SOS without text joins the first: one entry, the most
    /// urgent priority, the first time; the file is owner-only.
    #[test]
    fn a_second_sos_without_text_joins_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path().join("home"));
        assert_eq!(
            queue(&state, Priority::Routine, None, 10).expect("queued"),
            Queued::New
        );
        assert_eq!(
            queue(&state, Priority::Immediate, None, 20).expect("queued"),
            Queued::Joined
        );
        let waiting = pending(&state).expect("reads");
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].created_at, 10);
        assert_eq!(waiting[0].priority, Priority::Immediate);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(&state))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
        }
    }

    /// A second SOS with text is kept beside the first's (both go, in
    /// order); one with text fills a first without.
    #[test]
    fn a_second_text_is_kept_beside_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path().join("home"));
        queue(&state, Priority::Urgent, None, 10).expect("queued");
        assert_eq!(
            queue(&state, Priority::Routine, Some(sealed(1)), 11).expect("queued"),
            Queued::Joined
        );
        assert_eq!(
            queue(&state, Priority::Immediate, Some(sealed(2)), 12).expect("queued"),
            Queued::Added { waiting: 2 }
        );
        let waiting = pending(&state).expect("reads");
        assert_eq!(waiting.len(), 2);
        assert_eq!(waiting[0].envelope, Some(sealed(1)));
        assert_eq!(waiting[0].priority, Priority::Urgent);
        assert_eq!(waiting[1].created_at, 12);
        assert_eq!(waiting[1].priority, Priority::Immediate);
        assert!(waiting.iter().all(|w| w.envelope.is_some()));
    }

    /// Beyond the bound the newest text is kept and the oldest dropped,
    /// its priority passed on.
    #[test]
    fn beyond_the_bound_the_newest_texts_are_kept() {
        let mut waiting = Vec::new();
        assert_eq!(
            add(&mut waiting, Priority::Immediate, Some(sealed(0)), 0),
            Queued::New
        );
        for n in 1..MAX_WAITING as u8 {
            add(
                &mut waiting,
                Priority::Routine,
                Some(sealed(n)),
                u64::from(n),
            );
        }
        assert_eq!(waiting.len(), MAX_WAITING);
        assert_eq!(
            add(&mut waiting, Priority::Routine, Some(sealed(99)), 99),
            Queued::AddedOldestDropped
        );
        assert_eq!(waiting.len(), MAX_WAITING);
        assert_eq!(waiting[0].created_at, 1);
        assert_eq!(waiting[0].priority, Priority::Immediate);
        assert_eq!(waiting[MAX_WAITING - 1].created_at, 99);
    }
}
