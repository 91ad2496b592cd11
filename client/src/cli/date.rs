//! How the commands show a time (UTC; see `hotline_proto::time`).

pub(super) use hotline_proto::time::{date, date_time};
