//! The people of the end-to-end tests: devices enrolled through a real
//! server, unlocked, connected, with their prekeys published.

use hotline_client::keystore::MIN_ITERATIONS;
use hotline_client::messenger::Device;
use hotline_client::org::{create_org_key, load_org_key, sign_roster};
use hotline_client::{Session, StateDir};
use hotline_proto::Role;
use hotline_proto::e2e::org::{OrgKeyPair, OrgPublicKey};
use hotline_proto::e2e::roster::Roster;
use hotline_tests::TestServer;

/// Every test device's passphrase.
pub(crate) const PASS: &str = "a long test passphrase";

/// An enrolled device: its state directory, unlocked, and connected.
pub(crate) struct Person {
    pub(crate) state: StateDir,
    pub(crate) device: Device,
    pub(crate) session: Session,
}

/// A device of `role` enrolled with an invite carrying `root` (or none, as
/// an invite made before the organisation had one), unlocked, connected
/// and with its prekeys published.
pub(crate) async fn person(
    server: &TestServer,
    role: Role,
    name: &str,
    root: Option<OrgPublicKey>,
) -> Person {
    let mut invite = server.invite(role).await;
    invite.org_root = root;
    let state = StateDir::new(server.dir.path().join(name));
    let session = hotline_client::enroll(&state, &invite, PASS, MIN_ITERATIONS)
        .await
        .expect("enrolls");
    let mut device = Device::open(&state, PASS).expect("unlocks");
    assert_eq!(device.org_root(), root, "the invite's root is pinned");
    device.sync_prekeys(&session).await.expect("prekeys");
    Person {
        state,
        device,
        session,
    }
}

/// The organisation's root key, made offline.
pub(crate) fn root_key(server: &TestServer) -> OrgKeyPair {
    let path = server.dir.path().join("org.key");
    create_org_key(&path, PASS, MIN_ITERATIONS).expect("org key");
    load_org_key(&path, PASS).expect("loads")
}

/// An admin who signs a roster valid for `valid_secs`, listing every
/// staff device enrolled so far.
pub(crate) async fn sign(admin: &mut Person, root: &OrgKeyPair, valid_secs: u64) -> Roster {
    sign_roster(
        &admin.session,
        &mut admin.device,
        root,
        hotline_server::unix_now(),
        valid_secs,
    )
    .await
    .expect("roster signed and uploaded")
}
