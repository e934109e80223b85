//! CBC.
