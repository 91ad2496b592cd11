//! hotline load: a real server on loopback with N defenders and M officers
//! connected, measuring how fast an SOS reaches an officer, next to a bare
//! quinn round trip and a raw durable append measured in the same run.
//!
//! `cargo run --release -p hotline-tests --bin load -- [DEFENDERS] [OFFICERS] [SECONDS]`
//! (defaults 990, 10, 5: 1,000 connected devices).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotline_client::connection::{self, ServerInfo, Session};
use hotline_proto::alert::{Priority, Push};
use hotline_proto::e2e::envelope::{self, Content, Recipient};
use hotline_proto::e2e::prekey::{Prekey, PrekeyKind};
use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};
use hotline_proto::message::{Request, Response};
use hotline_proto::{IdentityKeyPair, Role};
use hotline_server::log::keys::{KeySource, generate_key_file};
use hotline_server::{Config, RunningServer};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Bare quinn: 1 KiB echoed on a new bidirectional stream per round trip,
/// as hotline requests are.
async fn quinn_round_trip(samples: usize) -> Vec<Duration> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("cert");
    tls.alpn_protocols = vec![b"echo".to_vec()];
    let server_config = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("quic"),
    ));
    let server =
        quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = server.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        if let Ok(data) = recv.read_to_end(4096).await {
                            let _ = send.write_all(&data).await;
                            let _ = send.finish();
                        }
                    });
                }
            });
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_tls.alpn_protocols = vec![b"echo".to_vec()];
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).expect("quic"),
    )));
    let conn = client
        .connect(addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    let payload = vec![7u8; 1024];
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        send.write_all(&payload).await.expect("write");
        send.finish().expect("finish");
        recv.read_to_end(4096).await.expect("read");
        out.push(t.elapsed());
    }
    out
}

/// Raw sled: insert 1 KiB, flush, fdatasync.
fn durable_append(dir: &std::path::Path, samples: usize) -> Vec<Duration> {
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .cache_capacity(16 << 20)
        .open()
        .expect("sled");
    let file = std::fs::File::open(dir.join("db")).expect("db file");
    let value = vec![1u8; 1024];
    (0..samples as u64)
        .map(|i| {
            let t = Instant::now();
            db.insert(i.to_be_bytes(), value.as_slice())
                .expect("insert");
            db.flush().expect("flush");
            file.sync_data().expect("fdatasync");
            t.elapsed()
        })
        .collect()
}

struct Defender {
    identity: IdentityKeyPair,
    session: Session,
}

