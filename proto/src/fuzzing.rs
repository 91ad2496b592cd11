//! What the fuzz targets need beyond the public interface: signing
//! arbitrary bytes as a roster, prekey, envelope or case event body, so
//! that the fuzzer reaches the parsers that run only after a signature
//! verifies.
//!
//! Nothing else uses these: a real roster or prekey is signed from its
//! typed form ([`crate::e2e::roster::Roster::sign`],
//! [`crate::e2e::prekey::Prekey::sign`]), which always writes a
//! well-formed body. See `fuzz/README.md`.

use crate::e2e::envelope::SignedEnvelope;
use crate::e2e::org::OrgKeyPair;
use crate::e2e::prekey::SignedPrekey;
use crate::e2e::roster::SignedRoster;
use crate::identity::IdentityKeyPair;

/// `body` signed by `root` as a roster, whatever it holds.
pub fn sign_roster_body(root: &OrgKeyPair, body: &[u8]) -> SignedRoster {
    SignedRoster {
        body: body.to_vec(),
        signature: root.sign(&crate::e2e::signed_message(crate::e2e::roster::LABEL, body)),
    }
}

/// `body` signed by `owner` as a prekey, whatever it holds.
pub fn sign_prekey_body(owner: &IdentityKeyPair, body: &[u8]) -> SignedPrekey {
    SignedPrekey {
        body: body.to_vec(),
        signature: owner.sign(&crate::e2e::signed_message(crate::e2e::prekey::LABEL, body)),
    }
}

/// `body` signed by `sender` as an envelope, whatever it holds.
pub fn sign_envelope_body(sender: &IdentityKeyPair, body: &[u8]) -> SignedEnvelope {
    SignedEnvelope {
        sender: sender.device_id(),
        body: body.to_vec(),
        signature: sender.sign(&crate::e2e::signed_message(
            crate::e2e::envelope::LABEL,
            body,
        )),
    }
}

/// The `SealedContent` bytes an envelope carries for `content` (before
/// padding): seeds for the fuzz targets.
pub fn encode_content(content: &crate::e2e::envelope::Content) -> Vec<u8> {
    crate::e2e::envelope::encode_content(content)
}

/// `body` signed by `author` as a case event, whatever it holds.
pub fn sign_case_event_body(author: &IdentityKeyPair, body: &[u8]) -> crate::case::SignedCaseEvent {
    crate::case::SignedCaseEvent {
        author: author.device_id(),
        body: body.to_vec(),
        signature: author.sign(&crate::e2e::signed_message(
            crate::case::SIGNATURE_LABEL,
            body,
        )),
    }
}
