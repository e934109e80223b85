pub mod decrypt;
pub mod keys;
pub mod scan;
pub mod verify;
