//! Key wrap.
