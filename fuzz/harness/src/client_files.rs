//! Target `client_files`: the files a client keeps in its state directory
//! and reads back: `profile.toml` (selector 0), the opened
//! `device.sealed` (1: prekeys, counters, replay state, outbox,
//! contacts), the opened `messages.sealed` (2: history) and the header of
//! `identity.key` (3; the key derivation after it is slow by design).

use hotline_client::Profile;
use hotline_client::history::fuzz_history_file;
use hotline_client::keystore::{MAX_ITERATIONS, MIN_ITERATIONS, SEALED_LEN, fuzz_read_header};
use hotline_client::messenger::fuzz_device_file;

use crate::select;

pub fn check(data: &[u8]) {
    let Some((which, bytes)) = select(data, 4) else {
        return;
    };
    match which {
        0 => profile(bytes),
        1 => {
            if let Ok((saved, _warnings)) = fuzz_device_file(bytes) {
                // What the device writes back reads back the same, with
                // nothing left to warn about.
                let again = fuzz_device_file(&saved).expect("a saved device file reads back");
                assert_eq!(
                    again,
                    (saved, Vec::new()),
                    "device.sealed changes on a read and write"
                );
            }
        }
        2 => {
            if let Ok(saved) = fuzz_history_file(bytes) {
                assert_eq!(
                    fuzz_history_file(&saved).as_ref().ok(),
                    Some(&saved),
                    "messages.sealed changes on a read and write"
                );
            }
        }
        _ => {
            if let Ok(iterations) = fuzz_read_header(bytes) {
                assert_eq!(bytes.len(), SEALED_LEN);
                assert!((MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations));
            }
        }
    }
}

fn profile(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(profile) = Profile::from_toml(text) else {
        return;
    };
    // What commands read from it: each either a value or a clear error.
    let _ = (profile.server(), profile.role(), profile.device_id());
    let _ = (profile.org_root_key(), profile.roster_alarm_text());
    // Saved again (as `save_profile` does), it reads back the same.
    let saved = toml::to_string(&profile).expect("a profile serialises");
    assert_eq!(
        Profile::from_toml(&saved).as_ref(),
        Ok(&profile),
        "profile.toml does not read back"
    );
}
