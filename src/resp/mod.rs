//! The Redis protocol, and nothing else: parsing client requests (RESP multibulk and inline
//! commands) under explicit limits, encoding replies in RESP2 or RESP3, and parsing replies
//! (for node-to-node forwarding and tests). It knows no command and touches no storage; the
//! error texts of protocol violations are produced here and match Redis's.

mod glob;
mod reply;
mod reply_parse;
mod request;

pub use glob::glob_match;
pub use reply::{encode_request, Protocol, Reply};
pub use reply_parse::{parse_reply, parse_reply_slice, ReplyError};
pub use request::{parse_request, parse_requests, Limits, ProtocolError, Request};
