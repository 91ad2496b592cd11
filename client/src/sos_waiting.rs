//! What a command run without the passphrase can tell of the SOSes
//! waiting in the device's outbox.
//!
//! An SOS raised with the passphrase while the server could not be
//! reached waits in the outbox, sealed on disk under the passphrase, and
//! is sealed to the roster when it is sent (so that every staff device on
//! the roster then reads it): sending it takes the passphrase. A command
//! run without it (`hotline status` with no terminal, or a passphrase not
//! typed) cannot open the outbox, yet must not stay silent about an SOS
//! that nobody has received. So the device keeps beside it, in the file
//! [`FILE`] (owner-only), how many SOSes wait there, and nothing else:
//! no text, no time, no priority. Check-ins never wait in the outbox (a
//! check-in is answered at once or not at all, the duress one alike), so
//! the file says nothing of them. It holds what `panic-outbox` already
//! shows of an SOS raised without the passphrase: that one waits.

use crate::error::ClientError;
use crate::state::StateDir;

/// The file's name in the state directory: the count in decimal and a
/// newline; absent when no SOS waits.
pub const FILE: &str = "sos-waiting";

/// How many SOSes wait in the device's outbox, as last recorded (0: none,
/// or the file does not read).
pub fn count(state: &StateDir) -> usize {
    std::fs::read_to_string(state.path().join(FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Records that `n` SOSes wait in the outbox (0: removes the file). Writes
/// only when the count changed.
pub(crate) fn record(state: &StateDir, n: usize) -> Result<(), ClientError> {
    if count(state) == n && (n > 0 || !state.path().join(FILE).exists()) {
        return Ok(());
    }
    if n == 0 {
        state.remove_private(FILE)
    } else {
        state.write_private(FILE, format!("{n}\n").as_bytes())
    }
}

/// What a command without the passphrase says of `n` SOSes waiting in
/// the outbox: that nobody has them, what sends them, and what works
/// without the passphrase.
pub fn notice(n: usize) -> String {
    let what = if n == 1 {
        "1 SOS is waiting in this device's outbox".to_owned()
    } else {
        format!("{n} SOSes are waiting in this device's outbox")
    };
    format!(
        "{what}, NOT SENT YET: NOBODY HAS BEEN ALERTED by {}. {} raised with the passphrase while the server could not be reached, and sending {} needs the passphrase: run `hotline status` at a terminal and type it (or with HOTLINE_PASSPHRASE set); any command run with it sends {} first. Without the passphrase, `hotline sos` raises a new alert at once.",
        if n == 1 { "it" } else { "them" },
        if n == 1 { "It was" } else { "They were" },
        if n == 1 { "it" } else { "them" },
        if n == 1 { "it" } else { "them" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count reads back; 0 removes the file; the file is owner-only
    /// and holds the count alone.
    #[test]
    fn the_count_reads_back_and_none_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path().join("home"));
        assert_eq!(count(&state), 0);
        record(&state, 2).expect("recorded");
        assert_eq!(count(&state), 2);
        assert_eq!(
            std::fs::read(state.path().join(FILE)).expect("file"),
            b"2\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(state.path().join(FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
        }
        record(&state, 0).expect("recorded");
        assert!(!state.path().join(FILE).exists());
        assert_eq!(count(&state), 0);
        assert!(notice(1).contains("1 SOS is waiting") && notice(1).contains("NOT SENT YET"));
        assert!(notice(2).contains("2 SOSes are waiting"));
    }
}
