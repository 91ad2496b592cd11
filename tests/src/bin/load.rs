//! hotline load: a real server on loopback with N defenders and M officers
//! connected, measuring how fast an SOS reaches an officer, next to a bare
//! quinn round trip and a raw durable append measured in the same run.
//!
//! Every latency is sampled two ways, the baselines exactly like the SOS:
//! back to back (each sample starts when the last one, and all it caused,
//! is done), and paced (each sample after a pause, as an SOS arrives at an
//! idle server: threads asleep, caches cold). Comparing an SOS sampled one
//! way with baselines sampled the other would mostly measure the pause.
//!
//! `cargo run --release -p hotline-tests --bin load -- [DEFENDERS] [OFFICERS] [SECONDS]`
//! (defaults 990, 10, 5: 1,000 connected devices).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotline_client::connection::{self, ServerInfo, Session};
use hotline_proto::alert::{AlertInfo, AlertOrigin, AlertStatus, Priority, Push};
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

fn p50(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    percentile(&sorted, 0.5)
}

/// One line of the table: p50 / p99 back to back, then paced.
fn row(what: &str, samples: &[Vec<Duration>; 2]) {
    let cell = |v: &Vec<Duration>| {
        let mut v = v.clone();
        v.sort();
        format!(
            "{:.0} / {:.0}",
            us(percentile(&v, 0.5)),
            us(percentile(&v, 0.99))
        )
    };
    println!(
        "{what:<44}{:>18}{:>24}",
        cell(&samples[0]),
        cell(&samples[1])
    );
}

/// Bare quinn: `request` bytes sent and `answer` bytes returned on a new
/// bidirectional stream per round trip, as hotline requests are.
async fn quinn_round_trip(
    samples: usize,
    request: usize,
    answer: usize,
    pause: Duration,
) -> Vec<Duration> {
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
                        if recv.read_to_end(1 << 20).await.is_ok() {
                            let _ = send.write_all(&vec![7u8; answer]).await;
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
    let payload = vec![7u8; request];
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        pause_for(pause).await;
        let t = Instant::now();
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        send.write_all(&payload).await.expect("write");
        send.finish().expect("finish");
        recv.read_to_end(1 << 20).await.expect("read");
        out.push(t.elapsed());
    }
    out
}

async fn pause_for(pause: Duration) {
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
}

/// The pause before each paced sample.
const PAUSE: Duration = Duration::from_millis(2);

/// Raw sled: insert `size` bytes, flush, fdatasync.
fn durable_append(
    dir: &std::path::Path,
    samples: usize,
    size: usize,
    pause: Duration,
) -> Vec<Duration> {
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .cache_capacity(16 << 20)
        .open()
        .expect("sled");
    let file = std::fs::File::open(dir.join("db")).expect("db file");
    let value = vec![1u8; size];
    (0..samples as u64)
        .map(|i| {
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let t = Instant::now();
            db.insert(i.to_be_bytes(), value.as_slice())
                .expect("insert");
            db.flush().expect("flush");
            file.sync_data().expect("fdatasync");
            t.elapsed()
        })
        .collect()
}

