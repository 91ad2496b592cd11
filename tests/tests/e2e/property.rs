//! A property test against a real server (loopback QUIC, TLS, store and
//! crypto): random well-formed requests of every kind, with random field
//! values (ids of real devices and alerts and unknown ones, edge numbers,
//! valid and invalid signatures, random text), sent as every role: a
//! connection still in set-up (enrolling or authenticating), a defender,
//! the same defender through its panic-key session, an officer, a
//! coordinator, an admin, a revoked device, and an officer and a
//! defender that the admin may revoke while they work (from then on
//! every request of theirs must be refused `DEVICE_REVOKED` or find the
//! connection closed with that code). It holds the server to
//! what `docs/protocol.md` says, as a user of the protocol would notice:
//!
//! 1. the server never panics (it runs on threads of the test's own
//!    runtime, and a panic on any of them fails the test) and keeps
//!    serving: after every batch, an officer and a defender on
//!    connections of their own still ask their status, and the
//!    defender's SOS still pages the officer; at the end the server is
//!    restarted on the log it wrote, and serves the same devices, alerts
//!    and roster, and the probes, again;
//! 2. every success is allowed by the role table (§4.2, read from the
//!    document by `hotline_server::requests::protocol_doc`), answers
//!    with the kind of response the request asks for, and holds what
//!    §4 promises of it that one answer can show (a device's own status,
//!    an inbox after its cursor, one prekey bundle per device named, a
//!    defender shown only its own alerts and never a duress one, ...);
//! 3. every refusal is a code §4.7 lists for that request ("errors,
//!    request by request"), or `FORBIDDEN` where the role table says no.
//!    Stricter than the document: `INTERNAL`, `UNAVAILABLE` and
//!    `DEVICE_REVOKED` (for a device that is not revoked), which any
//!    request may get, fail the test: nothing here should cause them;
//! 4. a connection that got an error still answers its next request
//!    (also with two requests in flight at once), except where the
//!    document says the error closes it (a refused set-up,
//!    `DEVICE_REVOKED`), and then it is closed with that code.
//!
//! The generator is an exhaustive `match` over [`RequestKind`] without a
//! wildcard arm, and the test checks that [`RequestKind::ALL`] names every
//! field of the `.proto` file's `Request` oneof: a request kind added
//! without being covered here fails to compile or fails this test.
//!
//! Each actor draws its requests from the seed (a small SplitMix64, no
//! crate): `HOTLINE_PROPTEST_SEED=N` replays a run, whose seed is printed
//! first and named in every failure; `HOTLINE_PROPTEST_CASES=N` sets how
//! many requests are sent (default 2,500: about 5 s of a debug build).
//! The replay is close rather than exact: the actors run at once, so
//! which ids the test has learnt when one is drawn depends on timing,
//! and the server draws alert ids of its own.
//!
//! Four things are held back so that the run stays short and the
//! probes stay meaningful, each of them tested elsewhere: the per-
//! connection rate limit is raised (`RATE_LIMITED` is still an accepted
//! answer), wrong check-in codes stay under the five that slow a device
//! down (`tests/tests/e2e/duress.rs`), the admin never revokes the
//! devices that make requests (it revokes spare devices, itself while it
//! is the last admin, the spares, the revoked device and unknown ids),
//! and no second
//! admin is enrolled (so that the last admin stays the last).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hotline_client::connection::{self, Session};
use hotline_proto::alert::{CloseReason, Priority, Push};
use hotline_proto::auth::{self, ChannelBinding, Nonce};
use hotline_proto::e2e::content::{Category, Message};
use hotline_proto::e2e::envelope::{self, Content, Recipient, SignedEnvelope};
use hotline_proto::e2e::org::OrgKeyPair;
use hotline_proto::e2e::prekey::{Prekey, PrekeyKind, SignedPrekey};
use hotline_proto::e2e::roster::{Roster, RosterEntry, SignedRoster};
use hotline_proto::e2e::suite::{DeterministicRandomness, EncryptionKeyPair};
use hotline_proto::frame::{self, HEADER_LEN, MAX_FRAME_LEN, MAX_SETUP_FRAME_LEN};
use hotline_proto::message::{
    MAX_IDS_PER_REQUEST, MAX_INBOX_BATCH, MAX_INVITE_TTL_SECS, MAX_PREKEYS_PER_REQUEST, Request,
    RequestKind, Response, SetupRequest, decode_setup_response,
};
use hotline_proto::{DeviceId, ErrorCode, IdentityKeyPair, InviteToken, Role, Signature};
use hotline_server::requests::protocol_doc::{self, Column, DocumentedErrors};
use hotline_tests::TestServer;

const PROTOCOL_DOC: &str = include_str!("../../../docs/protocol.md");
const PROTO_FILE: &str = include_str!("../../../proto/proto/hotline/v1/hotline.proto");

/// Requests per actor between two probes of the server's health.
const PER_BATCH: usize = 12;
/// Requests sent in all, unless `HOTLINE_PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: usize = 2500;
/// The largest `SignedEnvelope.body` the server accepts (§4.8).
const MAX_ENVELOPE_BODY: usize = 98_176;
/// Longest the test waits for any one answer or push.
const WAIT: Duration = Duration::from_secs(15);

/// SplitMix64: small, deterministic, good enough to draw test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below a usize")
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())].clone()
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.next() as u8;
        }
        out
    }

    fn vec(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A number around the bounds `0..=max`: 0, 1, the bound, one past
    /// it, the largest u64, or anything.
    fn edge(&mut self, max: u64) -> u64 {
        match self.below(7) {
            0 => 0,
            1 => 1,
            2 => max,
            3 => max.saturating_add(1),
            4 => u64::MAX,
            5 => self.next() % max.saturating_add(2),
            _ => self.next(),
        }
    }

    /// A length around the bounds `0..=max`, mostly short.
    fn len(&mut self, max: usize) -> usize {
        match self.below(6) {
            0 => 0,
            1 => 1,
            2 => max,
            3 => max + 1,
            _ => self.below(max.min(8) + 1),
        }
    }

    /// Random text of exactly `len` bytes: letters, digits, spaces,
    /// non-ASCII.
    fn text(&mut self, len: usize) -> Vec<u8> {
        let alphabet = ["a", "Z", "7", " ", "é", "ñ", "\n", "ü", "—"];
        let mut out = String::with_capacity(len);
        while out.len() < len {
            let next = self.pick(&alphabet);
            out.push_str(if out.len() + next.len() <= len {
                next
            } else {
                "a"
            });
        }
        out.into_bytes()
    }
}

/// Who sends a request: a column of the role table, a revoked device, or
/// a connection that has not finished its set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Actor {
    Admin,
    Officer,
    Coordinator,
    Defender,
    Panic,
    /// An officer the admin may revoke at any moment, while it works.
    SpareOfficer,
    /// A defender the admin may revoke at any moment, while it works.
    SpareDefender,
    Revoked,
    Unauthenticated,
}

impl Actor {
    const ALL: [Actor; 9] = [
        Actor::Admin,
        Actor::Officer,
        Actor::Coordinator,
        Actor::Defender,
        Actor::Panic,
        Actor::SpareOfficer,
        Actor::SpareDefender,
        Actor::Revoked,
        Actor::Unauthenticated,
    ];
}

/// What the test has learnt of the server's state, to draw ids from and
/// to keep its own requests well-formed.
struct World {
    /// Every device id the test knows of (enrolled, revoked).
    devices: Vec<DeviceId>,
    /// Staff devices with their keys, for roster entries.
    staff: Vec<RosterEntry>,
    /// Devices the admin may revoke (see the module comment).
    revocable: Vec<DeviceId>,
    /// Devices a revocation was sent for (it may be in flight).
    revoke_sent: Vec<DeviceId>,
    /// Devices whose revocation the admin has been answered.
    revoked: Vec<DeviceId>,
    /// Active admins besides the acting one (enrolled during the run).
    other_admins: usize,
    /// Alert ids seen in answers.
    alerts: Vec<u64>,
    /// Inbox and sent ids seen in answers.
    ids: Vec<u64>,
    /// Invites made by the server, used or not.
    tokens: Vec<Token>,
    /// The newest stored roster: version and SHA-256 of its body.
    roster: (u64, [u8; 32]),
    /// Each defender device's check-ins, as far as the test set them.
    checkins: BTreeMap<DeviceId, Checkins>,
    /// Case ids seen accepted (opened by staff, asked for by defenders).
    cases: Vec<[u8; 16]>,
}

/// A defender device's check-ins as the test set them.
struct Checkins {
    /// The tags (normal, duress) while a schedule is set.
    schedule: Option<([u8; 32], [u8; 32])>,
    /// Wrong check-in codes it may still send without being slowed down
    /// (fewer than five in an hour).
    wrong_codes_left: u32,
}

impl Default for Checkins {
    fn default() -> Checkins {
        Checkins {
            schedule: None,
            wrong_codes_left: 4,
        }
    }
}

/// An invite the server made, as the test knows it.
#[derive(Clone)]
struct Token {
    token: InviteToken,
    role: Role,
    expires_at: u64,
    used: bool,
}

