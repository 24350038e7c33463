//! WAL decoding throughput (being written).
fn main() {}
