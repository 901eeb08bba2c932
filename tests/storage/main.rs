//! Storage-layer integration tests: the conformance suites every log and state engine must
//! pass, model-based property tests of the log, crash and corruption recovery, and GC.

mod harness;
mod log_conformance;
mod log_crash;
mod log_gc;
mod log_model;
mod log_recovery;
mod state_conformance;
