//! The erasure signatures (docs/protocol.md, sections 7.2 and 9.7): the
//! two staff members who erase a case each sign what they decide with
//! their device's identity key. Step 1 (the request) signs
//! `"hotline/1 case erasure" || 0x00 || case_id || u8(1) || closing`,
//! where `closing` names the event that closed the case (its author's
//! device id, then its event id); step 2 (the confirmation) signs
//! `… || case_id || u8(2) || closing || request signature` (the 64 bytes
//! of the step-1 signature it confirms). A signature therefore decides
//! one closing of one case, and a confirmation one request: neither can
//! be replayed after the case was reopened (and closed again). The server
//! checks each under the device's enrolled key and sends both, with the
//! closing, in the sync, so that every staff device can check an erasure
//! against its roster and its own replica instead of taking the server's
//! word.

use super::{CaseId, ID_LEN};
use crate::DeviceId;
use crate::identity::{IdentityKeyPair, IdentityPublicKey, Signature};

/// The signature label of an erasure step.
pub const ERASURE_LABEL: &[u8] = b"hotline/1 case erasure";

/// The event that closed a case: what an erasure decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Closing {
    /// The closing event's author (a staff device).
    pub author: DeviceId,
    /// The closing event's id.
    pub event_id: [u8; ID_LEN],
}

impl Closing {
    /// Its 32 bytes as signed: author, then event id.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(self.author.as_bytes());
        out[16..].copy_from_slice(&self.event_id);
        out
    }

    /// From its 32 bytes (author, then event id).
    pub fn from_bytes(bytes: [u8; 32]) -> Closing {
        let mut author = [0u8; 16];
        author.copy_from_slice(&bytes[..16]);
        let mut event_id = [0u8; ID_LEN];
        event_id.copy_from_slice(&bytes[16..]);
        Closing {
            author: DeviceId::from_bytes(author),
            event_id,
        }
    }
}

/// Which of the two steps a signature is for, with what it binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureStep {
    /// `request_case_erasure` (byte 1).
    Request,
    /// `confirm_case_erasure` (byte 2) of the request whose step-1
    /// signature this is.
    Confirm(Signature),
}

impl ErasureStep {
    /// The step's byte in the signed message.
    pub fn byte(self) -> u8 {
        match self {
            ErasureStep::Request => 1,
            ErasureStep::Confirm(_) => 2,
        }
    }
}

/// The bytes an erasure signature covers (label and separator included):
/// 72 bytes for a request, 136 for a confirmation.
pub fn erasure_message(case_id: &CaseId, step: ErasureStep, closing: &Closing) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + 1 + 32 + 64);
    body.extend_from_slice(case_id.as_bytes());
    body.push(step.byte());
    body.extend_from_slice(&closing.to_bytes());
    if let ErasureStep::Confirm(request) = step {
        body.extend_from_slice(request.as_bytes());
    }
    crate::e2e::signed_message(ERASURE_LABEL, &body)
}

/// Signs an erasure step of `case_id`, closed by `closing`, with this
/// device's identity key.
pub fn sign_erasure(
    identity: &IdentityKeyPair,
    case_id: &CaseId,
    step: ErasureStep,
    closing: &Closing,
) -> Signature {
    identity.sign(&erasure_message(case_id, step, closing))
}

/// Whether `signature` is `key`'s signature of the erasure step.
pub fn verify_erasure(
    key: &IdentityPublicKey,
    case_id: &CaseId,
    step: ErasureStep,
    closing: &Closing,
    signature: &Signature,
) -> bool {
    key.verify(&erasure_message(case_id, step, closing), signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closing(b: u8) -> Closing {
        Closing {
            author: DeviceId::from_bytes([b; 16]),
            event_id: [b.wrapping_add(1); 16],
        }
    }

    #[test]
    fn a_signature_covers_the_case_the_step_and_the_closing() {
        let k = IdentityKeyPair::from_seed(&[7; 32]);
        let case = CaseId::from_bytes([1; 16]);
        let c = closing(3);
        let sig = sign_erasure(&k, &case, ErasureStep::Request, &c);
        assert!(verify_erasure(
            &k.public_key(),
            &case,
            ErasureStep::Request,
            &c,
            &sig
        ));
        // Not the confirmation, not another case, not another closing
        // (the case reopened and closed again), not another key.
        assert!(!verify_erasure(
            &k.public_key(),
            &case,
            ErasureStep::Confirm(sig),
            &c,
            &sig
        ));
        assert!(!verify_erasure(
            &k.public_key(),
            &CaseId::from_bytes([2; 16]),
            ErasureStep::Request,
            &c,
            &sig
        ));
        assert!(!verify_erasure(
            &k.public_key(),
            &case,
            ErasureStep::Request,
            &closing(9),
            &sig
        ));
        let other = IdentityKeyPair::from_seed(&[8; 32]);
        assert!(!verify_erasure(
            &other.public_key(),
            &case,
            ErasureStep::Request,
            &c,
            &sig
        ));
        let m = erasure_message(&case, ErasureStep::Request, &c);
        assert_eq!(&m[..22], b"hotline/1 case erasure");
        assert_eq!(m[22], 0);
        assert_eq!(&m[23..39], &[1; 16]);
        assert_eq!(m[39], 1);
        assert_eq!(&m[40..56], &[3; 16]);
        assert_eq!(&m[56..72], &[4; 16]);
        assert_eq!(m.len(), 72);
    }

    #[test]
    fn a_confirmation_confirms_one_request() {
        let a = IdentityKeyPair::from_seed(&[7; 32]);
        let b = IdentityKeyPair::from_seed(&[8; 32]);
        let case = CaseId::from_bytes([1; 16]);
        let c = closing(3);
        let first = sign_erasure(&a, &case, ErasureStep::Request, &c);
        let other = sign_erasure(&a, &case, ErasureStep::Request, &closing(5));
        let confirm = sign_erasure(&b, &case, ErasureStep::Confirm(first), &c);
        assert!(verify_erasure(
            &b.public_key(),
            &case,
            ErasureStep::Confirm(first),
            &c,
            &confirm
        ));
        assert!(!verify_erasure(
            &b.public_key(),
            &case,
            ErasureStep::Confirm(other),
            &c,
            &confirm
        ));
        let m = erasure_message(&case, ErasureStep::Confirm(first), &c);
        assert_eq!(m[39], 2);
        assert_eq!(&m[72..], first.as_bytes());
        assert_eq!(m.len(), 136);
    }
}
