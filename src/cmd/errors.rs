//! Every error text the command layer answers with, in one place, worded as Redis words
//! them where Redis has the same error (clients and tests match on these strings).

pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const OFFSET_RANGE: &str = "ERR offset is out of range";
pub const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const NX_XX_GT_LT: &str = "ERR NX and XX, GT or LT options at the same time are not compatible";
pub const GT_LT: &str = "ERR GT and LT options at the same time are not compatible";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
pub const DB_RANGE: &str = "ERR DB index is out of range";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const CROSSSHARD: &str =
    "CROSSSHARD Keys in request don't belong to the same shard (multi-shard atomic writes need transactions, not built yet)";
pub const AUTH_NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

pub fn wrong_arity(name: &str) -> String {
    format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )
}

pub fn invalid_expire(name: &str) -> String {
    format!(
        "ERR invalid expire time in '{}' command",
        name.to_ascii_lowercase()
    )
}

/// `ERR unknown command 'x', with args beginning with: 'a' 'b' ` as Redis 7 words it.
pub fn unknown_command(args: &[bytes::Bytes]) -> String {
    let mut s = format!(
        "ERR unknown command '{}', with args beginning with: ",
        printable(args.first().map(|b| &b[..]).unwrap_or_default(), 128)
    );
    for a in args.iter().skip(1) {
        if s.len() >= 512 {
            break;
        }
        s.push_str(&format!("'{}' ", printable(a, 128)));
    }
    s
}

pub fn unknown_subcommand(cmd: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        printable(sub, 128),
        cmd.to_ascii_uppercase()
    )
}

/// Client-supplied bytes as safe, bounded error text.
pub fn printable(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
