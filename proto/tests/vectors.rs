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
use hotline_proto::alert::Priority;
use hotline_proto::auth::{
    ChannelBinding, EXPORTER_CONTEXT, EXPORTER_LABEL, Nonce, SuiteHash,
    channel_binding_from_exporter_secret, device_auth_transcript, enroll_transcript,
};
use hotline_proto::e2e::content::{Category, Kind, Message};
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

/// A protobuf writer independent of the library's (prost) encoder: the
/// vectors' bodies are rebuilt with it from the inputs the files state,
/// field by field, as another implementation would (proto3: fields in
/// number order, zero values and empty bytes left out).
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint_raw(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn uint(&mut self, field: u64, v: u64) -> &mut Self {
        if v != 0 {
            self.varint_raw(field << 3);
            self.varint_raw(v);
        }
        self
    }
    /// An enum (int32): negative numbers as ten-byte varints.
    fn int(&mut self, field: u64, v: i32) -> &mut Self {
        self.uint(field, i64::from(v) as u64)
    }
    fn bytes(&mut self, field: u64, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            self.varint_raw((field << 3) | 2);
            self.varint_raw(v.len() as u64);
            self.0.extend_from_slice(v);
        }
        self
    }
    fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// The `SealedContent` encoding of `c`, rebuilt by [`Pb`].
fn sealed_content_by_hand(c: &Content) -> Vec<u8> {
    let m = &c.message;
    let kind = m.kind.code();
    let priority = priority_code(m.priority);
    Pb::default()
        .bytes(1, &c.message_id)
        .uint(2, c.counter)
        .uint(3, c.timestamp)
        .uint(5, c.thread)
        .bytes(6, c.sender_label.as_bytes())
        .int(7, kind)
        .int(8, m.category.map_or(0, Category::code))
        .int(9, priority)
        .bytes(10, m.text.as_bytes())
        .bytes(11, m.language.as_bytes())
        .done()
}

/// The wire number of a priority (`Priority` in the `.proto`).
fn priority_code(p: Option<Priority>) -> i32 {
    match p {
        None => 0,
        Some(Priority::Immediate) => 1,
        Some(Priority::Urgent) => 2,
        Some(Priority::Routine) => 3,
    }
}

/// `u32_be(len) || bytes || zeros` to the smallest bucket, rebuilt.
fn padded_by_hand(bytes: &[u8]) -> Vec<u8> {
    let size = [1024, 4096, 16384, 65536]
        .into_iter()
        .find(|&b| b >= 4 + bytes.len())
        .expect("fits");
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out.resize(size, 0);
    out
}

