//! Envelope seal and open per second for 1, 10 and 50 recipient devices,
//! next to raw ChaCha20-Poly1305 and raw X25519 from ring in the same run.
//!
//! `cargo bench -p hotline-proto --bench envelope`
//! (`HOTLINE_BENCH_SECS` sets the time per figure, default 1).

use std::hint::black_box;
use std::time::{Duration, Instant};

use hotline_proto::IdentityKeyPair;
use hotline_proto::e2e::content::Message;
use hotline_proto::e2e::envelope::{Content, Recipient, SignedEnvelope, seal};
use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::agreement;
use ring::rand::SystemRandom;

fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("HOTLINE_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0),
    )
}

/// Runs `f` repeatedly for the measuring time; returns calls per second.
fn rate(mut f: impl FnMut()) -> f64 {
    let deadline = Instant::now() + secs();
    let start = Instant::now();
    let mut n = 0u64;
    while Instant::now() < deadline {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let sender = IdentityKeyPair::from_seed(&[1; 32]);
    let devices: Vec<(IdentityKeyPair, EncryptionKeyPair)> = (0..50u8)
        .map(|i| {
            (
                IdentityKeyPair::from_seed(&[i.wrapping_add(10); 32]),
                EncryptionKeyPair::derive(&[i.wrapping_add(100); 32]),
            )
        })
        .collect();
    let content = Content {
        message_id: [7; 16],
        counter: 1,
        timestamp: 1_800_000_000,
        message: Message::chat(&"x".repeat(200), "en"),
        thread: 0,
        sender_label: String::new(),
    };

    // Baselines: what sealing one 1 KiB bucket and one key exchange cost.
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[9; 32]).expect("key"));
    let mut buf = vec![0u8; 1024];
    let chacha = rate(|| {
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut buf,
            )
            .expect("seal");
        let _ = black_box(tag);
    });
    let rng = SystemRandom::new();
    let peer = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("key");
    let peer_public = peer.compute_public_key().expect("public");
    let x25519 = rate(|| {
        let mine = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("key");
        let shared = agreement::agree_ephemeral(
            mine,
            &agreement::UnparsedPublicKey::new(&agreement::X25519, peer_public.as_ref()),
            |k| k[0],
        )
        .expect("agree");
        black_box(shared);
    });
    println!("baseline: ring ChaCha20-Poly1305 seal of 1 KiB: {chacha:>10.0} /s");
    println!("baseline: ring X25519 key generation + agreement: {x25519:>8.0} /s");
    println!();
    println!("recipients   seal/s     open/s   (seal µs per recipient)");
    for n in [1usize, 10, 50] {
        let recipients: Vec<Recipient> = devices[..n]
            .iter()
            .map(|(id, k)| Recipient {
                device_id: id.device_id(),
                prekey_id: 1,
                key: k.public_key(),
            })
            .collect();
        let sealed = rate(|| {
            black_box(
                seal(&sender, 1, &recipients, &content, &mut SystemRandomness).expect("seal"),
            );
        });
        let env = seal(&sender, 1, &recipients, &content, &mut SystemRandomness).expect("seal");
        let wire = env.encode();
        let (last_id, last_key) = &devices[n - 1];
        let me = last_id.device_id();
        let sender_key = sender.public_key();
        let opened = rate(|| {
            let e = SignedEnvelope::decode(&wire).expect("decode");
            black_box(
                e.open(&sender_key, &me, |_| Some(last_key.clone()))
                    .expect("open"),
            );
        });
        println!(
            "{n:>10} {sealed:>8.0} {opened:>10.0}   ({:.1})",
            1e6 / sealed / n as f64
        );
    }
}
