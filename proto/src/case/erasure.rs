//! The erasure signatures (docs/protocol.md, sections 7.2 and 9.7): the
//! two staff members who erase a case each sign
//! `"hotline/1 case erasure" || 0x00 || case_id || u8(step)` with their
//! device's identity key (step 1: the request, step 2: the
//! confirmation). The server checks each under the device's enrolled key
//! and sends both in the sync, so that every staff device can check an
//! erasure against its roster instead of taking the server's word.

use super::CaseId;
use crate::identity::{IdentityKeyPair, IdentityPublicKey, Signature};

/// The signature label of an erasure step.
pub const ERASURE_LABEL: &[u8] = b"hotline/1 case erasure";

/// Which of the two steps a signature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureStep {
    /// `request_case_erasure` (byte 1).
    Request,
    /// `confirm_case_erasure` (byte 2).
    Confirm,
}

impl ErasureStep {
    /// The step's byte in the signed message.
    pub fn byte(self) -> u8 {
        match self {
            ErasureStep::Request => 1,
            ErasureStep::Confirm => 2,
        }
    }
}

/// The bytes an erasure signature covers (label and separator included).
pub fn erasure_message(case_id: &CaseId, step: ErasureStep) -> Vec<u8> {
    let mut body = Vec::with_capacity(17);
    body.extend_from_slice(case_id.as_bytes());
    body.push(step.byte());
    crate::e2e::signed_message(ERASURE_LABEL, &body)
}

/// Signs an erasure step of `case_id` with this device's identity key.
pub fn sign_erasure(identity: &IdentityKeyPair, case_id: &CaseId, step: ErasureStep) -> Signature {
    identity.sign(&erasure_message(case_id, step))
}

/// Whether `signature` is `key`'s signature of the erasure step.
pub fn verify_erasure(
    key: &IdentityPublicKey,
    case_id: &CaseId,
    step: ErasureStep,
    signature: &Signature,
) -> bool {
    key.verify(&erasure_message(case_id, step), signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_the_case_and_the_step() {
        let k = IdentityKeyPair::from_seed(&[7; 32]);
        let case = CaseId::from_bytes([1; 16]);
        let sig = sign_erasure(&k, &case, ErasureStep::Request);
        assert!(verify_erasure(
            &k.public_key(),
            &case,
            ErasureStep::Request,
            &sig
        ));
        // Not the confirmation, not another case, not another key.
        assert!(!verify_erasure(
            &k.public_key(),
            &case,
            ErasureStep::Confirm,
            &sig
        ));
        assert!(!verify_erasure(
            &k.public_key(),
            &CaseId::from_bytes([2; 16]),
            ErasureStep::Request,
            &sig
        ));
        let other = IdentityKeyPair::from_seed(&[8; 32]);
        assert!(!verify_erasure(
            &other.public_key(),
            &case,
            ErasureStep::Request,
            &sig
        ));
        let m = erasure_message(&case, ErasureStep::Confirm);
        assert_eq!(&m[..22], b"hotline/1 case erasure");
        assert_eq!(m[22], 0);
        assert_eq!(&m[23..39], &[1; 16]);
        assert_eq!(m[39], 2);
        assert_eq!(m.len(), 40);
    }
}