/// Writes a content's fields as a vector states them.
fn content_inputs(o: &mut Out, c: &Content) {
    let m = &c.message;
    o.hex("message_id", &c.message_id);
    o.num("counter", c.counter);
    o.num("timestamp", c.timestamp);
    o.num("thread", c.thread);
    o.hex("sender_label_utf8", c.sender_label.as_bytes());
    o.text(
        "kind",
        &match &m.kind {
            Kind::Sos => "1 (CONTENT_KIND_SOS)".to_owned(),
            Kind::Message => "2 (CONTENT_KIND_MESSAGE)".to_owned(),
            k => format!("{}", k.code()),
        },
    );
    o.text(
        "category",
        &match m.category {
            None => "0 (not given)".to_owned(),
            Some(Category::Unknown(n)) => format!("{n}"),
            Some(c) => format!("{} ({})", c.code(), c.name()),
        },
    );
    o.text(
        "priority",
        &match m.priority {
            None => "0 (not given)".to_owned(),
            Some(p) => format!("{} ({p})", priority_code(Some(p))),
        },
    );
    o.hex("text_utf8", m.text.as_bytes());
    o.text("language", &m.language);
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
    // The body is exactly the stated fields, encoded field by field
    // (RosterBody, format 1; each RosterEntry a nested message, field 6).
    let role_code = |r: Role| match r {
        Role::Defender => 1,
        Role::Officer => 2,
        Role::Coordinator => 3,
        Role::Admin => 4,
    };
    let mut by_hand = Pb::default();
    by_hand
        .uint(1, 1)
        .uint(2, roster.version)
        .uint(3, roster.issued_at)
        .uint(4, roster.expires_at)
        .bytes(5, &roster.previous_hash);
    for e in &roster.entries {
        let entry = Pb::default()
            .bytes(1, e.device_id.as_bytes())
            .int(2, role_code(e.role))
            .bytes(3, e.identity_key.as_bytes())
            .uint(4, e.valid_from)
            .uint(5, e.valid_until)
            .done();
        by_hand.bytes(6, &entry);
    }
    assert_eq!(by_hand.done(), signed.body, "roster body");
    o.section("roster");
    o.hex("root_seed", &seed(0x50));
    o.hex("root_public_key", root.public_key().as_bytes());
    o.text("root_fingerprint", &root.public_key().fingerprint());
    o.num("format", 1);
    o.num("version", roster.version);
    o.num("issued_at", roster.issued_at);
    o.num("expires_at", roster.expires_at);
    o.hex("previous_hash", &roster.previous_hash);
    let seeds = [("officer", seed(0x60)), ("admin", seed(0x70))];
    for (i, (e, (who, s))) in roster.entries.iter().zip(seeds).enumerate() {
        let n = i + 1;
        o.hex(&format!("entry{n}_identity_seed"), &s);
        o.text(&format!("entry{n}_holder"), who);
        o.hex(&format!("entry{n}_identity_key"), e.identity_key.as_bytes());
        o.hex(&format!("entry{n}_device_id"), e.device_id.as_bytes());
        o.text(
            &format!("entry{n}_role"),
            &format!("{} ({})", role_code(e.role), e.role),
        );
        o.num(&format!("entry{n}_valid_from"), e.valid_from);
        o.num(&format!("entry{n}_valid_until"), e.valid_until);
    }
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
    let by_hand = Pb::default()
        .bytes(1, prekey.device_id.as_bytes())
        .int(2, 2)
        .uint(3, u64::from(prekey.id))
        .bytes(4, prekey.public_key.as_bytes())
        .uint(5, prekey.created_at)
        .uint(6, prekey.expires_at)
        .done();
    assert_eq!(by_hand, signed.body, "prekey body");
    o.section("prekey");
    o.hex("owner_identity_seed", &seed(0x60));
    o.hex("device_id", prekey.device_id.as_bytes());
    o.text("kind", "2 (PREKEY_KIND_ONE_TIME)");
    o.num("id", u64::from(prekey.id));
    o.num("created_at", prekey.created_at);
    o.num("expires_at", prekey.expires_at);
    o.hex("prekey_ikm", &seed(0x90));
    o.hex("prekey_private_key", prekey_pair.secret_bytes());
    o.hex("prekey_public_key", prekey_pair.public_key().as_bytes());
    o.hex("body", &signed.body);
    o.hex("signature", signed.signature.as_bytes());
    o.hex("signed_prekey", &signed.encode());
    check("roster-prekey.txt", &o.0);
}

