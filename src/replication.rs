//! A small client for PostgreSQL's streaming replication protocol. (Being written.)
