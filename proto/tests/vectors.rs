//! The published test vectors in `docs/test-vectors/`: computed here from
//! their inputs and compared with the committed files, byte for byte. An
//! implementation in another language can check itself against the same
//! files (their format is described in `docs/test-vectors/README.md`).
//!
//! After an intended change of format, regenerate with
//! `HOTLINE_WRITE_VECTORS=1 cargo test -p hotline-proto --test vectors`
//! and review the diff.

use std::fmt::Write as _;
use std::path::PathBuf;

use hotline_proto::alert::CheckinKey;
use hotline_proto::auth::{
    ChannelBinding, EXPORTER_CONTEXT, EXPORTER_LABEL, Nonce, SuiteHash,
    channel_binding_from_exporter_secret, device_auth_transcript, enroll_transcript,
};
use hotline_proto::e2e::envelope::{self, Content, Recipient, SignedEnvelope};
use hotline_proto::e2e::org::OrgKeyPair;
use hotline_proto::e2e::prekey::{Prekey, PrekeyKind};
use hotline_proto::e2e::roster::{Roster, RosterEntry, SignedRoster};
use hotline_proto::e2e::suite::{DeterministicRandomness, EncryptionKeyPair};
use hotline_proto::identity::hex;
use hotline_proto::{IdentityKeyPair, InviteToken, Role};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
        .join("test-vectors")
        .join(name)
}

/// Compares `text` with the committed file (or writes it when asked).
fn check(name: &str, text: &str) {
    let p = path(name);
    if std::env::var_os("HOTLINE_WRITE_VECTORS").is_some() {
        std::fs::write(&p, text).expect("write vectors");
        return;
    }
    let committed = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        committed == text,
        "{} differs from what this implementation computes; if the format changed on purpose, \
         regenerate with HOTLINE_WRITE_VECTORS=1 and review the diff",
        p.display()
    );
}

struct Out(String);

impl Out {
    fn section(&mut self, name: &str) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        let _ = writeln!(self.0, "[{name}]");
    }
    fn hex(&mut self, key: &str, value: &[u8]) {
        let _ = writeln!(self.0, "{key} = {}", hex(value));
    }
    fn num(&mut self, key: &str, value: u64) {
        let _ = writeln!(self.0, "{key} = {value}");
    }
    fn text(&mut self, key: &str, value: &str) {
        let _ = writeln!(self.0, "{key} = {value}");
    }
}

fn seed(byte: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = byte.wrapping_add(i as u8);
    }
    s
}

#[test]
fn identity_and_authentication_vectors() {
    let mut o = Out(String::new());
    let device = IdentityKeyPair::from_seed(&seed(0x10));
    o.section("device-id");
    o.hex("identity_seed", &seed(0x10));
    o.hex("identity_public_key", device.public_key().as_bytes());
    o.hex("device_id", device.device_id().as_bytes());

    let nonce = Nonce(seed(0x20));
    let binding = ChannelBinding(seed(0x30));
    let t = device_auth_transcript(&nonce, &binding, &device.device_id());
    o.section("device-auth");
    o.hex("identity_seed", &seed(0x10));
    o.hex("nonce", &nonce.0);
    o.hex("channel_binding", &binding.0);
    o.hex("transcript", &t);
    o.hex("signature", device.sign(&t).as_bytes());

    let token = InviteToken::from_bytes(seed(0x40));
    let t = enroll_transcript(&nonce, &binding, &device.public_key(), &token);
    o.section("enroll");
    o.hex("identity_seed", &seed(0x10));
    o.hex("nonce", &nonce.0);
    o.hex("channel_binding", &binding.0);
    o.hex("invite_token", token.as_bytes());
    o.hex("transcript", &t);
    o.hex("signature", device.sign(&t).as_bytes());
    o.hex("invite_token_digest", &token.digest());
    check("identity.txt", &o.0);
}

/// The channel-binding step end to end: the TLS exporter secret a stack
/// logs as `EXPORTER_SECRET` in, the exported value, the device-auth
/// transcript and its signature out; for both hashes a TLS 1.3 suite can
/// have. The e2e suite checks the same computation against rustls on a
/// real connection.
#[test]
fn channel_binding_vectors() {
    let mut o = Out(String::new());
    let device = IdentityKeyPair::from_seed(&seed(0x10));
    let nonce = Nonce(seed(0x20));
    for (name, hash, len) in [
        ("sha256", SuiteHash::Sha256, 32),
        ("sha384", SuiteHash::Sha384, 48),
    ] {
        let secret: Vec<u8> = (0..len).map(|i| 0x50u8.wrapping_add(i as u8)).collect();
        let binding = channel_binding_from_exporter_secret(hash, &secret);
        let t = device_auth_transcript(&nonce, &binding, &device.device_id());
        o.section(&format!("channel-binding-{name}"));
        o.hex("exporter_secret", &secret);
        o.text("exporter_label", &String::from_utf8_lossy(EXPORTER_LABEL));
        o.hex("exporter_context", EXPORTER_CONTEXT);
        o.hex("channel_binding", &binding.0);
        o.hex("identity_seed", &seed(0x10));
        o.hex("device_id", device.device_id().as_bytes());
        o.hex("nonce", &nonce.0);
        o.hex("transcript", &t);
        o.hex("signature", device.sign(&t).as_bytes());
    }
    check("channel-binding.txt", &o.0);
}