/// The sealed content (the plaintext inside an envelope): the stated
/// fields in, the exact `SealedContent` bytes and the padded plaintext
/// out; and how contents this version must still read (the old form, an
/// unknown category and field) are read.
#[test]
fn sealed_content_vectors() {
    let mut o = Out(String::new());
    let sos = Content {
        message_id: [0x11; 16],
        counter: 5,
        timestamp: 1_800_000_123,
        message: Message::sos(
            Category::Arrest,
            Priority::Immediate,
            "Détenue au poste frontière",
            "fr",
        ),
        thread: 0,
        sender_label: "Ana".into(),
    };
    let reply = Content {
        message_id: [0x22; 16],
        counter: 6,
        timestamp: 1_800_000_456,
        message: Message::chat("¿Dónde estás ahora?", "es"),
        thread: 35,
        sender_label: String::new(),
    };
    for (name, c) in [
        ("sealed-content-sos", &sos),
        ("sealed-content-message", &reply),
    ] {
        let bytes = envelope::encode_sealed_content(c);
        assert_eq!(bytes, sealed_content_by_hand(c), "{name}");
        let padded = envelope::pad(&bytes).expect("fits");
        assert_eq!(padded, padded_by_hand(&bytes), "{name}");
        o.section(name);
        content_inputs(&mut o, c);
        o.hex("sealed_content", &bytes);
        o.num("padded_len", padded.len() as u64);
        o.hex("padded", &padded);
    }

    // Read, not written: the old form (kind 0, the text in `body`, an
    // SOS's category on its first line), as clients before the content
    // message sealed it, and what a receiver makes of it.
    let old_body = "category: arrest\nthey took my brother".as_bytes();
    let old = Pb::default()
        .bytes(1, &[0x33; 16])
        .uint(2, 7)
        .uint(3, 1_800_000_789)
        .bytes(4, old_body)
        .done();
    let read = envelope::decode_sealed_content(&old).expect("reads");
    assert_eq!(
        read.message,
        Message {
            kind: Kind::Sos,
            category: Some(Category::Arrest),
            priority: None,
            text: "they took my brother".into(),
            language: String::new(),
        }
    );
    o.section("sealed-content-old-form");
    o.hex("sealed_content", &old);
    o.text("reads_as_kind", "1 (CONTENT_KIND_SOS)");
    o.text("reads_as_category", "1 (arrest)");
    o.hex("reads_as_text_utf8", read.message.text.as_bytes());

    // A later version's content: a category and a field this version does
    // not know. The message is kept; the category shows with its number.
    let later = sealed_content_by_hand(&Content {
        message: Message {
            category: Some(Category::Unknown(42)),
            ..sos.message.clone()
        },
        ..sos.clone()
    });
    let mut w = Pb(later);
    w.bytes(20, b"later");
    let later = w.done();
    let read = envelope::decode_sealed_content(&later).expect("reads");
    assert_eq!(read.message.category, Some(Category::Unknown(42)));
    assert_eq!(read.message.text, sos.message.text);
    o.section("sealed-content-unknown-category");
    o.hex("sealed_content", &later);
    o.text(
        "reads_as_category",
        "42 (unknown to this version: shown as \"other (category 42)\")",
    );
    check("sealed-content.txt", &o.0);
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
        message: Message::sos(
            Category::Arrest,
            Priority::Immediate,
            "SOS: detained at the border post",
            "en",
        ),
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
    content_inputs(&mut o, &content);
    o.hex("sealed_content", &sealed_content_by_hand(&content));
    o.hex("randomness_seed", randomness);
    o.hex("signed_envelope", &env.encode());
    check("envelope.txt", &o.0);
}

/// An envelope sealed by a client before the content message (the old
/// form: its text, with the SOS category line, in `body`), as servers
/// store them today: it still opens, and reads as an SOS of its category.
/// The bytes are the `envelope.txt` vector as this project published it
/// before the content message.
#[test]
fn an_envelope_of_the_old_form_still_opens_and_reads() {
    let r1 = IdentityKeyPair::from_seed(&seed(0xb0));
    let sender = IdentityKeyPair::from_seed(&seed(0xa0));
    let k1 = EncryptionKeyPair::derive(&seed(0xb8));
    let committed = std::fs::read_to_string(path("envelope-old-form.txt")).expect("read");
    let hexed = committed
        .lines()
        .find_map(|l| l.strip_prefix("signed_envelope = "))
        .expect("signed_envelope");
    let bytes = hotline_proto::identity::unhex(hexed.trim()).expect("hex");
    let opened = SignedEnvelope::decode(&bytes)
        .expect("decodes")
        .open(&sender.public_key(), &r1.device_id(), |_| Some(k1.clone()))
        .expect("opens");
    assert_eq!(opened.content.message_id, [0x11; 16]);
    assert_eq!(opened.content.message.kind, Kind::Message);
    assert_eq!(
        opened.content.message.text,
        "SOS: detained at the border post"
    );
    assert_eq!(opened.content.message.category, None);
}

