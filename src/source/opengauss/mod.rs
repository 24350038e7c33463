//! A live openGauss server as the source: where it is ([`channels`]).

pub mod channels;
