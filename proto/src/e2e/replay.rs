//! Refusing envelopes seen before.
//!
//! A receiver remembers the message id of every envelope it opened within
//! the replay window, and refuses envelopes older than the window outright.
//! The state is small and is saved by the client, so a replay is refused
//! after a restart too.

use std::collections::BTreeMap;

/// How far back (seconds) a message's timestamp may lie: 30 days.
pub const WINDOW_SECS: u64 = 30 * 24 * 3600;
/// How far ahead of the receiver's clock a timestamp may lie: 1 day.
pub const MAX_SKEW_SECS: u64 = 24 * 3600;

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// This message id was seen before.
    #[error("this message was already received (replay or duplicate)")]
    Seen,
    /// The timestamp is outside the window.
    #[error("this message is too old or dated in the future")]
    OutsideWindow,
}

/// The ids seen within the window, with their timestamps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayGuard {
    seen: BTreeMap<[u8; 16], u64>,
}

impl ReplayGuard {
    /// Accepts a message once: records its id, or says why not.
    pub fn check_and_record(
        &mut self,
        message_id: [u8; 16],
        timestamp: u64,
        now: u64,
    ) -> Result<(), ReplayError> {
        if timestamp.saturating_add(WINDOW_SECS) < now
            || timestamp > now.saturating_add(MAX_SKEW_SECS)
        {
            return Err(ReplayError::OutsideWindow);
        }
        if self.seen.contains_key(&message_id) {
            return Err(ReplayError::Seen);
        }
        self.seen.insert(message_id, timestamp);
        // Forget what the window already refuses.
        self.seen
            .retain(|_, t| t.saturating_add(WINDOW_SECS) >= now);
        Ok(())
    }

    /// Saved form: 24 bytes per id (id, timestamp big-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.seen.len() * 24);
        for (id, t) in &self.seen {
            out.extend_from_slice(id);
            out.extend_from_slice(&t.to_be_bytes());
        }
        out
    }

    /// Parses the saved form; `None` if damaged.
    pub fn decode(bytes: &[u8]) -> Option<ReplayGuard> {
        if !bytes.len().is_multiple_of(24) {
            return None;
        }
        let seen = bytes
            .chunks_exact(24)
            .map(|c| {
                let id: [u8; 16] = c[..16].try_into().ok()?;
                let t = u64::from_be_bytes(c[16..].try_into().ok()?);
                Some((id, t))
            })
            .collect::<Option<_>>()?;
        Some(ReplayGuard { seen })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_only_and_within_the_window() {
        let mut g = ReplayGuard::default();
        let now = 1_800_000_000;
        assert_eq!(g.check_and_record([1; 16], now - 10, now), Ok(()));
        assert_eq!(
            g.check_and_record([1; 16], now - 10, now),
            Err(ReplayError::Seen)
        );
        assert_eq!(
            g.check_and_record([2; 16], now - WINDOW_SECS - 1, now),
            Err(ReplayError::OutsideWindow)
        );
        assert_eq!(
            g.check_and_record([3; 16], now + MAX_SKEW_SECS + 1, now),
            Err(ReplayError::OutsideWindow)
        );
        // Survives saving and loading.
        let mut loaded = ReplayGuard::decode(&g.encode()).expect("decodes");
        assert_eq!(
            loaded.check_and_record([1; 16], now - 10, now + 5),
            Err(ReplayError::Seen)
        );
        assert!(ReplayGuard::decode(&[0; 23]).is_none());
    }
}
