//! libpq connection strings and URIs, with the environment and password-file fallbacks.
//! (Being written.)
