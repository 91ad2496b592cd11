//! Target `config`: the server's configuration file (TOML), read as
//! `Config::from_file` reads it, then validated as start-up does.

use std::net::{Ipv4Addr, SocketAddr};

use hotline_server::Config;

pub fn check(data: &[u8]) {
    // `from_file` reads the file as UTF-8 text first.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = toml::from_str::<Config>(text) else {
        return;
    };
    if config.validate().is_err() {
        return;
    }
    // What validation promises, and what start-up computes from it.
    let l = &config.limits;
    assert!(!config.server_name.is_empty() && config.server_name.len() <= 253);
    assert!(l.max_connections > 0 && l.max_streams_per_connection > 0 && l.request_burst > 0);
    assert!(l.requests_per_second > 0 && l.auth_timeout_secs > 0 && l.request_timeout_secs > 0);
    assert!((5..=600).contains(&l.idle_timeout_secs));
    assert!((10..=60_000).contains(&config.escalation_tick_ms));
    assert!(l.store_cache_bytes >= 1024 * 1024);
    assert_eq!(config.tls_cert.is_some(), config.tls_key.is_some());
    let _ = (l.idle_timeout(), l.auth_timeout(), l.request_timeout());
    let _ = (config.is_dev(), config.insecure_dev_key_path());
    let bound = SocketAddr::from((Ipv4Addr::LOCALHOST, 4433));
    let addr = config.advertised_addr(bound);
    assert!(!addr.is_empty(), "no address to advertise");
}
