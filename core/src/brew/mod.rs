//! The brew-usable view of a mirror (`bottles/`, `api/`; see
//! [`layout`](crate::model::layout)): publishing it after a run's bottles
//! are in, and verifying it the way a client would use it.

pub mod portable_ruby;
pub mod publish;
pub mod verify;