async fn enroll(
    server: &RunningServer,
    info: &ServerInfo,
    role: Role,
) -> (IdentityKeyPair, Session) {
    let mut invite = server.create_invite(role, 3600).await.expect("invite");
    invite.server_addr = info.addr.clone();
    let (identity, _) = IdentityKeyPair::generate().expect("randomness");
    let session = connection::enroll(&invite, &identity)
        .await
        .expect("enroll");
    (identity, session)
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let defenders = args.first().copied().unwrap_or(990) as usize;
    let officers = args.get(1).copied().unwrap_or(10) as usize;
    let seconds = args.get(2).copied().unwrap_or(5);
    let dir = tempfile::tempdir_in(std::env::current_dir().expect("cwd")).expect("tempdir");

    println!("baselines (same run):");
    let mut rtt = quinn_round_trip(2000).await;
    rtt.sort();
    println!(
        "  bare quinn round trip, 1 KiB on a new stream: p50 {:>7.0} µs   p99 {:>7.0} µs",
        us(percentile(&rtt, 0.5)),
        us(percentile(&rtt, 0.99))
    );
    let mut append = durable_append(&dir.path().join("raw"), 500);
    append.sort();
    println!(
        "  raw durable append (sled + fdatasync):        p50 {:>7.0} µs   p99 {:>7.0} µs",
        us(percentile(&append, 0.5)),
        us(percentile(&append, 0.99))
    );

    // The server.
    let key = dir.path().join("master.key");
    generate_key_file(&key).expect("key");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.limits.request_burst = 10_000;
    config.limits.requests_per_second = 10_000;
    let server = RunningServer::start(config, &KeySource::File(key))
        .await
        .expect("server");
    let info = ServerInfo {
        addr: server.local_addr().to_string(),
        name: "localhost".into(),
        pin: server.cert_pin(),
    };

    // Officers on duty, each with a published prekey, each recording when
    // pages arrive.
    let first_page: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let mut recipients = Vec::new();
    for _ in 0..officers {
        let (identity, session) = enroll(&server, &info, Role::Officer).await;
        session.set_duty(true).await.expect("duty");
        let prekey = EncryptionKeyPair::generate(&mut SystemRandomness);
        let signed = Prekey {
            device_id: identity.device_id(),
            kind: PrekeyKind::LastResort,
            id: 1,
            public_key: prekey.public_key(),
            created_at: hotline_server::unix_now(),
            expires_at: hotline_server::unix_now() + 86_400,
        }
        .sign(&identity);
        assert_eq!(
            session
                .request(&Request::PublishPrekeys(vec![signed]))
                .await
                .expect("publish"),
            Response::Done
        );
        recipients.push(Recipient {
            device_id: identity.device_id(),
            prekey_id: 1,
            key: prekey.public_key(),
        });
        let pages = Arc::clone(&first_page);
        let session = Arc::new(session);
        tokio::spawn(async move {
            // Time the page when it arrives; confirm it afterwards, off the
            // measured path.
            while let Ok(mut stream) = session.connection().accept_uni().await {
                let Ok(bytes) = stream.read_to_end(64 * 1024).await else {
                    break;
                };
                let arrived = Instant::now();
                let Ok(payload) = hotline_proto::frame::decode_exact(&bytes, 64 * 1024) else {
                    continue;
                };
                if let Ok(Push::Alert(a)) = Push::decode(payload) {
                    pages.lock().expect("lock").entry(a.id).or_insert(arrived);
                    let session = Arc::clone(&session);
                    tokio::spawn(async move {
                        let _ = session
                            .request(&Request::AlertDelivered { alert_id: a.id })
                            .await;
                    });
                }
            }
        });
    }

    // Defenders, all connected.
    let started = Instant::now();
    let mut list: Vec<Defender> = Vec::with_capacity(defenders);
    for chunk in (0..defenders).collect::<Vec<_>>().chunks(32) {
        let mut handles = Vec::with_capacity(chunk.len());
        for _ in chunk {
            let mut invite = server
                .create_invite(Role::Defender, 3600)
                .await
                .expect("invite");
            invite.server_addr = info.addr.clone();
            handles.push(tokio::spawn(async move {
                let (identity, _) = IdentityKeyPair::generate().expect("randomness");
                let session = connection::enroll(&invite, &identity)
                    .await
                    .expect("enroll");
                Defender { identity, session }
            }));
        }
        for h in handles {
            list.push(h.await.expect("task"));
        }
    }
    println!(
        "\n{} devices connected ({defenders} defenders, {officers} officers on duty) in {:.1} s",
        defenders + officers,
        started.elapsed().as_secs_f64()
    );
    let list = Arc::new(list);
    let recipients = Arc::new(recipients);

    // Latency: one SOS at a time, from different defenders.
    let mut latency = Vec::new();
    let mut answered = Vec::new();
    for i in 0..200u64 {
        let d = &list[(i as usize * 7) % list.len()];
        let req = sos(d, &recipients, i);
        let t0 = Instant::now();
        let Response::Alerts(a) = d.session.request(&req).await.expect("raise") else {
            panic!("alert expected");
        };
        answered.push(t0.elapsed());
        let id = a[0].id;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(t1) = first_page.lock().expect("lock").get(&id) {
                latency.push(t1.saturating_duration_since(t0));
                break;
            }
            if Instant::now() > deadline {
                panic!("alert {id} reached no officer within 5 s");
            }
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
    }
    latency.sort();
    answered.sort();
    let p50 = percentile(&latency, 0.5);
    println!(
        "SOS answered to the defender:                 p50 {:>7.0} µs   p99 {:>7.0} µs",
        us(percentile(&answered, 0.5)),
        us(percentile(&answered, 0.99))
    );
    println!(
        "SOS to first officer page (one at a time):    p50 {:>7.0} µs   p99 {:>7.0} µs",
        us(p50),
        us(percentile(&latency, 0.99))
    );

    // Throughput: every defender raising alerts for a while.
    let raised = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..64usize {
        let (list, raised, recipients) = (
            Arc::clone(&list),
            Arc::clone(&raised),
            Arc::clone(&recipients),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 1_000_000 + w as u64 * 1_000_000;
            while Instant::now() < stop {
                let d = &list[(n as usize) % list.len()];
                n += 1;
                let req = sos(d, &recipients, n);
                if let Ok(Response::Alerts(_)) = d.session.request(&req).await {
                    raised.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let rate = raised.load(Ordering::Relaxed) as f64 / seconds as f64;
    println!("alerts raised per second, 64 defenders at once: {rate:>7.0} /s");

    let goal = 2.0 * (us(percentile(&rtt, 0.5)) + us(percentile(&append, 0.5)));
    println!(
        "\ngoal: p50 SOS delivery {:.0} µs <= 2 x (round trip + durable append) = {goal:.0} µs: {}",
        us(p50),
        if us(p50) <= goal { "met" } else { "NOT met" }
    );
    server.shutdown().await;
}

/// An SOS from `d`, sealed to the officers' prekeys.
fn sos(d: &Defender, recipients: &[Recipient], n: u64) -> Request {
    let envelope = envelope::seal(
        &d.identity,
        1,
        recipients,
        &Content {
            message_id: rand_id(n),
            counter: n,
            timestamp: hotline_server::unix_now(),
            body: b"category: threat\nload test".to_vec(),
            thread: 0,
        },
        &mut SystemRandomness,
    )
    .expect("seal");
    Request::RaiseAlert {
        priority: Priority::Immediate,
        envelope,
    }
}

fn rand_id(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    hotline_proto::identity::fill_random(&mut id).expect("randomness");
    id[..8].copy_from_slice(&n.to_be_bytes());
    id
}
