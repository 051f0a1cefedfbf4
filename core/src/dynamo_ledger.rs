//! DynamoDB implementation of FleetLedger (being written).
