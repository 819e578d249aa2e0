//! Secrets Manager emulator (moto server); written by helper "secrets".
