//! End-to-end tests: a real server on 127.0.0.1:0 with real QUIC, real TLS
//! and a real store on disk, and real clients.

mod alerts;
mod authentication;
mod cases;
mod duress;
mod enrollment;
mod full_disk;
mod injected_faults;
mod limits;
mod messaging;
mod online;
mod people;
mod prekeys;
mod property;
mod read_only;
mod roles;
mod sos;
mod startup;
mod storage;
mod stored_fixture;
mod transport;
