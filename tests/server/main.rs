//! The server end to end: real `tessera server` processes on loopback, driven by the `redis`
//! crate, raw sockets, and (when installed) redis-cli and redis-benchmark against `tessera up`.

mod cluster;
mod commands;
mod common;
mod protocol;
mod threads;
mod tools;
