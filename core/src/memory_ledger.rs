//! in-process FleetLedger (being written).
