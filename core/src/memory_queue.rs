//! in-process Queue (being written).
