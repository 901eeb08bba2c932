//! Multi-Raft store tests on the in-process cluster: elections, replication, crashes,
//! partitions, leadership transfer, restarts — on memory engines and on real storage — and
//! seeded randomised fault runs that check the Raft invariants at the end.

mod randomized;
mod scenarios;
