//! The key ring: private keys with their certificates, indexed by how CMS names recipients.

/// Placeholder: the loader and index land in the keyring change.
#[derive(Default)]
pub struct KeyRing {}
