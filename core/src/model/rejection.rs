//! Why an index entry, or a per-tag file's entry, was set aside: shared by
//! the index (`index`) and the per-tag files (`packages`).

use std::fmt;

/// Why an index entry (or one bottle file of it) was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The entry's name as given (shortened, debug-quoted when shown).
    pub formula: String,
    pub tag: Option<String>,
    pub problem: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Some(tag) => write!(
                f,
                "index entry {:?} bottle {:?} rejected: {}",
                self.formula, tag, self.problem
            ),
            None => write!(
                f,
                "index entry {:?} rejected: {}",
                self.formula, self.problem
            ),
        }
    }
}
