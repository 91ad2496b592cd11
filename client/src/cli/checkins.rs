//! Safety check-ins (defenders): checking in, and the schedule with its
//! normal and duress codes.

use anyhow::{Context as _, bail};
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
    // The check-in key: the device's own, or a new one, saved before the
    // server is given any tag made with it. Saved after, a crash or a lost
    // answer between the server accepting the tags and the save would
    // leave a schedule this device can no longer answer: missed check-ins
    // the defender cannot stop. Saved first, a refusal or a failure leaves
    // a key the server may not hold yet; the next set-up uses the same
    // key, so both sides agree again.
    let key = match state.load_checkin_key()? {
        Some(k) => k,
        None => {
            let k = StateDir::new_checkin_key()?;
            state
                .save_checkin_key(&k)
                .context("cannot save the check-in key; nothing was sent to the server")?;
            k
        }
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
        // Each reason said alone, before anything is sent (the server's
        // refusal names all three at once).
        const MONTH: u64 = 30 * 86_400;
        if !(1..=MONTH).contains(&interval) {
            bail!("--every: check-ins can be 1 second to 30 days apart; nothing was set");
        }
        if grace > MONTH {
            bail!("--grace: at most 30 days; nothing was set");
        }
        if code == duress {
            bail!(
                "the duress code must differ from the normal code (typed instead of it, it raises an alert that looks like a check-in): choose two different codes; nothing was set"
            );
        }
        session
            .set_checkin(interval, grace, &key, &code, &duress)
            .await?;
        println!(
            "check in every {every}; the duty team is alerted if you miss one by more than the grace"
        );
    }
    // What the server accepted: `my-case` no longer offers check-ins the
    // team proposed before now. Not saved is only a warning.
    if let Err(e) = state.save_checkin_set(hotline_client::unix_now()) {
        eprintln!("WARNING: {e}");
    }
    session.close().await;
    Ok(())
}
