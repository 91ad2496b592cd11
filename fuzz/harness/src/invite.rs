//! Target `invite`: an invite as a person pastes it (selector 1: text)
//! and its protobuf form (selector 0), which the server also writes.

use hotline_proto::Invite;
use hotline_proto::invite::{MAX_INVITE_LEN, check_label};

use crate::select;

pub fn check(data: &[u8]) {
    let Some((which, bytes)) = select(data, 2) else {
        return;
    };
    let invite = match which {
        0 => Invite::from_bytes(bytes).ok(),
        _ => {
            let text = String::from_utf8_lossy(bytes);
            let parsed = text.parse::<Invite>().ok();
            if parsed.is_some() {
                assert!(
                    text.trim().len() <= MAX_INVITE_LEN,
                    "an over-long invite text was accepted"
                );
            }
            parsed
        }
    };
    let Some(invite) = invite else {
        return;
    };
    // The bytes and the text it is handed over as read back the same.
    let bytes = invite.to_bytes();
    assert_eq!(
        Invite::from_bytes(&bytes).ok().as_ref(),
        Some(&invite),
        "bytes do not read back"
    );
    let text = invite.to_string();
    assert!(
        text.len() <= MAX_INVITE_LEN,
        "an accepted invite's text is {} bytes, over the {MAX_INVITE_LEN} a reader accepts",
        text.len()
    );
    assert_eq!(
        text.parse::<Invite>().ok().as_ref(),
        Some(&invite),
        "text does not read back"
    );
    if let Some(label) = &invite.label {
        assert!(check_label(label).is_ok(), "an invalid label accepted");
    }
}
