//! The domain's values: what a bottle is, where it goes, what the index and
//! the hash files say, what a queue message carries.

pub mod digest;
pub mod hash_file;
pub mod image_index;
pub mod index;
pub mod job;
pub mod key;
pub mod layout;
pub mod location;
pub mod message;
pub mod naming;
pub mod packages;
pub mod rejection;
pub mod request_path;
pub mod tag;