/// The committed files, read as another implementer reads them: every
/// output recomputed from the inputs the file states, and nothing else
/// (no value from the code above). Protobuf bodies come from [`Pb`],
/// signatures from the stated seeds (RFC 8032), hashes from SHA-256.
#[test]
fn every_output_is_recomputed_from_the_inputs_the_files_state() {
    use hotline_proto::identity::unhex;

    /// The vectors of a file: name and `key = value` pairs.
    fn read(name: &str) -> Vec<(String, std::collections::HashMap<String, String>)> {
        let text = std::fs::read_to_string(path(name)).expect("read");
        let mut out: Vec<(String, std::collections::HashMap<String, String>)> = Vec::new();
        for line in text.lines() {
            if let Some(n) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                out.push((n.to_owned(), Default::default()));
            } else if let Some((k, v)) = line.split_once(" = ") {
                let (_, fields) = out.last_mut().expect("a section first");
                fields.insert(k.to_owned(), v.to_owned());
            } else if let Some(k) = line.strip_suffix(" =") {
                let (_, fields) = out.last_mut().expect("a section first");
                fields.insert(k.to_owned(), String::new());
            }
        }
        out
    }
    let hexv = |f: &std::collections::HashMap<String, String>, k: &str| -> Vec<u8> {
        unhex(f.get(k).unwrap_or_else(|| panic!("{k} missing"))).unwrap_or_else(|| panic!("{k}"))
    };
    // A number, or the number that leads "2 (officer)".
    let num = |f: &std::collections::HashMap<String, String>, k: &str| -> i64 {
        f.get(k)
            .unwrap_or_else(|| panic!("{k} missing"))
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{k} is no number"))
    };
    let seed32 = |v: Vec<u8>| -> [u8; 32] { v.try_into().expect("32 bytes") };
    let sha256 = |b: &[u8]| {
        ring::digest::digest(&ring::digest::SHA256, b)
            .as_ref()
            .to_vec()
    };
    let signed = |label: &str, body: &[u8]| {
        let mut m = label.as_bytes().to_vec();
        m.push(0);
        m.extend_from_slice(body);
        m
    };

    for (name, f) in read("roster-prekey.txt") {
        match name.as_str() {
            "roster" => {
                let root = IdentityKeyPair::from_seed(&seed32(hexv(&f, "root_seed")));
                assert_eq!(
                    root.public_key().as_bytes().to_vec(),
                    hexv(&f, "root_public_key")
                );
                let mut body = Pb::default();
                body.uint(1, num(&f, "format") as u64)
                    .uint(2, num(&f, "version") as u64)
                    .uint(3, num(&f, "issued_at") as u64)
                    .uint(4, num(&f, "expires_at") as u64)
                    .bytes(5, &hexv(&f, "previous_hash"));
                let mut n = 1;
                while f.contains_key(&format!("entry{n}_identity_seed")) {
                    let k = |s: &str| format!("entry{n}_{s}");
                    let id = IdentityKeyPair::from_seed(&seed32(hexv(&f, &k("identity_seed"))));
                    assert_eq!(
                        id.public_key().as_bytes().to_vec(),
                        hexv(&f, &k("identity_key"))
                    );
                    assert_eq!(
                        id.device_id().as_bytes().to_vec(),
                        hexv(&f, &k("device_id"))
                    );
                    let entry = Pb::default()
                        .bytes(1, &hexv(&f, &k("device_id")))
                        .int(2, num(&f, &k("role")) as i32)
                        .bytes(3, &hexv(&f, &k("identity_key")))
                        .uint(4, num(&f, &k("valid_from")) as u64)
                        .uint(5, num(&f, &k("valid_until")) as u64)
                        .done();
                    body.bytes(6, &entry);
                    n += 1;
                }
                assert_eq!(n, 3, "two entries");
                let body = body.done();
                assert_eq!(body, hexv(&f, "body"), "roster body");
                let sig = root.sign(&signed("hotline/1 roster", &body));
                assert_eq!(sig.as_bytes().to_vec(), hexv(&f, "signature"));
                assert_eq!(sha256(&body), hexv(&f, "roster_hash"));
                let wire = Pb::default()
                    .bytes(1, &body)
                    .bytes(2, sig.as_bytes())
                    .done();
                assert_eq!(wire, hexv(&f, "signed_roster"));
            }
            "prekey" => {
                let owner = IdentityKeyPair::from_seed(&seed32(hexv(&f, "owner_identity_seed")));
                assert_eq!(owner.device_id().as_bytes().to_vec(), hexv(&f, "device_id"));
                let pair = EncryptionKeyPair::derive(&seed32(hexv(&f, "prekey_ikm")));
                assert_eq!(
                    pair.public_key().as_bytes().to_vec(),
                    hexv(&f, "prekey_public_key")
                );
                let body = Pb::default()
                    .bytes(1, &hexv(&f, "device_id"))
                    .int(2, num(&f, "kind") as i32)
                    .uint(3, num(&f, "id") as u64)
                    .bytes(4, &hexv(&f, "prekey_public_key"))
                    .uint(5, num(&f, "created_at") as u64)
                    .uint(6, num(&f, "expires_at") as u64)
                    .done();
                assert_eq!(body, hexv(&f, "body"), "prekey body");
                let sig = owner.sign(&signed("hotline/1 prekey", &body));
                assert_eq!(sig.as_bytes().to_vec(), hexv(&f, "signature"));
                let wire = Pb::default()
                    .bytes(1, &body)
                    .bytes(2, sig.as_bytes())
                    .done();
                assert_eq!(wire, hexv(&f, "signed_prekey"));
            }
            other => panic!("unexpected vector {other}"),
        }
    }

    // The content fields of a vector, encoded as `SealedContent`.
    let content_by_hand = |f: &std::collections::HashMap<String, String>| -> Vec<u8> {
        Pb::default()
            .bytes(1, &hexv(f, "message_id"))
            .uint(2, num(f, "counter") as u64)
            .uint(3, num(f, "timestamp") as u64)
            .uint(5, num(f, "thread") as u64)
            .bytes(6, &hexv(f, "sender_label_utf8"))
            .int(7, num(f, "kind") as i32)
            .int(8, num(f, "category") as i32)
            .int(9, num(f, "priority") as i32)
            .bytes(10, &hexv(f, "text_utf8"))
            .bytes(11, f["language"].as_bytes())
            .done()
    };
    let mut written = 0;
    for (name, f) in read("sealed-content.txt") {
        if f.contains_key("text_utf8") {
            let c = content_by_hand(&f);
            assert_eq!(c, hexv(&f, "sealed_content"), "{name}");
            let padded = padded_by_hand(&c);
            assert_eq!(padded.len() as i64, num(&f, "padded_len"), "{name}");
            assert_eq!(padded, hexv(&f, "padded"), "{name}");
            written += 1;
        } else {
            // Contents to read: the library reads them as stated.
            let read = envelope::decode_sealed_content(&hexv(&f, "sealed_content")).expect("reads");
            let category = read.message.category.map_or(0, Category::code);
            assert_eq!(i64::from(category), num(&f, "reads_as_category"), "{name}");
            if f.contains_key("reads_as_text_utf8") {
                assert_eq!(read.message.text.as_bytes(), hexv(&f, "reads_as_text_utf8"));
                assert_eq!(read.message.kind, Kind::Sos);
                assert_eq!(num(&f, "reads_as_kind"), 1);
            }
        }
    }
    assert_eq!(written, 2);

    let (_, f) = read("envelope.txt").remove(0);
    assert_eq!(content_by_hand(&f), hexv(&f, "sealed_content"));
    let sender = IdentityKeyPair::from_seed(&seed32(hexv(&f, "sender_identity_seed")));
    let recipients: Vec<Recipient> = [1, 2]
        .into_iter()
        .map(|n| Recipient {
            device_id: IdentityKeyPair::from_seed(&seed32(hexv(
                &f,
                &format!("recipient{n}_identity_seed"),
            )))
            .device_id(),
            prekey_id: num(&f, &format!("recipient{n}_prekey_id")) as u32,
            key: EncryptionKeyPair::derive(&seed32(hexv(&f, &format!("recipient{n}_prekey_ikm"))))
                .public_key(),
        })
        .collect();
    // Sealing the stated content bytes, padded, with the stated randomness.
    let env = envelope::seal_padded(
        &sender,
        num(&f, "roster_version") as u64,
        &recipients,
        &padded_by_hand(&hexv(&f, "sealed_content")),
        &mut DeterministicRandomness::new(&hexv(&f, "randomness_seed")),
    )
    .expect("seal");
    assert_eq!(env.encode(), hexv(&f, "signed_envelope"));
}
