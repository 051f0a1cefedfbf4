//! SQS implementation of Queue (being written).
