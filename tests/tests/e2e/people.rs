//! The people of the end-to-end tests: devices enrolled through a real
//! server, unlocked, connected, with their prekeys published.

use hotline_client::keystore::MIN_ITERATIONS;
use hotline_client::messenger::Device;
use hotline_client::{Session, StateDir};
use hotline_proto::Role;
use hotline_proto::e2e::org::OrgPublicKey;
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
