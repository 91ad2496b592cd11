//! Safety check-ins (defenders): checking in, and the schedule with its
//! normal and duress codes.

use anyhow::Context as _;
use hotline_client::StateDir;
use hotline_proto::invite::parse_lifetime;

use super::unlock::{connect, use_panic_key};

/// `hotline checkin`.
pub(super) async fn checkin(state: &StateDir, code: Option<String>) -> anyhow::Result<()> {
    let code = match code {
        Some(c) => c,
        None => rpassword::prompt_password("Check-in code: ").context("cannot read the code")?,
    };
    let key = state.load_checkin_key()?;
    if use_panic_key(state) {
        hotline_client::sos::checkin_with_panic_key(state, key.as_ref(), &code).await?;
        println!("checked in");
        return Ok(());
    }
    let session = connect(state).await?;
    session.checkin(key.as_ref(), &code).await?;
    println!("checked in");
    session.close().await;
    Ok(())
}

/// `hotline checkin-setup`.
pub(super) async fn setup(
    state: &StateDir,
    every: &str,
    grace: u64,
    code: Option<String>,
    duress_code: Option<String>,
) -> anyhow::Result<()> {
    // The check-in key: the device's own, or a new one, saved only once
    // the server holds tags made with it (until then, check-ins keep using
    // what the server holds).
    let (key, new) = match state.load_checkin_key()? {
        Some(k) => (k, false),
        None => (StateDir::new_checkin_key()?, true),
    };
    let session = connect(state).await?;
    if every.trim() == "off" {
        session.set_checkin(0, 0, &key, "-", "--").await?;
        println!("check-ins stopped");
    } else {
        let interval = parse_lifetime(every).map_err(|e| anyhow::anyhow!("--every: {e}"))?;
        let code = match code {
            Some(c) => c,
            None => rpassword::prompt_password("Normal check-in code: ")
                .context("cannot read the code")?,
        };
        let duress = match duress_code {
            Some(c) => c,
            None => rpassword::prompt_password("Duress code: ").context("cannot read the code")?,
        };
        session
            .set_checkin(interval, grace, &key, &code, &duress)
            .await?;
        if new {
            state.save_checkin_key(&key)?;
        }
        println!(
            "check in every {every}; the duty team is alerted if you miss one by more than the grace"
        );
    }
    session.close().await;
    Ok(())
}