#[test]
fn checkin_tag_vectors() {
    let mut o = Out(String::new());
    let device = IdentityKeyPair::from_seed(&seed(0x10)).device_id();
    let key = CheckinKey::from_bytes(seed(0x90));
    for code in ["4711", "0815"] {
        o.section("checkin-tag");
        o.hex("checkin_key", &seed(0x90));
        o.hex("device_id", device.as_bytes());
        o.text("code", code);
        o.hex("tag", &key.tag(&device, code));
    }
    check("checkin.txt", &o.0);
}

#[test]
fn roster_and_prekey_vectors() {
    let mut o = Out(String::new());
    let root = OrgKeyPair::from_seed(&seed(0x50));
    let officer = IdentityKeyPair::from_seed(&seed(0x60));
    let admin = IdentityKeyPair::from_seed(&seed(0x70));
    let roster = Roster {
        version: 3,
        issued_at: 1_800_000_000,
        expires_at: 1_802_592_000,
        previous_hash: seed(0x80),
        entries: vec![
            RosterEntry {
                device_id: officer.device_id(),
                role: Role::Officer,
                identity_key: officer.public_key(),
                valid_from: 1_800_000_000,
                valid_until: 1_831_536_000,
            },
            RosterEntry {
                device_id: admin.device_id(),
                role: Role::Admin,
                identity_key: admin.public_key(),
                valid_from: 1_800_000_000,
                valid_until: 1_831_536_000,
            },
        ],
    };
    let signed = roster.sign(&root);
    // The committed bytes must verify, and parse back to the same roster.
    let checked = SignedRoster::decode(&signed.encode())
        .expect("decodes")
        .verify(&root.public_key(), 1_800_000_001, None)
        .expect("verifies");
    assert_eq!(checked, roster);
    o.section("roster");
    o.hex("root_seed", &seed(0x50));
    o.hex("root_public_key", root.public_key().as_bytes());
    o.text("root_fingerprint", &root.public_key().fingerprint());
    o.hex("officer_identity_seed", &seed(0x60));
    o.hex("admin_identity_seed", &seed(0x70));
    o.hex("body", &signed.body);
    o.hex("signature", signed.signature.as_bytes());
    o.hex("roster_hash", &signed.hash());
    o.hex("signed_roster", &signed.encode());

    let prekey_pair = EncryptionKeyPair::derive(&seed(0x90));
    let prekey = Prekey {
        device_id: officer.device_id(),
        kind: PrekeyKind::OneTime,
        id: 42,
        public_key: prekey_pair.public_key(),
        created_at: 1_800_000_000,
        expires_at: 1_802_592_000,
    };
    let signed = prekey.sign(&officer);
    assert_eq!(
        signed.verify(&officer.public_key(), 1_800_000_001),
        Ok(prekey.clone())
    );
    o.section("prekey");
    o.hex("owner_identity_seed", &seed(0x60));
    o.hex("prekey_ikm", &seed(0x90));
    o.hex("prekey_private_key", prekey_pair.secret_bytes());
    o.hex("prekey_public_key", prekey_pair.public_key().as_bytes());
    o.hex("body", &signed.body);
    o.hex("signature", signed.signature.as_bytes());
    o.hex("signed_prekey", &signed.encode());
    check("roster-prekey.txt", &o.0);
}

#[test]
fn envelope_vectors() {
    let mut o = Out(String::new());
    let sender = IdentityKeyPair::from_seed(&seed(0xa0));
    let r1 = IdentityKeyPair::from_seed(&seed(0xb0));
    let r2 = IdentityKeyPair::from_seed(&seed(0xc0));
    let k1 = EncryptionKeyPair::derive(&seed(0xb8));
    let k2 = EncryptionKeyPair::derive(&seed(0xc8));
    let recipients = [
        Recipient {
            device_id: r1.device_id(),
            prekey_id: 7,
            key: k1.public_key(),
        },
        Recipient {
            device_id: r2.device_id(),
            prekey_id: 1,
            key: k2.public_key(),
        },
    ];
    let content = Content {
        message_id: [0x11; 16],
        counter: 5,
        timestamp: 1_800_000_123,
        body: b"SOS: detained at the border post".to_vec(),
        thread: 0,
        sender_label: String::new(),
    };
    let randomness = b"hotline/1 test vector randomness";
    let env = envelope::seal(
        &sender,
        3,
        &recipients,
        &content,
        &mut DeterministicRandomness::new(randomness),
    )
    .expect("seal");
    // Both recipients open it to the same content.
    let wire = SignedEnvelope::decode(&env.encode()).expect("decodes");
    for (id, key) in [(r1.device_id(), &k1), (r2.device_id(), &k2)] {
        let opened = wire
            .open(&sender.public_key(), &id, |_| Some(key.clone()))
            .expect("opens");
        assert_eq!(opened.content, content);
    }
    o.section("envelope");
    o.hex("sender_identity_seed", &seed(0xa0));
    o.hex("recipient1_identity_seed", &seed(0xb0));
    o.hex("recipient1_prekey_ikm", &seed(0xb8));
    o.num("recipient1_prekey_id", 7);
    o.hex("recipient2_identity_seed", &seed(0xc0));
    o.hex("recipient2_prekey_ikm", &seed(0xc8));
    o.num("recipient2_prekey_id", 1);
    o.num("roster_version", 3);
    o.hex("message_id", &content.message_id);
    o.num("counter", content.counter);
    o.num("timestamp", content.timestamp);
    o.hex("body", &content.body);
    o.hex("randomness_seed", randomness);
    o.hex("signed_envelope", &env.encode());
    check("envelope.txt", &o.0);
}