/// What a set-up must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Refused,
    Welcomed(Column),
    /// An invite that expires about now.
    Either(Column),
}

/// A device the test holds the keys of.
struct Keys {
    identity: IdentityKeyPair,
    panic: Option<IdentityKeyPair>,
}

/// The acting devices and what the test checks against.
struct Run {
    server: TestServer,
    roles: BTreeMap<String, Vec<Column>>,
    errors: BTreeMap<String, DocumentedErrors>,
    admin: (Keys, Session),
    officer: (Keys, Session),
    coordinator: (Keys, Session),
    defender: (Keys, Session),
    panic: Session,
    spare_officer: (Keys, Session),
    spare_defender: (Keys, Session),
    revoked: (Keys, Session),
    root: OrgKeyPair,
    world: Mutex<World>,
    /// (actor, kind) pairs sent, for the coverage check.
    sent: Mutex<BTreeMap<(Actor, &'static str), usize>>,
    /// Held around a check-in or a schedule change of the defender's
    /// device (its identity and panic sessions, and set-ups as it), so
    /// that no check-in is sent with the tags of a schedule being
    /// replaced: each such check-in would count as a wrong code.
    checkins: tokio::sync::Mutex<()>,
    /// (actor, outcome) counts, printed at the end: what the run reached.
    outcomes: Mutex<BTreeMap<(Actor, String), usize>>,
    seed: u64,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

fn seed_and_cases() -> (u64, usize) {
    let seed = match std::env::var("HOTLINE_PROPTEST_SEED") {
        Ok(s) => s.trim().parse().expect("HOTLINE_PROPTEST_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    let cases = match std::env::var("HOTLINE_PROPTEST_CASES") {
        Ok(s) => s
            .trim()
            .parse()
            .expect("HOTLINE_PROPTEST_CASES is a number"),
        Err(_) => DEFAULT_CASES,
    };
    (seed, cases)
}

/// The request kinds the `.proto` file's `Request` oneof lists, by field
/// name, in field order.
fn proto_request_kinds() -> Vec<String> {
    let message = PROTO_FILE
        .split("\nmessage Request {")
        .nth(1)
        .expect("the .proto file has message Request");
    let oneof = message
        .split("oneof kind {")
        .nth(1)
        .expect("Request has a oneof kind");
    oneof
        .lines()
        .take_while(|l| !l.trim_start().starts_with('}'))
        .filter_map(|l| {
            let l = l.split("//").next().unwrap_or("").trim();
            let (left, _) = l.split_once('=')?;
            left.split_whitespace().nth(1).map(str::to_owned)
        })
        .collect()
}

impl Run {
    /// Devices of every role, a roster, a check-in schedule, a revoked
    /// device, and the two probes' devices.
    async fn start(seed: u64) -> (Run, Probe) {
        let server = TestServer::start_with(|c| {
            c.limits.request_burst = 100_000;
            c.limits.requests_per_second = 100_000;
            c.escalation_tick_ms = 200;
            // Escalation steps every second, so that the escalation tick
            // pages backup officers, coordinators and everyone, and
            // exhausts its rounds, while the requests go on.
            for policy in [
                &mut c.escalation.immediate,
                &mut c.escalation.urgent,
                &mut c.escalation.routine,
            ] {
                for step in &mut policy.steps {
                    step.wait_secs = 1;
                }
            }
        })
        .await;
        let roles = protocol_doc::role_table(PROTOCOL_DOC).expect("the role table reads");
        let errors = protocol_doc::errors_per_request(PROTOCOL_DOC).expect("§4.7 reads");
        let mut rng = Rng(seed ^ 0x5eed);

        let enroll = |role: Role, with_panic: bool| {
            let server = &server;
            async move {
                let invite = server.invite(role).await;
                let (identity, _) = IdentityKeyPair::generate().expect("randomness");
                let panic = with_panic.then(|| IdentityKeyPair::generate().expect("randomness").0);
                let session = connection::enroll_with_panic_key(&invite, &identity, panic.as_ref())
                    .await
                    .expect("enrolls");
                (Keys { identity, panic }, session)
            }
        };
        let admin = enroll(Role::Admin, false).await;
        let officer = enroll(Role::Officer, false).await;
        let coordinator = enroll(Role::Coordinator, false).await;
        let defender = enroll(Role::Defender, true).await;
        let revoked = enroll(Role::Defender, true).await;
        let probe_officer = enroll(Role::Officer, false).await;
        let probe_defender = enroll(Role::Defender, false).await;
        let spare_officer = enroll(Role::Officer, false).await;
        let spare_defender = enroll(Role::Defender, false).await;
        let mut spares = Vec::new();
        for role in [Role::Officer, Role::Defender, Role::Coordinator] {
            spares.push((role, enroll(role, false).await.0));
        }
        let panic = connection::authenticate_panic(
            &server.info(),
            defender.0.identity.device_id(),
            defender.0.panic.as_ref().expect("a panic key"),
        )
        .await
        .expect("panic session");

        // A roster listing the staff, so that pages follow a roster as in
        // production.
        let root = OrgKeyPair::from_seed(&rng.bytes());
        let entry = |keys: &Keys, role| RosterEntry {
            device_id: keys.identity.device_id(),
            role,
            identity_key: keys.identity.public_key(),
            valid_from: 0,
            valid_until: u64::MAX,
        };
        let mut staff = vec![
            entry(&admin.0, Role::Admin),
            entry(&officer.0, Role::Officer),
            entry(&coordinator.0, Role::Coordinator),
            entry(&probe_officer.0, Role::Officer),
        ];
        staff.push(entry(&spare_officer.0, Role::Officer));
        for (role, keys) in &spares {
            if role.is_staff() {
                staff.push(entry(keys, *role));
            }
        }
        let roster = Roster {
            version: 1,
            issued_at: hotline_server::unix_now(),
            expires_at: hotline_server::unix_now() + 30 * 24 * 3600,
            previous_hash: [0; 32],
            entries: staff.clone(),
        }
        .sign(&root);
        admin.1.put_roster(roster.clone()).await.expect("roster");

        // The defender has a schedule; the probe officer is on duty.
        let (code, duress) = (rng.bytes(), rng.bytes());
        defender
            .1
            .request(&Request::SetCheckin {
                interval_secs: 24 * 3600,
                grace_secs: 3600,
                code_digest: code,
                duress_digest: duress,
            })
            .await
            .expect("schedule set");
        probe_officer.1.set_duty(true).await.expect("on duty");

        admin
            .1
            .revoke(revoked.0.identity.device_id())
            .await
            .expect("revoked");

        let mut devices: Vec<DeviceId> = [
            &admin.0,
            &officer.0,
            &coordinator.0,
            &defender.0,
            &revoked.0,
            &probe_officer.0,
            &probe_defender.0,
        ]
        .iter()
        .map(|k| k.identity.device_id())
        .collect();
        let mut revocable = vec![revoked.0.identity.device_id()];
        for keys in spares
            .iter()
            .map(|(_, k)| k)
            .chain([&spare_officer.0, &spare_defender.0])
        {
            devices.push(keys.identity.device_id());
            revocable.push(keys.identity.device_id());
        }
        let world = World {
            devices,
            staff,
            revocable,
            revoke_sent: Vec::new(),
            revoked: Vec::new(),
            other_admins: 0,
            alerts: Vec::new(),
            ids: Vec::new(),
            tokens: Vec::new(),
            roster: (1, sha256(&roster.body)),
            cases: Vec::new(),
            checkins: [(
                defender.0.identity.device_id(),
                Checkins {
                    schedule: Some((code, duress)),
                    wrong_codes_left: 4,
                },
            )]
            .into(),
        };
        let run = Run {
            server,
            roles,
            errors,
            admin,
            officer,
            coordinator,
            defender,
            panic,
            spare_officer,
            spare_defender,
            revoked,
            root,
            world: Mutex::new(world),
            sent: Mutex::new(BTreeMap::new()),
            outcomes: Mutex::new(BTreeMap::new()),
            checkins: tokio::sync::Mutex::new(()),
            seed,
        };
        let probe = Probe {
            officer: probe_officer.1,
            defender: probe_defender.1,
            keys: (probe_officer.0.identity, probe_defender.0.identity),
        };
        (run, probe)
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().expect("not poisoned")
    }

    /// The keys a session actor signs with, and its device id.
    fn keys(&self, actor: Actor) -> (&IdentityKeyPair, DeviceId) {
        let keys = match actor {
            Actor::Admin => &self.admin.0,
            Actor::Officer => &self.officer.0,
            Actor::Coordinator => &self.coordinator.0,
            Actor::Defender | Actor::Unauthenticated => &self.defender.0,
            Actor::Panic => {
                let panic = self.defender.0.panic.as_ref().expect("a panic key");
                return (panic, self.defender.0.identity.device_id());
            }
            Actor::SpareOfficer => &self.spare_officer.0,
            Actor::SpareDefender => &self.spare_defender.0,
            Actor::Revoked => &self.revoked.0,
        };
        (&keys.identity, keys.identity.device_id())
    }

    /// A device id: one the test knows (mostly) or an unknown one.
    fn device_id(&self, rng: &mut Rng) -> DeviceId {
        if rng.one_in(4) {
            DeviceId::from_bytes(rng.bytes())
        } else {
            let w = self.world();
            rng.pick(&w.devices)
        }
    }

    /// An alert id: one seen (mostly), an edge, or anything.
    fn alert_id(&self, rng: &mut Rng) -> u64 {
        let seen = self.world().alerts.clone();
        if !seen.is_empty() && rng.below(3) > 0 {
            return rng.pick(&seen);
        }
        rng.edge(9_999_999)
    }

    /// An inbox or sent id: one seen, or around the edges.
    /// A case id: one seen accepted, or a random one.
    fn some_case(&self, rng: &mut Rng) -> hotline_proto::case::CaseId {
        let seen = self.world().cases.clone();
        if !seen.is_empty() && rng.one_in(2) {
            return hotline_proto::case::CaseId::from_bytes(rng.pick(&seen));
        }
        hotline_proto::case::CaseId::from_bytes(rng.bytes())
    }

    /// A case event from `actor`: a real one, sealed and signed by its
    /// key (opening a new case, or closing or noting a known one, at
    /// epoch 1 or another), or bytes that are no event.
    /// The actor's erasure signature of `step` (section 9.7), or (one in
    /// three) one that does not verify.
    fn erasure_signature(
        &self,
        actor: Actor,
        case: hotline_proto::case::CaseId,
        step: hotline_proto::case::erasure::ErasureStep,
        rng: &mut Rng,
    ) -> hotline_proto::Signature {
        if rng.one_in(3) {
            return hotline_proto::Signature::from_bytes([0; 64]);
        }
        let (key, _) = self.keys(actor);
        // Over a closing this model does not track: a signature that
        // verifies only by chance, like the forged one.
        let closing = hotline_proto::case::erasure::Closing {
            author: key.device_id(),
            event_id: [0; 16],
        };
        hotline_proto::case::erasure::sign_erasure(key, &case, step, &closing)
    }

    fn case_event(&self, actor: Actor, rng: &mut Rng) -> hotline_proto::case::SignedCaseEvent {
        use hotline_proto::case::seal::{CaseEventContent, CaseKey, EventDraft, seal};
        use hotline_proto::case::{CaseControl, CaseState};
        let (key, author) = self.keys(actor);
        if rng.one_in(3) {
            let body: [u8; 32] = rng.bytes();
            return hotline_proto::case::SignedCaseEvent {
                author,
                body: body.to_vec(),
                signature: hotline_proto::Signature::from_bytes([0; 64]),
            };
        }
        let state = match rng.below(4) {
            0 => None,
            1 => Some(CaseState::Closed),
            _ => Some(CaseState::Open),
        };
        let draft = EventDraft {
            case_id: self.some_case(rng),
            event_id: rng.bytes(),
            roster_version: 1,
            epoch: if rng.one_in(5) { 2 } else { 1 },
            control: CaseControl {
                state,
                ..CaseControl::default()
            },
        };
        // One case key for the whole run: every staff device holds it.
        let case_key = CaseKey::from_bytes([0x42; 32]);
        seal(
            key,
            &case_key,
            &draft,
            &CaseEventContent {
                note: "a note".into(),
                ..CaseEventContent::default()
            },
            &mut hotline_proto::e2e::suite::SystemRandomness,
        )
        .expect("sealed")
    }

    fn some_id(&self, rng: &mut Rng) -> u64 {
        let seen = self.world().ids.clone();
        if !seen.is_empty() && rng.one_in(2) {
            return rng.pick(&seen);
        }
        rng.edge(1000)
    }

    /// An envelope from `actor`: properly sealed to random recipients, or
    /// with a wrong signature, another sender, or a body that is not an
    /// envelope (of any length up to just over the limit).
    fn envelope(&self, actor: Actor, rng: &mut Rng) -> SignedEnvelope {
        let (signer, me) = self.keys(actor);
        let count = match rng.below(8) {
            0 => 1 + rng.below(64),
            1 => 1,
            _ => 1 + rng.below(4),
        };
        let recipients: Vec<Recipient> = (0..count)
            .map(|_| Recipient {
                device_id: self.device_id(rng),
                prekey_id: rng.next() as u32,
                key: EncryptionKeyPair::derive(&rng.bytes::<32>()).public_key(),
            })
            .collect();
        let text_len = match rng.below(10) {
            0 => envelope::MAX_BODY_LEN,
            1 => 0,
            _ => rng.below(300),
        };
        let content = Content {
            message_id: rng.bytes(),
            counter: rng.next(),
            timestamp: rng.edge(hotline_server::unix_now()),
            message: {
                let text = String::from_utf8(rng.text(text_len)).expect("the alphabet is UTF-8");
                let language = rng.pick(&["", "en", "fr-FR", "es"]);
                if rng.one_in(2) {
                    let category = rng.pick(&Category::ALL);
                    let priority =
                        rng.pick(&[Priority::Immediate, Priority::Urgent, Priority::Routine]);
                    Message::sos(category, priority, &text, language)
                } else {
                    Message::chat(&text, language)
                }
            },
            thread: if rng.one_in(2) { 0 } else { self.alert_id(rng) },
            sender_label: String::new(),
        };
        let roster_version = rng.edge(self.world().roster.0);
        let mut randomness = DeterministicRandomness::new(&rng.bytes::<16>());
        let sealed = |signer: &IdentityKeyPair, randomness: &mut DeterministicRandomness| {
            envelope::seal_signed_by(
                me,
                signer,
                roster_version,
                &recipients,
                &content,
                randomness,
            )
            .expect("seals")
        };
        let sign = |body: &[u8]| {
            let mut m = b"hotline/1 envelope\0".to_vec();
            m.extend_from_slice(body);
            signer.sign(&m)
        };
        match rng.below(8) {
            // Signed by another key.
            0 => {
                let other = IdentityKeyPair::from_seed(&rng.bytes());
                let mut e = sealed(&other, &mut randomness);
                e.sender = me;
                e
            }
            // Naming another sender.
            1 => {
                let mut e = sealed(signer, &mut randomness);
                e.sender = self.device_id(rng);
                e
            }
            // A signature with a bit flipped.
            2 => {
                let mut e = sealed(signer, &mut randomness);
                let mut bytes = *e.signature.as_bytes();
                bytes[rng.below(64)] ^= 1 << rng.below(8);
                e.signature = Signature::from_bytes(bytes);
                e
            }
            // Validly signed bytes that are not an envelope body.
            3 => {
                let len = match rng.below(4) {
                    0 => MAX_ENVELOPE_BODY + 1,
                    1 => MAX_ENVELOPE_BODY,
                    _ => 1 + rng.below(200),
                };
                let body = rng.vec(len);
                SignedEnvelope {
                    sender: me,
                    signature: sign(&body),
                    body,
                }
            }
            _ => sealed(signer, &mut randomness),
        }
    }

    /// Prekeys to publish: this device's, validly signed (mostly), or
    /// another device's, expired, or badly signed.
    fn prekeys(&self, actor: Actor, rng: &mut Rng) -> Vec<SignedPrekey> {
        let (signer, me) = self.keys(actor);
        let count = rng.len(MAX_PREKEYS_PER_REQUEST);
        let now = hotline_server::unix_now();
        (0..count)
            .map(|_| {
                let prekey = Prekey {
                    device_id: if rng.one_in(10) {
                        self.device_id(rng)
                    } else {
                        me
                    },
                    kind: if rng.one_in(3) {
                        PrekeyKind::LastResort
                    } else {
                        PrekeyKind::OneTime
                    },
                    id: rng.edge(u64::from(u32::MAX)) as u32,
                    public_key: EncryptionKeyPair::derive(&rng.bytes::<32>()).public_key(),
                    created_at: now,
                    expires_at: match rng.below(6) {
                        0 => rng.edge(now),
                        1 => u64::MAX,
                        _ => now + 30 * 24 * 3600,
                    },
                };
                if rng.one_in(10) {
                    prekey.sign(&IdentityKeyPair::from_seed(&rng.bytes()))
                } else {
                    prekey.sign(signer)
                }
            })
            .collect()
    }

    /// A roster: chained to the stored one or not, of any version, its
    /// entries the staff (always the probe officer, so that pages still
    /// reach it) and now and then a defender, a wrong id or a repeat.
    fn roster(&self, rng: &mut Rng) -> SignedRoster {
        let (stored_version, stored_hash, staff, devices) = {
            let w = self.world();
            (w.roster.0, w.roster.1, w.staff.clone(), w.devices.clone())
        };
        // The probe officer is the fourth staff entry (see `start`).
        let mut entries = vec![staff[3].clone()];
        for e in &staff {
            if e.device_id != staff[3].device_id && rng.below(3) > 0 {
                entries.push(e.clone());
            }
        }
        match rng.below(12) {
            0 => entries.push(RosterEntry {
                role: Role::Defender,
                ..staff[0].clone()
            }),
            1 => entries.push(entries[0].clone()),
            2 => entries.push(RosterEntry {
                device_id: rng.pick(&devices),
                ..staff[1].clone()
            }),
            _ => {}
        }
        let now = hotline_server::unix_now();
        let version = match rng.below(8) {
            0 => rng.edge(stored_version),
            1 => stored_version,
            2 if rng.one_in(4) => u64::MAX,
            _ => stored_version.saturating_add(1 + rng.below(3) as u64),
        };
        let roster = Roster {
            version,
            issued_at: rng.edge(now),
            expires_at: if rng.one_in(5) {
                rng.edge(now)
            } else {
                now + 3600
            },
            previous_hash: match rng.below(6) {
                0 => [0; 32],
                1 => rng.bytes(),
                _ => stored_hash,
            },
            entries,
        };
        if rng.one_in(8) {
            // The server cannot check the root's signature: any key.
            roster.sign(&OrgKeyPair::from_seed(&rng.bytes()))
        } else {
            roster.sign(&self.root)
        }
    }

    /// A check-in tag: the normal or duress code while a schedule is set,
    /// or a wrong one while the budget lasts.
    fn checkin_tag(&self, actor: Actor, rng: &mut Rng) -> [u8; 32] {
        let device = self.keys(actor).1;
        let mut w = self.world();
        let w = w.checkins.entry(device).or_default();
        let wrong = w.wrong_codes_left > 0 && (w.schedule.is_none() || rng.one_in(3));
        match w.schedule {
            Some((code, duress)) if !wrong => {
                if rng.one_in(3) {
                    duress
                } else {
                    code
                }
            }
            _ => {
                w.wrong_codes_left = w.wrong_codes_left.saturating_sub(1);
                rng.bytes()
            }
        }
    }

    /// For a check-in or a schedule change, waits for the defender's
    /// device to be free of others (see [`Run::checkins`]); for a check-in
    /// with no schedule set and no wrong code left to spend, sets a
    /// schedule first (every check-in without one counts as wrong).
    async fn checkin_turn(
        &self,
        kind: RequestKind,
        actor: Actor,
        rng: &mut Rng,
    ) -> Result<Option<tokio::sync::MutexGuard<'_, ()>>, String> {
        if !matches!(kind, RequestKind::Checkin | RequestKind::SetCheckin) {
            return Ok(None);
        }
        let turn = self.checkins.lock().await;
        let device = self.keys(actor).1;
        // The session of the defender device whose check-ins these are
        // (staff check-ins are refused by the role table: nothing to set).
        let session = match actor {
            Actor::SpareDefender => &self.spare_defender.1,
            Actor::Defender | Actor::Panic | Actor::Unauthenticated => &self.defender.1,
            Actor::Admin
            | Actor::Officer
            | Actor::Coordinator
            | Actor::SpareOfficer
            | Actor::Revoked => return Ok(Some(turn)),
        };
        let stopped = {
            let mut w = self.world();
            let revoked = w.revoke_sent.contains(&device);
            let c = w.checkins.entry(device).or_default();
            c.schedule.is_none() && c.wrong_codes_left == 0 && !revoked
        };
        if kind == RequestKind::Checkin && stopped {
            let req = Request::SetCheckin {
                interval_secs: 3600,
                grace_secs: 60,
                code_digest: rng.bytes(),
                duress_digest: rng.bytes(),
            };
            match session.request(&req).await {
                Ok(response @ Response::Done) => {
                    self.learn(device, &req, &response);
                }
                // Revoked meanwhile: its check-in will be refused anyway.
                _ if self.world().revoke_sent.contains(&device) => {}
                other => {
                    return Err(format!(
                        "the defender could not set its schedule: {other:?}"
                    ));
                }
            }
        }
        Ok(Some(turn))
    }

    /// A random well-formed request of `kind` from `actor`. One arm per
    /// kind, no wildcard: a new kind does not compile until it is drawn
    /// here.
    fn request(&self, kind: RequestKind, actor: Actor, rng: &mut Rng) -> Request {
        match kind {
            RequestKind::Status => Request::Status,
            RequestKind::CreateInvite => Request::CreateInvite {
                role: rng.pick(&Role::ALL),
                ttl_seconds: rng.edge(MAX_INVITE_TTL_SECS),
            },
            RequestKind::ListDevices => Request::ListDevices,
            RequestKind::RevokeDevice => {
                let w = self.world();
                let me = self.keys(Actor::Admin).1;
                let mut targets = w.revocable.clone();
                if w.other_admins == 0 {
                    targets.push(me);
                }
                drop(w);
                let device_id = if rng.one_in(3) {
                    DeviceId::from_bytes(rng.bytes())
                } else {
                    rng.pick(&targets)
                };
                // Only the admin's are carried out (another device's
                // is refused, or never answered).
                if actor == Actor::Admin {
                    self.world().revoke_sent.push(device_id);
                }
                Request::RevokeDevice { device_id }
            }
            RequestKind::PutRoster => Request::PutRoster(self.roster(rng)),
            RequestKind::GetRoster => Request::GetRoster { version: 0 },
            RequestKind::PublishPrekeys => Request::PublishPrekeys(self.prekeys(actor, rng)),
            RequestKind::FetchPrekeys => {
                let count = match rng.below(6) {
                    0 => 0,
                    1 => envelope::MAX_RECIPIENTS,
                    2 => envelope::MAX_RECIPIENTS + 1,
                    _ => 1 + rng.below(4),
                };
                Request::FetchPrekeys((0..count).map(|_| self.device_id(rng)).collect())
            }
            RequestKind::SendEnvelope => {
                let envelope = self.envelope(actor, rng);
                match rng.below(3) {
                    0 => Request::SendInThread {
                        envelope,
                        alert_id: self.alert_id(rng).max(1),
                    },
                    _ => Request::SendEnvelope(envelope),
                }
            }
            RequestKind::FetchInbox => Request::FetchInbox {
                after: self.some_id(rng),
                limit: rng.edge(u64::from(MAX_INBOX_BATCH)) as u32,
            },
            RequestKind::AckInbox => Request::AckInbox {
                up_to: self.some_id(rng),
            },
            RequestKind::RaiseAlert => Request::RaiseAlert {
                priority: rng.pick(&[Priority::Immediate, Priority::Urgent, Priority::Routine]),
                envelope: (!rng.one_in(3)).then(|| self.envelope(actor, rng)),
                join_alert: 0,
            },
            RequestKind::ListAlerts => Request::ListAlerts {
                open_only: rng.one_in(2),
            },
            RequestKind::ClaimAlert => Request::ClaimAlert {
                alert_id: self.alert_id(rng),
            },
            RequestKind::CloseAlert => Request::CloseAlert {
                alert_id: self.alert_id(rng),
                reason: rng.pick(&[
                    CloseReason::Resolved,
                    CloseReason::Cancelled,
                    CloseReason::FalseAlarm,
                ]),
            },
            RequestKind::SetDuty => Request::SetDuty {
                on_duty: rng.one_in(2),
            },
            RequestKind::AlertDelivered => Request::AlertDelivered {
                alert_id: self.alert_id(rng),
            },
            RequestKind::SetCheckin => {
                let code = rng.bytes();
                Request::SetCheckin {
                    interval_secs: rng.edge(30 * 24 * 3600),
                    grace_secs: rng.edge(30 * 24 * 3600),
                    code_digest: code,
                    duress_digest: if rng.one_in(6) { code } else { rng.bytes() },
                }
            }
            RequestKind::Checkin => Request::Checkin {
                code_digest: self.checkin_tag(actor, rng),
            },
            RequestKind::MarkRead => Request::MarkRead(
                (0..rng.len(MAX_IDS_PER_REQUEST))
                    .map(|_| self.some_id(rng))
                    .collect(),
            ),
            RequestKind::Delivery => Request::Delivery(
                (0..rng.len(MAX_IDS_PER_REQUEST))
                    .map(|_| self.some_id(rng))
                    .collect(),
            ),
            RequestKind::DutyStatus => Request::DutyStatus,
            RequestKind::RegisterPanicKey => {
                Request::RegisterPanicKey(match (rng.one_in(2), &self.defender.0.panic) {
                    (true, Some(panic)) => panic.public_key(),
                    _ => IdentityKeyPair::from_seed(&rng.bytes()).public_key(),
                })
            }
            RequestKind::AppendCaseEvent => Request::AppendCaseEvent(self.case_event(actor, rng)),
            RequestKind::SyncCases => Request::SyncCases {
                after: self.some_id(rng),
            },
            RequestKind::RequestCase => Request::RequestCase(self.envelope(actor, rng)),
            RequestKind::RequestCaseErasure => {
                let case = self.some_case(rng);
                let step = hotline_proto::case::erasure::ErasureStep::Request;
                Request::RequestCaseErasure(case, self.erasure_signature(actor, case, step, rng))
            }
            RequestKind::ConfirmCaseErasure => {
                let case = self.some_case(rng);
                let step = hotline_proto::case::erasure::ErasureStep::Confirm(
                    hotline_proto::Signature::from_bytes([0; 64]),
                );
                Request::ConfirmCaseErasure(case, self.erasure_signature(actor, case, step, rng))
            }
        }
    }

    /// Whether the role table lets `column` make a request of `kind`.
    fn table_allows(&self, column: Column, kind: RequestKind) -> bool {
        self.roles
            .get(kind.name())
            .unwrap_or_else(|| panic!("§4.2 has no row for {kind}"))
            .contains(&column)
    }

    /// Checks one answer to `req` sent by a device of `column`: a success
    /// the table allows, of the right kind; a refusal §4.7 documents.
    fn check(&self, column: Column, req: &Request, response: &Response) -> Result<(), String> {
        let kind = req.kind();
        let yes = self.table_allows(column, kind);
        match response {
            Response::Error(e) => {
                let documented = &self.errors[kind.name()];
                let allowed = if yes {
                    documented.codes.contains(&e.code)
                } else {
                    e.code == ErrorCode::Forbidden
                        || (documented.malformed && e.code == ErrorCode::Malformed)
                };
                // Step 1 may refuse anything (the test raises the limit).
                if allowed || e.code == ErrorCode::RateLimited {
                    Ok(())
                } else {
                    Err(format!(
                        "{column:?} {kind}: refused with {}, which docs/protocol.md does not list for it ({}): {}",
                        e.code,
                        e.detail,
                        short(req)
                    ))
                }
            }
            ok if !yes => Err(format!(
                "{column:?} {kind}: the role table says no, the server answered {ok:?}"
            )),
            ok if !answers(kind, ok) => Err(format!(
                "{column:?} {kind}: answered with the wrong kind of response {ok:?}"
            )),
            _ => Ok(()),
        }
    }

    /// Learns ids and state from a successful answer.
    fn learn(&self, device: DeviceId, req: &Request, response: &Response) {
        let mut w = self.world();
        match (req, response) {
            (_, Response::Alerts(alerts)) => w.alerts.extend(alerts.iter().map(|a| a.id)),
            (_, Response::InviteCreated { invite }) => w.tokens.push(Token {
                token: invite.token.clone(),
                role: invite.role,
                expires_at: invite.expires_at,
                used: false,
            }),
            (_, Response::EnvelopeAccepted { id, .. }) => w.ids.push(*id),
            (Request::AppendCaseEvent(e), Response::CaseEventAccepted { .. }) => {
                if let Ok(h) = e.header_unverified() {
                    w.cases.push(*h.case_id.as_bytes());
                }
            }
            (_, Response::CaseRequestAccepted { case_id, .. }) => {
                w.cases.push(*case_id.as_bytes());
            }
            (_, Response::Inbox(items)) => w.ids.extend(items.iter().map(|i| i.id)),
            (Request::PutRoster(roster), Response::Done) => {
                let version = roster.version_unverified().expect("it was accepted");
                w.roster = (version, sha256(&roster.body));
            }
            (
                Request::SetCheckin {
                    interval_secs,
                    code_digest,
                    duress_digest,
                    ..
                },
                Response::Done,
            ) => {
                w.checkins.entry(device).or_default().schedule =
                    (*interval_secs != 0).then_some((*code_digest, *duress_digest));
            }
            // Revoked staff leave the rosters the test signs (the probe
            // officer, fourth, is never revoked).
            (Request::RevokeDevice { device_id }, Response::DeviceRevoked { .. }) => {
                w.revoked.push(*device_id);
                if w.staff[3].device_id != *device_id {
                    w.staff.retain(|e| e.device_id != *device_id);
                }
            }
            _ => {}
        }
    }

    fn tally(&self, actor: Actor, kind: RequestKind, outcome: &str) {
        *self
            .outcomes
            .lock()
            .expect("not poisoned")
            .entry((actor, format!("{kind} {outcome}")))
            .or_default() += 1;
    }

    fn count(&self, actor: Actor, kind: RequestKind) {
        *self
            .sent
            .lock()
            .expect("not poisoned")
            .entry((actor, kind.name()))
            .or_default() += 1;
    }

    /// `n` requests of an authenticated actor, one after the other on its
    /// connection: each must be answered (an error closes nothing), and
    /// each answer must pass [`Run::check`].
    async fn session_actor(
        &self,
        actor: Actor,
        session: &Session,
        kinds: &[RequestKind],
        rng: &mut Rng,
    ) -> Result<(), String> {
        let column = match actor {
            Actor::Admin => Column::Role(Role::Admin),
            Actor::Officer => Column::Role(Role::Officer),
            Actor::Coordinator => Column::Role(Role::Coordinator),
            Actor::Defender => Column::Role(Role::Defender),
            Actor::Panic => Column::PanicKey,
            Actor::SpareOfficer => Column::Role(Role::Officer),
            Actor::SpareDefender => Column::Role(Role::Defender),
            Actor::Revoked | Actor::Unauthenticated => unreachable!("not a session actor"),
        };
        let mut previous: Option<String> = None;
        let checkin_kind =
            |k: RequestKind| matches!(k, RequestKind::Checkin | RequestKind::SetCheckin);
        let mut i = 0;
        while i < kinds.len() {
            // Now and then two requests at once, on two streams of the
            // connection (never two check-in requests: see `checkins`).
            let pair = i + 1 < kinds.len()
                && rng.one_in(4)
                && !(checkin_kind(kinds[i]) && checkin_kind(kinds[i + 1]));
            let group = &kinds[i..if pair { i + 2 } else { i + 1 }];
            i += group.len();
            let turn_kind = group
                .iter()
                .copied()
                .find(|k| checkin_kind(*k))
                .unwrap_or(group[0]);
            let _checkins = self.checkin_turn(turn_kind, actor, rng).await?;
            let me = session.device_id();
            let revoked_before = self.world().revoked.contains(&me);
            let requests: Vec<Request> = group
                .iter()
                .map(|&kind| {
                    self.count(actor, kind);
                    self.request(kind, actor, rng)
                })
                .collect();
            let answers = match requests.as_slice() {
                [one] => vec![tokio::time::timeout(WAIT, session.request(one)).await],
                [a, b] => {
                    let (a, b) = tokio::join!(
                        tokio::time::timeout(WAIT, session.request(a)),
                        tokio::time::timeout(WAIT, session.request(b)),
                    );
                    vec![a, b]
                }
                _ => unreachable!("one or two at once"),
            };
            for (req, answer) in requests.iter().zip(answers) {
                let kind = req.kind();
                // Revoked while it works: refused DEVICE_REVOKED, or its
                // connection closed with that code, once the admin's
                // revocation was sent; anything else once it was done is
                // a revoked device served.
                let revoke_sent = self.world().revoke_sent.contains(&me);
                let revoked_code = match &answer {
                    Ok(Ok(Response::Error(e))) => Some(e.code),
                    Ok(Err(e)) => e.code(),
                    _ => None,
                };
                if revoke_sent && revoked_code == Some(ErrorCode::DeviceRevoked) {
                    self.tally(actor, kind, "revoked: device_revoked");
                    continue;
                }
                if revoked_before {
                    return Err(format!(
                        "{actor:?}: revoked, yet {kind} was answered {:?}",
                        answer.map(|a| a.map(|r| answer_name(&r)))
                    ));
                }
                let response = match answer {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => {
                        return Err(format!(
                            "{actor:?}: the connection failed on {kind} ({e}) after {}",
                            previous.as_deref().unwrap_or("nothing")
                        ));
                    }
                    Err(_) => {
                        return Err(format!("{actor:?}: no answer to {kind} within {WAIT:?}"));
                    }
                };
                self.check(column, req, &response)?;
                shown_to_defender(column, session.device_id(), &response)?;
                consistent(column, session.device_id(), req, &response)?;
                self.learn(session.device_id(), req, &response);
                self.tally(actor, kind, &answer_name(&response));
                previous = Some(match &response {
                    Response::Error(e) => format!("{kind} refused with {}", e.code),
                    _ => format!("{kind} answered"),
                });
            }
        }
        Ok(())
    }

    /// The revoked device: its old connection (closed by the revocation)
    /// answers nothing, and a new one is refused `DEVICE_REVOKED` at
    /// set-up and closed, with the request sent behind the set-up left
    /// unanswered.
    async fn revoked_actor(&self, kinds: &[RequestKind], rng: &mut Rng) -> Result<(), String> {
        for &kind in kinds {
            let req = self.request(kind, Actor::Revoked, rng);
            self.count(Actor::Revoked, kind);
            if rng.one_in(2) {
                match tokio::time::timeout(WAIT, self.revoked.1.request(&req)).await {
                    Ok(Ok(Response::Error(e))) if e.code == ErrorCode::DeviceRevoked => {
                        self.tally(Actor::Revoked, kind, "old connection: device_revoked");
                    }
                    Ok(Ok(other)) => {
                        return Err(format!("a revoked device's {kind} was answered {other:?}"));
                    }
                    Ok(Err(e)) if e.code() == Some(ErrorCode::DeviceRevoked) => {
                        self.tally(
                            Actor::Revoked,
                            kind,
                            "old connection: closed device_revoked",
                        );
                    }
                    Ok(Err(e)) => {
                        return Err(format!(
                            "a revoked device's connection ended otherwise than DEVICE_REVOKED: {e}"
                        ));
                    }
                    Err(_) => return Err("a revoked device's request hung".into()),
                }
                continue;
            }
            // With its identity key, or its panic key.
            let keys = &self.revoked.0;
            let device_id = keys.identity.device_id();
            let panic = keys.panic.as_ref().filter(|_| rng.one_in(2));
            let outcome = self
                .raw_setup(
                    |nonce, binding| match panic {
                        Some(panic) => SetupRequest::PanicAuth {
                            device_id,
                            signature: panic
                                .sign(&auth::panic_auth_transcript(nonce, binding, &device_id)),
                        },
                        None => SetupRequest::Auth {
                            device_id,
                            signature: keys
                                .identity
                                .sign(&auth::device_auth_transcript(nonce, binding, &device_id)),
                        },
                    },
                    Some(&req),
                )
                .await?;
            match outcome.setup {
                Err(ErrorCode::DeviceRevoked) => {
                    let with = if panic.is_some() {
                        "panic key"
                    } else {
                        "identity"
                    };
                    self.tally(
                        Actor::Revoked,
                        kind,
                        &format!("set-up ({with}) refused device_revoked"),
                    );
                }
                other => return Err(format!("a revoked device's set-up: {other:?}")),
            }
            if let Some(Ok(answer)) = outcome.pipelined {
                return Err(format!(
                    "a revoked device's {kind} behind its refused set-up was answered {answer:?}"
                ));
            }
        }
        Ok(())
    }

    /// Connections still in set-up: each request is either sent as the
    /// set-up frame itself, or sent behind a random set-up (an enrolment
    /// with a real or unknown invite, an authentication with a good or bad
    /// signature, for a known or unknown device, with the identity or the
    /// panic key). A refused set-up closes the connection with its code
    /// and leaves the request unanswered; a set-up that succeeds makes the
    /// request one of the device it authenticated.
    async fn unauthenticated_actor(
        &self,
        kinds: &[RequestKind],
        rng: &mut Rng,
    ) -> Result<(), String> {
        let setup_errors = self.errors["set-up"].codes.clone();
        for &kind in kinds {
            let _checkins = self.checkin_turn(kind, Actor::Unauthenticated, rng).await?;
            let req = self.request(kind, Actor::Unauthenticated, rng);
            self.count(Actor::Unauthenticated, kind);
            // Whether this set-up should succeed, and as which column.
            let mut expect = Expect::Refused;
            let choice = rng.below(5);
            let outcome = match choice {
                // The request itself on the set-up stream.
                0 => {
                    let payload = req.encode();
                    self.raw_setup_bytes(payload, None).await?
                }
                // Authentication, the identity or the panic key.
                1 | 2 => {
                    let panic = choice == 2;
                    let random_key;
                    let (device_id, signer): (DeviceId, &IdentityKeyPair) = match rng.below(4) {
                        0 => {
                            random_key = IdentityKeyPair::from_seed(&rng.bytes());
                            (DeviceId::from_bytes(rng.bytes()), &random_key)
                        }
                        1 => {
                            random_key = IdentityKeyPair::from_seed(&rng.bytes());
                            (self.device_id(rng), &random_key)
                        }
                        _ => {
                            expect = Expect::Welcomed(if panic {
                                Column::PanicKey
                            } else {
                                Column::Role(Role::Defender)
                            });
                            let keys = &self.defender.0;
                            let signer = if panic {
                                keys.panic.as_ref().expect("a panic key")
                            } else {
                                &keys.identity
                            };
                            (keys.identity.device_id(), signer)
                        }
                    };
                    self.raw_setup(
                        |nonce, binding| {
                            if panic {
                                SetupRequest::PanicAuth {
                                    device_id,
                                    signature: signer.sign(&auth::panic_auth_transcript(
                                        nonce, binding, &device_id,
                                    )),
                                }
                            } else {
                                SetupRequest::Auth {
                                    device_id,
                                    signature: signer.sign(&auth::device_auth_transcript(
                                        nonce, binding, &device_id,
                                    )),
                                }
                            }
                        },
                        Some(&req),
                    )
                    .await?
                }
                // Enrolment with a server-made invite, a spent one or an
                // unknown token; a good or a bad signature; a panic key or
                // none.
                _ => {
                    let fresh_role = rng.pick(&Role::ALL);
                    let known = match rng.below(4) {
                        0 => None,
                        1 => {
                            let tokens = self.world().tokens.clone();
                            (!tokens.is_empty()).then(|| rng.pick(&tokens))
                        }
                        _ => {
                            let invite = self.server.invite(fresh_role).await;
                            let token = Token {
                                token: invite.token,
                                role: invite.role,
                                expires_at: invite.expires_at,
                                used: false,
                            };
                            self.world().tokens.push(token.clone());
                            Some(token)
                        }
                    };
                    let token = known
                        .as_ref()
                        .map_or_else(|| InviteToken::from_bytes(rng.bytes()), |t| t.token.clone());
                    // A new key, or one enrolled already (ALREADY_ENROLLED).
                    let fresh = IdentityKeyPair::from_seed(&rng.bytes());
                    let enrolled = rng.one_in(8);
                    let identity = if enrolled {
                        &self.officer.0.identity
                    } else {
                        &fresh
                    };
                    let panic = rng
                        .one_in(2)
                        .then(|| IdentityKeyPair::from_seed(&rng.bytes()).public_key());
                    // Never a second admin: the acting admin's attempts
                    // to revoke itself must stay those of the last admin.
                    let good_signature =
                        !rng.one_in(4) && known.as_ref().is_none_or(|t| t.role != Role::Admin);
                    if let Some(t) = &known
                        && !t.used
                        && !enrolled
                        && good_signature
                        && (panic.is_none() || t.role == Role::Defender)
                    {
                        let now = hotline_server::unix_now();
                        expect = if now + 2 < t.expires_at {
                            Expect::Welcomed(Column::Role(t.role))
                        } else if now > t.expires_at + 2 {
                            Expect::Refused
                        } else {
                            Expect::Either(Column::Role(t.role))
                        };
                    }
                    let identity_key = identity.public_key();
                    let outcome = self
                        .raw_setup(
                            |nonce, binding| {
                                let transcript = auth::enroll_transcript_with_panic_key(
                                    nonce,
                                    binding,
                                    &identity_key,
                                    &token,
                                    panic.as_ref(),
                                );
                                SetupRequest::Enroll {
                                    token: token.clone(),
                                    identity_key,
                                    signature: if good_signature {
                                        identity.sign(&transcript)
                                    } else {
                                        IdentityKeyPair::from_seed(&[7; 32]).sign(&transcript)
                                    },
                                    panic_key: panic,
                                }
                            },
                            Some(&req),
                        )
                        .await?;
                    if let Ok((welcome_role, _)) = &outcome.setup {
                        let mut w = self.world();
                        for t in &mut w.tokens {
                            if t.token == token {
                                t.used = true;
                            }
                        }
                        let id = identity.device_id();
                        w.devices.push(id);
                        w.revocable.push(id);
                        if *welcome_role == Role::Admin {
                            w.other_admins += 1;
                        }
                    }
                    outcome
                }
            };
            match (&outcome.setup, expect) {
                (Ok((role, panic)), Expect::Welcomed(column) | Expect::Either(column)) => {
                    let got = if *panic {
                        Column::PanicKey
                    } else {
                        Column::Role(*role)
                    };
                    if got != column {
                        return Err(format!("set-up welcomed {got:?}, expected {column:?}"));
                    }
                    match &outcome.pipelined {
                        Some(Ok(response)) => {
                            self.check(column, &req, response)?;
                            shown_to_defender(column, outcome.device, response)?;
                            consistent(column, outcome.device, &req, response)?;
                            self.tally(
                                Actor::Unauthenticated,
                                kind,
                                &format!("welcomed, then {}", answer_name(response)),
                            );
                            self.learn(outcome.device, &req, response);
                        }
                        Some(Err(e)) => {
                            return Err(format!(
                                "{kind} behind a set-up that succeeded was not answered: {e}"
                            ));
                        }
                        None => {}
                    }
                }
                (Ok(welcome), Expect::Refused) => {
                    return Err(format!(
                        "a set-up that should fail was welcomed: {welcome:?}"
                    ));
                }
                (Err(code), Expect::Welcomed(column)) => {
                    return Err(format!(
                        "a valid set-up as {column:?} was refused {code} (choice {choice})"
                    ));
                }
                (Err(code), Expect::Refused | Expect::Either(_)) => {
                    if !setup_errors.contains(code) {
                        return Err(format!(
                            "set-up refused with {code}, which §4.7 does not list for it"
                        ));
                    }
                    if let Some(Ok(answer)) = &outcome.pipelined {
                        return Err(format!(
                            "{kind} behind a refused set-up was answered {answer:?}"
                        ));
                    }
                    self.tally(
                        Actor::Unauthenticated,
                        kind,
                        &format!("set-up refused {code}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Opens a connection, signs the set-up `make` builds over its
    /// challenge, and sends it, followed at once by `pipelined`.
    async fn raw_setup(
        &self,
        make: impl FnOnce(&Nonce, &ChannelBinding) -> SetupRequest,
        pipelined: Option<&Request>,
    ) -> Result<SetupOutcome, String> {
        let conn = connection::connect_with_alpn(&self.server.info(), hotline_proto::ALPN)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (nonce, binding) = connection::challenge(&conn)
            .await
            .map_err(|e| format!("challenge: {e}"))?;
        let payload = make(&nonce, &binding).encode();
        raw_setup_on(conn, payload, pipelined).await
    }

    /// [`Run::raw_setup`] with set-up bytes made in advance.
    async fn raw_setup_bytes(
        &self,
        payload: Vec<u8>,
        pipelined: Option<&Request>,
    ) -> Result<SetupOutcome, String> {
        let conn = connection::connect_with_alpn(&self.server.info(), hotline_proto::ALPN)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        raw_setup_on(conn, payload, pipelined).await
    }
}

/// What a raw set-up got: the welcome (role, panic) or the refusal's code,
/// and the answer to the request sent behind it.
#[derive(Debug)]
struct SetupOutcome {
    setup: Result<(Role, bool), ErrorCode>,
    /// The device welcomed (unset when refused).
    device: DeviceId,
    pipelined: Option<Result<Response, String>>,
}

async fn raw_setup_on(
    conn: quinn::Connection,
    payload: Vec<u8>,
    pipelined: Option<&Request>,
) -> Result<SetupOutcome, String> {
    let framed = frame::encode(&payload).map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    // A refusal may close the connection while this is written: the
    // answer (or the close) says what happened.
    let _ = send.write_all(&framed).await;
    let _ = send.finish();
    // The request behind it, sent before the set-up is answered (the
    // server may have refused the set-up and closed the connection by
    // now: then it has no stream, and no answer).
    let behind = match pipelined {
        Some(req) => {
            let framed = frame::encode(&req.encode()).map_err(|e| e.to_string())?;
            match conn.open_bi().await {
                Ok((mut send, recv)) => {
                    let _ = send.write_all(&framed).await;
                    let _ = send.finish();
                    Some(Ok(recv))
                }
                Err(e) => Some(Err(e.to_string())),
            }
        }
        None => None,
    };
    let answer = tokio::time::timeout(WAIT, recv.read_to_end(HEADER_LEN + MAX_SETUP_FRAME_LEN))
        .await
        .map_err(|_| "no answer to the set-up".to_owned())?;
    let mut device = DeviceId::from_bytes([0; 16]);
    let setup = match answer {
        Ok(bytes) => {
            let payload = frame::decode_exact(&bytes, MAX_SETUP_FRAME_LEN)
                .map_err(|e| format!("set-up answer: {e}"))?;
            match decode_setup_response(payload).map_err(|e| format!("set-up answer: {e}"))? {
                Ok(welcome) => {
                    device = welcome.device_id;
                    Ok((welcome.role, welcome.panic))
                }
                Err(e) => Err(e.code),
            }
        }
        // The connection was closed before the answer arrived: the
        // close carries the code.
        Err(_) => Err(close_code(&conn, WAIT).await?),
    };
    if let Err(code) = setup {
        // A refused set-up closes the connection with the refusal's code.
        let closed = close_code(&conn, WAIT).await?;
        if closed != code {
            return Err(format!(
                "set-up refused with {code}, connection closed with {closed}"
            ));
        }
    }
    let pipelined = match behind {
        Some(Err(e)) => Some(Err(e)),
        Some(Ok(mut recv)) => Some(
            match tokio::time::timeout(WAIT, recv.read_to_end(HEADER_LEN + MAX_FRAME_LEN)).await {
                Err(_) => return Err("no answer, and no close, behind the set-up".into()),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(bytes)) => {
                    let payload = frame::decode_exact(&bytes, MAX_FRAME_LEN)
                        .map_err(|e| format!("answer: {e}"))?;
                    Ok(Response::decode(payload).map_err(|e| format!("answer: {e}"))?)
                }
            },
        ),
        None => None,
    };
    conn.close(0u32.into(), b"");
    Ok(SetupOutcome {
        setup,
        device,
        pipelined,
    })
}

/// The application code the server closed `conn` with (waiting for it).
async fn close_code(conn: &quinn::Connection, wait: Duration) -> Result<ErrorCode, String> {
    match tokio::time::timeout(wait, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => Ok(ErrorCode::from_u32(
            u32::try_from(close.error_code.into_inner()).unwrap_or(0),
        )),
        Ok(other) => Err(format!("the connection ended without a code: {other}")),
        Err(_) => Err("the connection was not closed".into()),
    }
}

/// What an admin sees of the server's state: every device, every alert
/// (id, defender, origin, status and holder: what a restart must keep),
/// and the roster.
async fn state_seen_by(
    admin: &Session,
) -> (
    Vec<hotline_proto::message::DeviceInfo>,
    Vec<(u64, DeviceId, String, String, Option<DeviceId>)>,
    Option<SignedRoster>,
) {
    let devices = admin.devices().await.expect("devices");
    let alerts = admin
        .alerts(false)
        .await
        .expect("alerts")
        .into_iter()
        .map(|a| {
            (
                a.id,
                a.defender,
                format!("{:?}", a.origin),
                format!("{:?}", a.status),
                a.holder,
            )
        })
        .collect();
    let roster = admin.get_roster().await.expect("roster");
    (devices, alerts, roster)
}

/// A defender's device is shown only its own alerts, and never one its
/// duress code raised or a notice about its schedule: nothing it observes
/// tells a duress check-in from a normal one.
fn shown_to_defender(column: Column, me: DeviceId, response: &Response) -> Result<(), String> {
    let Response::Alerts(alerts) = response else {
        return Ok(());
    };
    if !matches!(column, Column::Role(Role::Defender) | Column::PanicKey) {
        return Ok(());
    }
    match alerts
        .iter()
        .find(|a| a.defender != me || !a.origin.shown_to_defender())
    {
        Some(a) => Err(format!(
            "a defender's device was shown an alert it must not see (origin {:?})",
            a.origin
        )),
        None => Ok(()),
    }
}

/// A success says what §4 promises of it, as far as the one answer
/// shows: the asking device's own status; an inbox after the cursor,
/// within the limit, in order; one bundle per distinct device named and
/// none of a device not named; delivery states only of ids asked for;
/// open alerts only when asked for; the asker's own duty entry.
fn consistent(
    column: Column,
    me: DeviceId,
    req: &Request,
    response: &Response,
) -> Result<(), String> {
    use hotline_proto::alert::AlertStatus;
    let problem = match (req, response) {
        (Request::Status, Response::Status(status)) => {
            let role = match column {
                Column::Role(role) => role,
                Column::PanicKey => Role::Defender,
            };
            (status.device_id != me || status.role != role)
                .then_some("the status of another device or role")
        }
        (Request::FetchInbox { after, limit }, Response::Inbox(items)) => {
            if items.len() > *limit as usize {
                Some("more items than the limit")
            } else if items.iter().any(|i| i.id <= *after) {
                Some("an item at or before the cursor")
            } else {
                items
                    .windows(2)
                    .any(|w| w[0].id >= w[1].id)
                    .then_some("items out of order")
            }
        }
        (Request::FetchPrekeys(ids), Response::PrekeyBundles(bundles)) => {
            let mut seen = Vec::new();
            bundles.iter().find_map(|b| {
                if !ids.contains(&b.device_id) {
                    Some("a bundle of a device not asked for")
                } else if seen.contains(&b.device_id) {
                    Some("two bundles of one device")
                } else {
                    seen.push(b.device_id);
                    None
                }
            })
        }
        (Request::Delivery(ids), Response::Delivery(states)) => states
            .iter()
            .any(|d| !ids.contains(&d.id))
            .then_some("the delivery of an id not asked for"),
        (Request::ListAlerts { open_only: true }, Response::Alerts(alerts)) => alerts
            .iter()
            .any(|a| !matches!(a.status, AlertStatus::Raised | AlertStatus::Acknowledged))
            .then_some("a closed alert among the open ones"),
        (Request::RaiseAlert { .. }, Response::Alerts(alerts)) => alerts
            .iter()
            .any(|a| a.defender != me)
            .then_some("an alert raised for another device"),
        (Request::DutyStatus, Response::Duty(entries)) => {
            (!entries.iter().any(|e| e.device_id == me)).then_some("no entry of the asking device")
        }
        _ => None,
    };
    match problem {
        Some(what) => Err(format!("{column:?} {}: {what}", req.kind())),
        None => Ok(()),
    }
}

/// An answer in the run's summary: "ok" or the refusal's code.
fn answer_name(response: &Response) -> String {
    match response {
        Response::Error(e) => e.code.to_string(),
        _ => "ok".into(),
    }
}

/// A request as a failure message shows it: at most 400 characters.
fn short(req: &Request) -> String {
    let mut s = format!("{req:?}");
    if s.len() > 400 {
        let mut end = 400;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Whether `response` is the kind of answer a request of `kind` gets.
fn answers(kind: RequestKind, response: &Response) -> bool {
    use RequestKind as K;
    match kind {
        K::Status => matches!(response, Response::Status(_)),
        K::CreateInvite => matches!(response, Response::InviteCreated { .. }),
        K::ListDevices => matches!(response, Response::DeviceList(_)),
        K::RevokeDevice => matches!(response, Response::DeviceRevoked { .. }),
        K::GetRoster => matches!(response, Response::Roster(_)),
        K::PublishPrekeys => matches!(response, Response::PrekeysPublished { .. }),
        K::FetchPrekeys => matches!(response, Response::PrekeyBundles(_)),
        K::SendEnvelope => matches!(response, Response::EnvelopeAccepted { .. }),
        K::FetchInbox => matches!(response, Response::Inbox(_)),
        K::RaiseAlert => matches!(response, Response::Alerts(a) if a.len() == 1),
        K::ListAlerts => matches!(response, Response::Alerts(_)),
        K::ClaimAlert => matches!(response, Response::Claim { .. }),
        K::Delivery => matches!(response, Response::Delivery(_)),
        K::DutyStatus => matches!(response, Response::Duty(_)),
        K::AppendCaseEvent => matches!(response, Response::CaseEventAccepted { .. }),
        K::SyncCases => matches!(response, Response::CaseSync(_)),
        K::RequestCase => matches!(response, Response::CaseRequestAccepted { .. }),
        K::RequestCaseErasure | K::ConfirmCaseErasure => {
            matches!(response, Response::CaseErasure { .. })
        }
        K::PutRoster
        | K::AckInbox
        | K::CloseAlert
        | K::SetDuty
        | K::AlertDelivered
        | K::SetCheckin
        | K::Checkin
        | K::MarkRead
        | K::RegisterPanicKey => matches!(response, Response::Done),
    }
}

/// An officer and a defender on connections of their own, which the
/// random requests never name as a target of a revocation.
struct Probe {
    officer: Session,
    defender: Session,
    keys: (IdentityKeyPair, IdentityKeyPair),
}

impl Probe {
    /// The same devices, connected again (after a restart).
    async fn reconnect(self, server: &TestServer) -> Result<Probe, String> {
        let (officer, defender) = self.keys;
        Ok(Probe {
            officer: connection::authenticate(&server.info(), &officer)
                .await
                .map_err(|e| format!("the officer connecting again: {e}"))?,
            defender: connection::authenticate(&server.info(), &defender)
                .await
                .map_err(|e| format!("the defender connecting again: {e}"))?,
            keys: (officer, defender),
        })
    }

    /// Both still ask their status, and the defender's SOS pages the
    /// officer at once; the officer then resolves it.
    async fn still_serves(&self) -> Result<(), String> {
        self.officer
            .status()
            .await
            .map_err(|e| format!("the officer's status: {e}"))?;
        self.defender
            .status()
            .await
            .map_err(|e| format!("the defender's status: {e}"))?;
        let raised = self
            .defender
            .raise_alert_with(Priority::Immediate, None)
            .await
            .map_err(|e| format!("the defender's SOS: {e}"))?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.officer.next_push(left).await {
                Ok(Some(Push::Alert(a))) if a.id == raised.id => break,
                Ok(Some(_)) => {}
                Ok(None) => return Err("the SOS did not page the on-duty officer".into()),
                Err(e) => return Err(format!("the officer's pushes: {e}")),
            }
        }
        match self
            .officer
            .close_alert(raised.id, CloseReason::Resolved)
            .await
        {
            Ok(()) => Ok(()),
            // Closed by an acting staff device already.
            Err(e) if e.code() == Some(ErrorCode::FailedPrecondition) => Ok(()),
            Err(e) => Err(format!("the officer resolving the SOS: {e}")),
        }
    }
}

#[test]
fn the_property_test_covers_every_request_of_the_proto_file() {
    let names: Vec<&str> = RequestKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        proto_request_kinds(),
        names,
        "RequestKind::ALL (which the property test draws from) is the .proto file's Request oneof"
    );
}

/// The name of every thread of the property test's runtime (the
/// server's tasks and its store calls run on them).
const THREADS: &str = "property-test";

/// Panics on the property test's threads (see [`THREADS`]).
static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The server never panics: the test runs it on threads of its own, and
/// counts every panic on them, whatever became of it (a panic in a store
/// call is turned into an error answer; one in a task ends the task).
#[test]
fn random_requests_from_every_role_follow_the_documents() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(THREADS))
        {
            PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        previous(info);
    }));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(THREADS)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(random_requests());
}

async fn random_requests() {
    let (seed, cases) = seed_and_cases();
    println!("property test: HOTLINE_PROPTEST_SEED={seed} HOTLINE_PROPTEST_CASES={cases}");
    let (run, probe) = Run::start(seed).await;
    probe
        .still_serves()
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: before any random request: {e}"));
    let started = std::time::Instant::now();
    let mut rng = Rng(seed);
    // Each actor goes through every kind in a shuffled order, again and
    // again: every (actor, kind) pair is sent once per 23 of its requests.
    let mut decks: BTreeMap<Actor, Vec<RequestKind>> = BTreeMap::new();
    let mut sent = 0;
    let mut batch = 0;
    while sent < cases {
        batch += 1;
        let mut plans: BTreeMap<Actor, (Vec<RequestKind>, Rng)> = BTreeMap::new();
        for actor in Actor::ALL {
            let deck = decks.entry(actor).or_default();
            let mut kinds = Vec::new();
            for _ in 0..PER_BATCH {
                if deck.is_empty() {
                    deck.extend(RequestKind::ALL);
                    for i in (1..deck.len()).rev() {
                        deck.swap(i, rng.below(i + 1));
                    }
                }
                kinds.push(deck.pop().expect("refilled"));
            }
            sent += kinds.len();
            plans.insert(actor, (kinds, Rng(rng.next())));
        }
        let mut take = |actor| plans.remove(&actor).expect("planned");
        let (
            mut admin,
            mut officer,
            mut coordinator,
            mut defender,
            mut panic,
            mut spare_officer,
            mut spare_defender,
            mut revoked,
            mut unauth,
        ) = (
            take(Actor::Admin),
            take(Actor::Officer),
            take(Actor::Coordinator),
            take(Actor::Defender),
            take(Actor::Panic),
            take(Actor::SpareOfficer),
            take(Actor::SpareDefender),
            take(Actor::Revoked),
            take(Actor::Unauthenticated),
        );
        let results = tokio::join!(
            run.session_actor(Actor::Admin, &run.admin.1, &admin.0, &mut admin.1),
            run.session_actor(Actor::Officer, &run.officer.1, &officer.0, &mut officer.1),
            run.session_actor(
                Actor::Coordinator,
                &run.coordinator.1,
                &coordinator.0,
                &mut coordinator.1
            ),
            run.session_actor(
                Actor::Defender,
                &run.defender.1,
                &defender.0,
                &mut defender.1
            ),
            run.session_actor(Actor::Panic, &run.panic, &panic.0, &mut panic.1),
            run.session_actor(
                Actor::SpareOfficer,
                &run.spare_officer.1,
                &spare_officer.0,
                &mut spare_officer.1
            ),
            run.session_actor(
                Actor::SpareDefender,
                &run.spare_defender.1,
                &spare_defender.0,
                &mut spare_defender.1
            ),
            run.revoked_actor(&revoked.0, &mut revoked.1),
            run.unauthenticated_actor(&unauth.0, &mut unauth.1),
        );
        for result in [
            results.0, results.1, results.2, results.3, results.4, results.5, results.6, results.7,
            results.8,
        ] {
            if let Err(e) = result {
                panic!("seed {seed}, batch {batch}: {e}");
            }
        }
        probe
            .still_serves()
            .await
            .unwrap_or_else(|e| panic!("seed {seed}, after batch {batch}: {e}"));
        let panics = PANICS.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(panics, 0, "seed {seed}, batch {batch}: the server panicked");
        println!("batch {batch} done after {:?}", started.elapsed());
    }
    // The log of all that replays: the server starts again on it, the
    // devices and alerts are those it served before, and the probes
    // are served as before.
    let mut run = run;
    let before = state_seen_by(&run.admin.1).await;
    run.server.restart().await;
    let admin = connection::authenticate(&run.server.info(), &run.admin.0.identity)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: the admin after a restart: {e}"));
    let after = state_seen_by(&admin).await;
    assert_eq!(
        before.0, after.0,
        "seed {seed}: the devices after a restart"
    );
    for alert in &before.1 {
        assert!(
            after.1.contains(alert),
            "seed {seed}: alert {alert:?} after a restart"
        );
    }
    assert_eq!(before.2, after.2, "seed {seed}: the roster after a restart");
    let probe = probe
        .reconnect(&run.server)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    probe
        .still_serves()
        .await
        .unwrap_or_else(|e| panic!("seed {seed}, after a restart: {e}"));
    assert_eq!(
        PANICS.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "seed {seed}: the server panicked"
    );
    {
        let outcomes = run.outcomes.lock().expect("not poisoned");
        let mut summary = String::new();
        for ((actor, what), n) in outcomes.iter() {
            summary.push_str(&format!("  {actor:?} {what}: {n}\n"));
        }
        println!("property test outcomes (seed {seed}):\n{summary}");
    }
    // Every actor sent every kind (when the run is long enough for it).
    if cases >= Actor::ALL.len() * RequestKind::ALL.len() {
        let sent = run.sent.lock().expect("not poisoned");
        for actor in Actor::ALL {
            for kind in RequestKind::ALL {
                assert!(
                    sent.contains_key(&(actor, kind.name())),
                    "seed {}: {actor:?} never sent {kind}",
                    run.seed
                );
            }
        }
    }
}
