//! GCM.
