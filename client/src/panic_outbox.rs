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
//! was never reached: the roster and the staff's keys come from it). No
//! plaintext is ever written.
//!
//! One SOS waits at most: a second one joins it (its priority if more
//! urgent, its sealed text if the waiting one has none), so that one
//! emergency never becomes two alerts. Sending it again is harmless: the
//! server answers a raise with the same envelope (or a second raise
//! without text while one is open) with the same alert.

use hotline_proto::alert::{AlertInfo, Priority};
use hotline_proto::e2e::envelope::SignedEnvelope;

use crate::connection::authenticate_panic;
use crate::error::ClientError;
use crate::state::StateDir;

/// The file's name in the state directory.
pub const PANIC_OUTBOX_FILE: &str = "panic-outbox";

const MAGIC: &[u8; 6] = b"HLPO1\n";

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
    /// Joined the SOS already waiting (one alert).
    Joined,
    /// Joined the SOS already waiting, which has a sealed text of its
    /// own: this one's text cannot be added to it without the passphrase
    /// and is not sent (the alert is).
    JoinedWithoutText,
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
    /// The file's bytes: magic, created_at (u64 BE), priority (1
    /// immediate, 2 urgent, 3 routine), the envelope's length (u32 BE, 0:
    /// none) and the envelope as sent on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let env = self.envelope.as_ref().map(SignedEnvelope::encode);
        let env = env.unwrap_or_default();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.push(rank(self.priority));
        out.extend_from_slice(&(env.len() as u32).to_be_bytes());
        out.extend_from_slice(&env);
        out
    }

    /// Reads [`PanicSos::encode`]'s bytes; `None` if they do not read.
    pub fn decode(bytes: &[u8]) -> Option<PanicSos> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let created_at = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let priority = from_rank(*rest.get(8)?)?;
        let len = u32::from_be_bytes(rest.get(9..13)?.try_into().ok()?) as usize;
        let env = rest.get(13..)?;
        if env.len() != len {
            return None;
        }
        let envelope = if len == 0 {
            None
        } else {
            Some(SignedEnvelope::decode(env).ok()?)
        };
        Some(PanicSos {
            created_at,
            priority,
            envelope,
        })
    }
}

fn path(state: &StateDir) -> std::path::PathBuf {
    state.path().join(PANIC_OUTBOX_FILE)
}

/// The SOS waiting in the panic outbox of `state`, if any. A file that
/// does not read is an error (never taken for "nothing waits").
pub fn pending(state: &StateDir) -> Result<Option<PanicSos>, ClientError> {
    let path = path(state);
    match std::fs::read(&path) {
        Ok(bytes) => PanicSos::decode(&bytes).map(Some).ok_or_else(|| {
            ClientError::State(format!(
                "{} is damaged: the SOS waiting in it cannot be read",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::State(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Queues an SOS of `priority` with its sealed text (`envelope`, or none)
/// written at `now`, joining the one already waiting if there is one.
pub fn queue(
    state: &StateDir,
    priority: Priority,
    envelope: Option<SignedEnvelope>,
    now: u64,
) -> Result<Queued, ClientError> {
    let _lock = state.lock()?;
    let (sos, queued) = match pending(state)? {
        None => (
            PanicSos {
                created_at: now,
                priority,
                envelope,
            },
            Queued::New,
        ),
        Some(mut waiting) => {
            if rank(priority) < rank(waiting.priority) {
                waiting.priority = priority;
            }
            let queued = match (&waiting.envelope, envelope) {
                (Some(_), Some(_)) => Queued::JoinedWithoutText,
                (None, Some(env)) => {
                    waiting.envelope = Some(env);
                    Queued::Joined
                }
                (_, None) => Queued::Joined,
            };
            (waiting, queued)
        }
    };
    state.write_private(PANIC_OUTBOX_FILE, &sos.encode())?;
    Ok(queued)
}

/// Removes `sent` from the panic outbox, unless what waits changed
/// meanwhile (another SOS joined it): then it stays, to be sent again.
fn remove_if_unchanged(state: &StateDir, sent: &PanicSos) -> Result<(), ClientError> {
    let _lock = state.lock()?;
    if pending(state)?.as_ref() == Some(sent) {
        state.remove_private(PANIC_OUTBOX_FILE)?;
    }
    Ok(())
}

/// Sends the SOS waiting in the panic outbox of `state`, if any, with the
/// panic key (no passphrase needed): the alert, and what the defender
/// must be told; `None` if nothing waits. On failure it stays queued.
pub async fn flush(state: &StateDir) -> Result<Option<(AlertInfo, Vec<String>)>, ClientError> {
    let Some(sos) = pending(state)? else {
        return Ok(None);
    };
    let profile = state.load_profile()?;
    let key = state.load_panic_key()?.ok_or_else(|| {
        ClientError::State("this device has no panic key to send the SOS waiting in it".into())
    })?;
    let session = authenticate_panic(&state.server(&profile)?, profile.device_id()?, &key).await?;
    let mut warnings = Vec::new();
    let raised = crate::sos::raise_text_or_alone(
        &session,
        sos.priority,
        sos.envelope.clone(),
        &mut warnings,
    )
    .await;
    session.close().await;
    let alert = raised?;
    remove_if_unchanged(state, &sos)?;
    Ok(Some((alert, warnings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is written reads back; anything else is refused, never read
    /// as another SOS.
    #[test]
    fn a_waiting_sos_reads_back_and_damage_is_refused() {
        let sos = PanicSos {
            created_at: 1_700_000_000,
            priority: Priority::Urgent,
            envelope: None,
        };
        assert_eq!(PanicSos::decode(&sos.encode()), Some(sos.clone()));
        let mut bytes = sos.encode();
        bytes.push(0);
        assert_eq!(PanicSos::decode(&bytes), None);
        assert_eq!(PanicSos::decode(b"HLPO1\n"), None);
    }

    /// A second SOS joins the first: one entry, the most urgent priority,
    /// the first time; the file is owner-only.
    #[test]
    fn a_second_sos_joins_the_first() {
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
        let sos = pending(&state).expect("reads").expect("waits");
        assert_eq!(sos.created_at, 10);
        assert_eq!(sos.priority, Priority::Immediate);
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
}
