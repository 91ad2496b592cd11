//! What can go wrong for a client, said so that the person at the keyboard
//! knows what to do next.

use hotline_proto::{ErrorCode, WireError};

use crate::keystore::KeystoreError;

/// A client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached at all.
    #[error(
        "cannot reach the server at {addr}: {reason}. Check your network connection and try again"
    )]
    Unreachable {
        /// Where we tried.
        addr: String,
        /// Why it failed (transport-level).
        reason: String,
    },
    /// The server presented a certificate other than the pinned one.
    #[error(
        "the server's certificate does not match the one in your invite. Someone may be impersonating \
         the server: do not continue, and tell your organisation through another channel"
    )]
    PinMismatch,
    /// The server does not speak this client's protocol (ALPN refused).
    #[error(
        "the server does not speak this client's protocol (hotline/1). Update the app, or check the invite"
    )]
    IncompatibleServer,
    /// The server refused the request.
    #[error("{}", refusal_text(.0))]
    Refused(WireError),
    /// An item of the outbox can never be sent: the server refused it for
    /// a reason a retry cannot fix (a mistake in it, a recipient that does
    /// not exist, a role that may not send it), or it is too large to
    /// seal. It was removed from the outbox, so that what was written
    /// after it is not stuck behind it.
    #[error("{reason}. It was removed from the outbox and will not be sent again")]
    Dropped {
        /// The server's code, if the server refused it.
        code: Option<ErrorCode>,
        /// Why, as the refusal or the local error said it.
        reason: String,
    },
    /// A message too large to seal (a body of at most
    /// `envelope::MAX_BODY_LEN` bytes always fits).
    #[error("the message is too large to send")]
    TooLarge,
    /// The connection broke during the exchange.
    #[error("the connection to the server was lost: {0}. Try again")]
    ConnectionLost(String),
    /// The server's answer broke the protocol.
    #[error("the server sent an invalid answer ({0})")]
    Protocol(String),
    /// The local key file could not be opened or written.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The local state directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The local state is not usable.
    #[error("{0}")]
    State(String),
}

impl ClientError {
    /// The server's error code, if the server refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused(e) => Some(e.code),
            ClientError::Dropped { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether the server closed this connection because the same device
    /// opened newer ones beyond its limit (`SUPERSEDED`). Not transient:
    /// a command does not simply retry (it would push the other out in
    /// turn); an SOS tries again, and `watch` comes back after a wait that
    /// grows while it keeps being pushed out.
    pub fn is_superseded(&self) -> bool {
        self.code() == Some(ErrorCode::Superseded)
    }

    /// Whether trying again later may work: the network or the server's
    /// availability failed, rather than the server refusing this device or
    /// the local state being wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::ConnectionLost(_) => true,
            ClientError::Refused(e) => matches!(
                e.code,
                ErrorCode::Unavailable
                    | ErrorCode::RateLimited
                    | ErrorCode::AuthTimeout
                    // A server older than this client closed with code 0.
                    | ErrorCode::Unknown(0)
            ),
            _ => false,
        }
    }
}

fn refusal_text(e: &WireError) -> String {
    let advice = match e.code {
        ErrorCode::InviteUsed => {
            "This invite has already been used, or a newer one replaced it. Use the newest invite, or ask whoever invited you for a new one"
        }
        ErrorCode::InviteExpired => {
            "This invite has expired. Ask whoever invited you for a new one"
        }
        ErrorCode::InviteUnknown => {
            "The server does not know this invite. Check that it was copied whole, or ask for a new one"
        }
        ErrorCode::UnknownDevice => {
            "The server does not know this device. It may have been reset: ask an admin for a new invite"
        }
        ErrorCode::DeviceRevoked => {
            "This device has been revoked by an admin. Ask an admin for a new invite"
        }
        ErrorCode::BadSignature => "The server could not verify this device's key",
        ErrorCode::Forbidden => "Your role does not allow this",
        ErrorCode::RateLimited => "Too many requests. Wait a moment and try again",
        ErrorCode::Unavailable => "The server cannot do this right now. Try again shortly",
        ErrorCode::AuthTimeout => "The connection was too slow to authenticate. Try again",
        ErrorCode::AlreadyEnrolled => "This device is already enrolled",
        ErrorCode::Superseded => {
            "This device has more connections open at once than the server allows (other `hotline` commands or watches of this device running now), so the server closed this, its oldest. If a `hotline watch` of this device keeps running elsewhere, stop the one you do not need"
        }
        _ => "The server refused the request",
    };
    format!("{advice} (server said: {e})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_superseded_connection_is_said_so_and_not_retried_as_a_network_failure() {
        let e = ClientError::Refused(WireError::new(ErrorCode::Superseded, "newer connection"));
        assert!(e.is_superseded());
        assert!(
            !e.is_transient(),
            "not retried at once, like a network failure"
        );
        let text = e.to_string();
        // It names every cause: the officer's own short command as much
        // as a second watch.
        assert!(
            text.contains("more connections open at once than the server allows")
                && text.contains("other `hotline` commands or watches of this device"),
            "{text}"
        );
        assert!(!text.contains("is another hotline watch"), "{text}");
        let unavailable = ClientError::Refused(WireError::new(ErrorCode::Unavailable, "full"));
        assert!(unavailable.is_transient() && !unavailable.is_superseded());
    }
}