/// A plain file (what the log's segments are): append `size` bytes,
/// fdatasync.
fn file_append(
    dir: &std::path::Path,
    samples: usize,
    size: usize,
    pause: Duration,
) -> Vec<Duration> {
    use std::io::Write;
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("raw.hlog"))
        .expect("file");
    let value = vec![1u8; size];
    (0..samples)
        .map(|_| {
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let t = Instant::now();
            file.write_all(&value).expect("write");
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

    // The baselines move what an SOS moves: its request (the message
    // sealed to every officer) in, a page out, and one append of the
    // request's size (the record an SOS stores is a little larger still).
    let (request, page) = sos_sizes(officers);
    println!("an SOS request is {request} bytes, a page {page}; p50 / p99 in µs\n");
    println!(
        "{:<44}{:>18}{:>24}",
        "", "back to back", "paced (2 ms apart)"
    );
    let rtt = [
        quinn_round_trip(2000, request, page, Duration::ZERO).await,
        quinn_round_trip(500, request, page, PAUSE).await,
    ];
    row("bare quinn round trip (new stream)", &rtt);
    let append = [
        durable_append(&dir.path().join("raw"), 500, request, Duration::ZERO),
        durable_append(&dir.path().join("raw-paced"), 300, request, PAUSE),
    ];
    row("raw durable append (sled + fdatasync)", &append);
    let file = [
        file_append(&dir.path().join("file"), 500, request, Duration::ZERO),
        file_append(&dir.path().join("file-paced"), 300, request, PAUSE),
    ];
    row("raw durable append (file + fdatasync)", &file);

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
    // pages arrive and counting the confirmations it sent.
    let first_page: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let confirmed = Arc::new(AtomicU64::new(0));
    let heard = Arc::new(tokio::sync::Notify::new());
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
            Response::PrekeysPublished { one_time: 0 }
        );
        recipients.push(Recipient {
            device_id: identity.device_id(),
            prekey_id: 1,
            key: prekey.public_key(),
        });
        let pages = Arc::clone(&first_page);
        let (confirmed, heard) = (Arc::clone(&confirmed), Arc::clone(&heard));
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
                    heard.notify_waiters();
                    let (session, confirmed, heard) = (
                        Arc::clone(&session),
                        Arc::clone(&confirmed),
                        Arc::clone(&heard),
                    );
                    tokio::spawn(async move {
                        let _ = session
                            .request(&Request::AlertDelivered { alert_id: a.id })
                            .await;
                        confirmed.fetch_add(1, Ordering::SeqCst);
                        heard.notify_waiters();
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
    eprintln!(
        "{} devices connected in {:.1} s",
        defenders + officers,
        started.elapsed().as_secs_f64()
    );
    let list = Arc::new(list);
    let recipients = Arc::new(recipients);

    // Latency: one SOS at a time, from different defenders; the next once
    // the defender has its answer and every page is confirmed.
    let mut latency = Vec::new();
    let mut answered = Vec::new();
    let mut expected = confirmed.load(Ordering::SeqCst);
    for pause in [Duration::ZERO, PAUSE] {
        let (mut first, mut answer) = (Vec::new(), Vec::new());
        for i in 0..200u64 {
            pause_for(pause).await;
            let d = &list[(i as usize * 7) % list.len()];
            let req = sos(
                &d.identity,
                &recipients,
                i + pause.as_millis() as u64 * 1000,
            );
            let t0 = Instant::now();
            let Response::Alerts(a) = d.session.request(&req).await.expect("raise") else {
                panic!("alert expected");
            };
            answer.push(t0.elapsed());
            let id = a[0].id;
            expected += officers as u64;
            let all_heard = || {
                let page = first_page.lock().expect("lock").get(&id).copied();
                page.filter(|_| confirmed.load(Ordering::SeqCst) >= expected)
            };
            let t1 = loop {
                let notified = heard.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(t1) = all_heard() {
                    break t1;
                }
                if tokio::time::timeout(Duration::from_secs(5), notified)
                    .await
                    .is_err()
                {
                    panic!("alert {id} was not paged and confirmed within 5 s");
                }
            };
            first.push(t1.saturating_duration_since(t0));
        }
        latency.push(first);
        answered.push(answer);
    }
    let answered = [answered.remove(0), answered.remove(0)];
    let latency = [latency.remove(0), latency.remove(0)];
    println!(
        "\n{} devices connected ({defenders} defenders, {officers} officers on duty)",
        defenders + officers
    );
    row("SOS to the first officer's page", &latency);
    row("SOS answered to the defender", &answered);

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
                let req = sos(&d.identity, &recipients, n);
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

    println!();
    for (i, how) in ["back to back", "paced"].iter().enumerate() {
        let goal = 2.0 * (us(p50(&rtt[i])) + us(p50(&append[i])));
        let got = us(p50(&latency[i]));
        println!(
            "goal, {how}: p50 SOS to page {got:.0} µs <= 2 x (round trip + durable append) = {goal:.0} µs: {}",
            if got <= goal { "met" } else { "NOT met" }
        );
    }
    server.shutdown().await;
}

/// The framed sizes of an SOS request sealed to `officers` recipients and
/// of the page it causes.
fn sos_sizes(officers: usize) -> (usize, usize) {
    let (identity, _) = IdentityKeyPair::generate().expect("randomness");
    let recipients: Vec<Recipient> = (0..officers.max(1))
        .map(|_| {
            let (officer, _) = IdentityKeyPair::generate().expect("randomness");
            Recipient {
                device_id: officer.device_id(),
                prekey_id: 1,
                key: EncryptionKeyPair::generate(&mut SystemRandomness).public_key(),
            }
        })
        .collect();
    let request = sos(&identity, &recipients, 1);
    let page = Push::Alert(AlertInfo {
        id: 1_000_000,
        defender: recipients[0].device_id,
        priority: Priority::Immediate,
        status: AlertStatus::Raised,
        holder: None,
        raised_at: hotline_server::unix_now(),
        position: (0, 0),
        paged: u32::try_from(officers).unwrap_or(u32::MAX),
        envelope_id: 1_000_000,
        origin: AlertOrigin::Sos,
        checked_in_at: None,
        paged_now: 0,
        content: hotline_proto::alert::AlertContent::Sealed,
        tier: None,
        step_at: 0,
        exhausted: false,
        closed_by: None,
        joined_count: 0,
        joined: Vec::new(),
        joined_now: false,
        paged_again: false,
    });
    let framed = |b: Vec<u8>| hotline_proto::frame::encode(&b).expect("frame").len();
    (framed(request.encode()), framed(page.encode()))
}

/// An SOS from `identity`, sealed to the officers' prekeys.
fn sos(identity: &IdentityKeyPair, recipients: &[Recipient], n: u64) -> Request {
    let envelope = envelope::seal(
        identity,
        1,
        recipients,
        &Content {
            message_id: rand_id(n),
            counter: n,
            timestamp: hotline_server::unix_now(),
            message: hotline_proto::e2e::content::Message::sos(
                hotline_proto::e2e::content::Category::Other,
                hotline_proto::alert::Priority::Immediate,
                "load test",
                "en",
            ),
            thread: 0,
            sender_label: String::new(),
        },
        &mut SystemRandomness,
    )
    .expect("seal");
    Request::RaiseAlert {
        priority: Priority::Immediate,
        envelope: Some(envelope),
        join_alert: 0,
    }
}

fn rand_id(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    hotline_proto::identity::fill_random(&mut id).expect("randomness");
    id[..8].copy_from_slice(&n.to_be_bytes());
    id
}
